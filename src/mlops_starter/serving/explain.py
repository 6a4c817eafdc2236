"""Why one record got its score: each original feature's additive contribution.

The contributions are computed on the encoded columns the model sees and summed back
per original feature (a category's one-hot columns and a number's missing-value flag
count for the feature they came from). Each method is exact for its model, so base
value + contributions = the model's raw output (its margin) for every record:

- XGBoost: the booster's own TreeSHAP (`pred_contribs`), in log-odds;
- logistic regression: coefficient x scaled value, in log-odds;
- random forest and Balanced Random Forest: decision-path attribution (each split's
  change in the tree's probability goes to the split's feature, averaged over trees),
  in probability.

Any other estimator (AdaBoost's weighted vote, say) has no method here, nor has a
multi-class or regression model yet: /explain answers 501 naming why.

The margin is the uncalibrated model's; the calibrated probability served by /predict
is a monotone map of it, given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from scipy import sparse

from mlops_starter.tasks.multiclass import CalibratedMulticlass
from mlops_starter.tasks.regression import IntervalRegressor

METHODS = {
    "XGBClassifier": ("xgboost pred_contribs (TreeSHAP)", "log-odds"),
    "LogisticRegression": ("coefficient x scaled value", "log-odds"),
    "RandomForestClassifier": (
        "decision-path attribution (Saabas), averaged over trees",
        "probability",
    ),
    # A forest too (its trees saw balanced bootstraps), scored as the mean of its trees.
    "BalancedRandomForestClassifier": (
        "decision-path attribution (Saabas), averaged over trees",
        "probability",
    ),
}


class ExplainError(ValueError):
    """The served model has a step this module cannot attribute through."""


@dataclass(frozen=True)
class Explanations:
    method: str
    scale: str
    base_value: float
    contributions: pd.DataFrame  # one row per record, one column per original feature
    margin: np.ndarray  # the model's raw output: base_value + the row's contributions
    probability: np.ndarray  # what /predict serves (calibrated, if the model is)


def encoded_sources(preprocessor: Any, features: list[str]) -> np.ndarray:
    """For each column the preprocessor outputs, the index of the original feature it came
    from, read from the fitted transformers' public state."""
    sources: list[str] = []
    for _, transformer, columns in preprocessor.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        steps = dict(transformer.steps) if hasattr(transformer, "steps") else {}
        if "impute" in steps:
            imputer = steps["impute"]
            kept = [
                c for c, stat in zip(columns, imputer.statistics_, strict=True) if not pd.isna(stat)
            ]
            sources += kept
            if imputer.indicator_ is not None:
                sources += [columns[i] for i in imputer.indicator_.features_]
        elif hasattr(transformer, "categories_"):  # the one-hot encoder
            infrequent = getattr(transformer, "infrequent_categories_", [None] * len(columns))
            for column, categories, rare in zip(
                columns, transformer.categories_, infrequent, strict=True
            ):
                width = len(categories) if rare is None else len(categories) - len(rare) + 1
                sources += [column] * width
        else:
            raise ExplainError(
                f"cannot attribute through preprocessing step {type(transformer).__name__}"
            )
    index = {name: i for i, name in enumerate(features)}
    return np.array([index[name] for name in sources])


def _forest_contributions(forest: Any, encoded: np.ndarray) -> tuple[np.ndarray, float]:
    positive = list(forest.classes_).index(1)
    total = np.zeros(encoded.shape)
    bias = 0.0
    for tree in forest.estimators_:
        structure = tree.tree_
        value = structure.value[:, 0, :]
        proba = value[:, positive] / value.sum(axis=1)
        parent = np.full(structure.node_count, -1)
        for children in (structure.children_left, structure.children_right):
            split_nodes = np.flatnonzero(children >= 0)
            parent[children[split_nodes]] = split_nodes
        child = np.flatnonzero(parent >= 0)
        change = sparse.csr_matrix(
            (proba[child] - proba[parent[child]], (child, structure.feature[parent[child]])),
            shape=(structure.node_count, encoded.shape[1]),
        )
        total += (tree.decision_path(encoded) @ change).toarray()
        bias += proba[0]
    return total / len(forest.estimators_), bias / len(forest.estimators_)


def refusal(model: Any) -> str | None:
    """Why `model` cannot be explained (its estimator has no attribution method here),
    or None: known when the service starts, so /explain refuses at once, naming it."""
    if isinstance(model, CalibratedMulticlass | IntervalRegressor):
        task = "multi-class" if isinstance(model, CalibratedMulticlass) else "regression"
        return f"explanations cover binary models so far; this is a {task} model"
    pipeline = getattr(model, "classifier", model)  # behind a calibration map, or not
    kind = type(pipeline.steps[-1][1]).__name__
    if kind in METHODS:
        return None
    return f"no attribution method for a {kind} (there is one for {', '.join(METHODS)})"


def explain(model: Any, frame: pd.DataFrame) -> Explanations:
    """Per-feature contributions for every row of `frame` (the columns /predict takes)."""
    if reason := refusal(model):
        raise ExplainError(reason)
    pipeline = getattr(model, "classifier", model)  # behind a calibration map, or not
    steps = dict(pipeline.steps)
    preprocessor, estimator = steps["preprocess"], pipeline.steps[-1][1]
    kind = type(estimator).__name__
    features = list(frame.columns)
    encoded = np.asarray(preprocessor.transform(frame), dtype=float)
    to_feature = np.zeros((encoded.shape[1], len(features)))
    to_feature[np.arange(encoded.shape[1]), encoded_sources(preprocessor, features)] = 1.0
    if kind == "XGBClassifier":
        booster = estimator.get_booster()
        # A booster trained on Dask keeps the names its matrices had (f0, f1, ...).
        matrix = xgboost.DMatrix(encoded, feature_names=booster.feature_names)
        raw = booster.predict(matrix, pred_contribs=True)
        encoded_contributions, bias = raw[:, :-1], float(raw[0, -1])
        margin = booster.predict(matrix, output_margin=True)
    elif kind == "LogisticRegression":
        encoded_contributions = encoded * estimator.coef_[0]
        bias = float(estimator.intercept_[0])
        margin = estimator.decision_function(encoded)
    else:
        encoded_contributions, bias = _forest_contributions(estimator, encoded)
        margin = estimator.predict_proba(encoded)[:, list(estimator.classes_).index(1)]
    method, scale = METHODS[kind]
    return Explanations(
        method,
        scale,
        bias,
        pd.DataFrame(encoded_contributions @ to_feature, columns=features, index=frame.index),
        np.asarray(margin, dtype=float),
        model.predict_proba(frame)[:, 1],
    )
