"""Why one record got its answer: each original feature's additive contribution.

The contributions are computed on the encoded columns the model sees and summed back
per original feature (a category's one-hot columns and a number's missing-value flag
count for the feature they came from). Each method is exact for its model, so base
value + contributions = the model's raw output (its margin) for every record:

- XGBoost: the booster's own TreeSHAP (`pred_contribs`), in log-odds (a regression's:
  the value);
- logistic regression: coefficient x scaled value, in log-odds; ridge and elastic net:
  the same, in the value;
- random forest and Balanced Random Forest: decision-path attribution (each split's
  change in the tree's probability, or mean value, goes to the split's feature,
  averaged over trees), in probability (or the value).

A multi-class model is explained once per class: the contributions to that class's
margin (its log-odds before the softmax, or its probability for a forest). Any other
estimator (AdaBoost's weighted vote, say) has no method here: /explain answers 501
naming it.

The margin is the uncalibrated model's; the calibrated probability served by /predict
is a monotone map of it (for a multi-class model, of all the classes' margins), given
beside it; a regression's margin is the value served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost
from scipy import sparse

from mlops_starter.serving.scorer import inner_pipeline

SAABAS = "decision-path attribution (Saabas), averaged over trees"
LINEAR = "coefficient x scaled value"
METHODS = {
    "XGBClassifier": ("xgboost pred_contribs (TreeSHAP)", "log-odds"),
    "XGBRegressor": ("xgboost pred_contribs (TreeSHAP)", "value"),
    "LogisticRegression": (LINEAR, "log-odds"),
    "Ridge": (LINEAR, "value"),
    "ElasticNet": (LINEAR, "value"),
    "RandomForestClassifier": (SAABAS, "probability"),
    "RandomForestRegressor": (SAABAS, "value"),
    # A forest too (its trees saw balanced bootstraps), scored as the mean of its trees.
    "BalancedRandomForestClassifier": (SAABAS, "probability"),
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
    served: np.ndarray  # what /predict serves: the class's (calibrated) probability, or the value


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


def _forest_contributions(
    forest: Any, encoded: np.ndarray, output: int | None
) -> tuple[np.ndarray, float]:
    """Saabas attribution of a forest's mean over trees of class `output`'s probability,
    or of a regression forest's value (`output` None)."""
    total = np.zeros(encoded.shape)
    bias = 0.0
    for tree in forest.estimators_:
        structure = tree.tree_
        value = structure.value[:, 0, :]
        node = value[:, 0] if output is None else value[:, output] / value.sum(axis=1)
        parent = np.full(structure.node_count, -1)
        for children in (structure.children_left, structure.children_right):
            split_nodes = np.flatnonzero(children >= 0)
            parent[children[split_nodes]] = split_nodes
        child = np.flatnonzero(parent >= 0)
        change = sparse.csr_matrix(
            (node[child] - node[parent[child]], (child, structure.feature[parent[child]])),
            shape=(structure.node_count, encoded.shape[1]),
        )
        total += (tree.decision_path(encoded) @ change).toarray()
        bias += node[0]
    return total / len(forest.estimators_), bias / len(forest.estimators_)


def refusal(model: Any) -> str | None:
    """Why `model` cannot be explained (its estimator has no attribution method here),
    or None: known when the service starts, so /explain refuses at once, naming it."""
    kind = type(inner_pipeline(model).steps[-1][1]).__name__
    if kind in METHODS:
        return None
    return f"no attribution method for a {kind} (there is one for {', '.join(METHODS)})"


def _raw_contributions(
    estimator: Any, encoded: np.ndarray, output: int | None
) -> tuple[np.ndarray, float, np.ndarray]:
    """Per encoded column, each row's contribution to output `output` (a class's index,
    or None for a regression), the base value, and the margin they add up to."""
    kind = type(estimator).__name__
    if kind.startswith("XGB"):
        booster = estimator.get_booster()
        # A booster trained on Dask keeps the names its matrices had (f0, f1, ...).
        matrix = xgboost.DMatrix(encoded, feature_names=booster.feature_names)
        raw = booster.predict(matrix, pred_contribs=True)
        margin = booster.predict(matrix, output_margin=True)
        if raw.ndim == 3:  # one block per class
            raw, margin = raw[:, output, :], margin[:, output]
        return raw[:, :-1], float(raw[0, -1]), margin
    if kind in ("LogisticRegression", "Ridge", "ElasticNet"):
        coef = np.atleast_2d(estimator.coef_)  # a row per class of a multinomial model
        row = output if len(coef) > 1 else 0
        intercept = float(np.atleast_1d(estimator.intercept_)[row])
        contributions = encoded * coef[row]
        return contributions, intercept, contributions.sum(axis=1) + intercept
    contributions, bias = _forest_contributions(estimator, encoded, output)
    margin = (
        estimator.predict(encoded)
        if output is None
        else estimator.predict_proba(encoded)[:, output]
    )
    return contributions, bias, margin


def explain(model: Any, frame: pd.DataFrame, output: Any = None) -> Explanations:
    """Per-feature contributions for every row of `frame` (the columns /predict takes)
    to a binary model's positive class, a multi-class model's class `output` (its code),
    or a regression's value."""
    if reason := refusal(model):
        raise ExplainError(reason)
    pipeline = inner_pipeline(model)
    steps = dict(pipeline.steps)
    preprocessor, estimator = steps["preprocess"], pipeline.steps[-1][1]
    features = list(frame.columns)
    encoded = np.asarray(preprocessor.transform(frame), dtype=float)
    to_feature = np.zeros((encoded.shape[1], len(features)))
    to_feature[np.arange(encoded.shape[1]), encoded_sources(preprocessor, features)] = 1.0
    regression = not hasattr(estimator, "classes_")
    if regression:
        index, served = None, np.asarray(model.predict(frame), dtype=float)
    else:
        index = list(estimator.classes_).index(1 if output is None else output)
        served = np.asarray(model.predict_proba(frame))[:, index]
    contributions, bias, margin = _raw_contributions(estimator, encoded, index)
    method, scale = METHODS[type(estimator).__name__]
    return Explanations(
        method,
        scale,
        bias,
        pd.DataFrame(contributions @ to_feature, columns=features, index=frame.index),
        np.asarray(margin, dtype=float),
        served,
    )


def explanation_rows(found: Explanations, task: str) -> list[dict[str, Any]]:
    """Each record's explanation as /explain answers it: the method, its scale, the base
    value, the contributions (largest effect first), the margin, and what /predict
    serves (`probability`, or a regression's `value`)."""
    served_as = "value" if task == "regression" else "probability"
    return [
        {
            "method": found.method,
            "scale": found.scale,
            "base_value": found.base_value,
            "contributions": dict(sorted(row.items(), key=lambda item: abs(item[1]), reverse=True)),
            "margin": float(margin),
            served_as: float(served),
        }
        for row, margin, served in zip(
            found.contributions.to_dict("records"), found.margin, found.served, strict=True
        )
    ]
