"""The served model as a compiled scorer: the fitted pipeline's arithmetic in numpy.

Calling `Pipeline.predict_proba` costs milliseconds even for one row: pandas
dispatch in every transformer, plus XGBoost starting its thread pool. The fitted
transformers' learned state (medians, missing-value flags, scaling, one-hot
layouts) and the booster are all a scorer needs, so `build_scorer` reads that
state once and scores a batch of columns with a few numpy operations and one
`Booster.inplace_predict` on one thread.

The registered model stays what it is (an sklearn pipeline in skops); the compiled
scorer is derived from it and checked against it: on generated hard cases (every
category, unseen and missing values, extremes) and on any rows given, its
probabilities must equal `predict_proba`'s within `TOLERANCE`. A step it does not
know, or a check that fails, falls back to the pipeline itself, with one log line;
`Scorer.kind` says which one is serving.

A batch is `Columns`: one numpy array per feature, numbers as float64 with NaN for
missing, categories as an object array of str with None for missing.

The compiled scorer covers binary models. A multi-class or regression model is served
by its pipeline, and `Scorer.detail` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from mlops_starter.tasks import Answers

Columns = Mapping[str, np.ndarray]
TOLERANCE = 1e-6
_UNSEEN = (
    "\x00unseen category\x00"  # a value no training set holds, to learn where unseen values go
)

log = logging.getLogger(__name__)


class NotCompilable(ValueError):
    """The pipeline holds a step the compiled scorer does not reproduce."""


def columns_to_frame(columns: Columns, profile: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The DataFrame the sklearn pipeline takes: training column order, text as pandas str."""
    return pd.DataFrame(
        {
            name: pd.Series(columns[name], dtype="str")
            if spec["kind"] == "category"
            else np.asarray(columns[name], dtype=float)
            for name, spec in profile.items()
        }
    )


def frame_to_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """`Columns` from a DataFrame: numbers (booleans too) as float64, the rest as text or None."""
    return {
        name: frame[name].to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_numeric_dtype(frame[name])
        else frame[name].astype(object).where(frame[name].notna(), None).to_numpy()
        for name in frame.columns
    }


def _numeric_block(transformer: Any, names: list[str]) -> Any:
    """Imputer (+ missing flags) and optional scaler, as one function of a float matrix."""
    steps = dict(transformer.steps) if hasattr(transformer, "steps") else {}
    imputer, scaler = steps.get("impute"), steps.get("scale")
    if imputer is None or set(steps) - {"impute", "scale"}:
        raise NotCompilable(f"numeric steps {list(steps) or type(transformer).__name__}")
    if not (np.isnan(imputer.missing_values) and imputer.strategy in ("median", "mean")):
        raise NotCompilable(f"imputer with strategy {imputer.strategy!r}")
    statistics = np.asarray(imputer.statistics_, dtype=float)
    kept = np.flatnonzero(~np.isnan(statistics))  # all-missing training columns are dropped
    flagged = [] if imputer.indicator_ is None else list(imputer.indicator_.features_)
    if scaler is not None and not (scaler.with_mean and scaler.with_std):
        raise NotCompilable("a scaler without centring or scaling")

    def encode(columns: Columns) -> np.ndarray:
        matrix = np.column_stack([np.asarray(columns[n], dtype=float) for n in names])
        missing = np.isnan(matrix)
        filled = np.where(missing, statistics, matrix)[:, kept]
        out = np.hstack([filled, missing[:, flagged].astype(float)])
        if scaler is not None:
            out = (out - scaler.mean_) / scaler.scale_
        return out

    return encode


def _one_hot_block(encoder: Any, names: list[str]) -> Any:
    """The encoder's column for every value it knows, and for unseen and missing values,
    learnt by asking the fitted encoder itself (so infrequent, capped and missing-as-a-
    category values land exactly where sklearn puts them)."""
    if getattr(encoder, "drop_idx_", None) is not None or encoder.handle_unknown == "error":
        raise NotCompilable("a one-hot encoder that drops a column or refuses unknown values")
    infrequent = getattr(encoder, "infrequent_categories_", [None] * len(names))
    widths = [
        len(c) if rare is None else len(c) - len(rare) + 1
        for c, rare in zip(encoder.categories_, infrequent, strict=True)
    ]
    probes = [
        [v for v in categories if not pd.isna(v)] + [_UNSEEN, None]
        for categories in encoder.categories_
    ]
    rows = max(len(p) for p in probes)
    probe = pd.DataFrame(
        {
            name: pd.Series([values[min(i, len(values) - 1)] for i in range(rows)], dtype="str")
            for name, values in zip(names, probes, strict=True)
        }
    )
    encoded = np.asarray(encoder.transform(probe), dtype=float)
    lookups: list[tuple[dict[Any, int], int]] = []
    start = 0
    for values, width in zip(probes, widths, strict=True):
        block = encoded[: len(values), start : start + width]
        hot = np.where(block.any(axis=1), block.argmax(axis=1), -1)
        lookup = dict(zip(values, hot.tolist(), strict=True))
        lookups.append((lookup, lookup.pop(_UNSEEN)))
        start += width

    def encode(columns: Columns) -> np.ndarray:
        n = len(columns[names[0]])
        out = np.zeros((n, sum(widths)))
        rows_index = np.arange(n)
        offset = 0
        for name, (lookup, unseen), width in zip(names, lookups, widths, strict=True):
            hot = np.fromiter(
                (lookup.get(v, unseen) for v in columns[name]), dtype=np.int64, count=n
            )
            on = hot >= 0
            out[rows_index[on], offset + hot[on]] = 1.0
            offset += width
        return out

    return encode


def _preprocessor(preprocessor: Any) -> Any:
    if getattr(preprocessor, "remainder", "drop") != "drop":
        raise NotCompilable("a ColumnTransformer that passes other columns through")
    blocks = []
    for _, transformer, names in preprocessor.transformers_:
        if transformer == "drop" or len(names) == 0:
            continue
        if hasattr(transformer, "categories_"):
            blocks.append(_one_hot_block(transformer, list(names)))
        else:
            blocks.append(_numeric_block(transformer, list(names)))

    def encode(columns: Columns) -> np.ndarray:
        return np.hstack([block(columns) for block in blocks])

    return encode


def _estimator(estimator: Any) -> tuple[Any, str]:
    """(features -> positive probability, description) for the final step, on one thread."""
    kind = type(estimator).__name__
    if kind == "XGBClassifier":
        if estimator.get_params().get("objective") not in (None, "binary:logistic"):
            raise NotCompilable(f"XGBoost objective {estimator.objective!r}")
        booster = estimator.get_booster().copy()
        booster.set_param({"nthread": 1})
        last = getattr(estimator, "best_iteration", None)
        iterations = (0, last + 1) if last is not None else (0, 0)
        missing = estimator.missing

        def xgboost_proba(x: np.ndarray) -> np.ndarray:
            return np.asarray(
                booster.inplace_predict(
                    x, iteration_range=iterations, missing=missing, validate_features=False
                ),
                dtype=float,
            )

        return xgboost_proba, "numpy preprocessing + xgboost inplace_predict (1 thread)"
    positive = list(estimator.classes_).index(1)
    if kind == "LogisticRegression" and estimator.coef_.shape[0] == 1:
        coef, intercept = estimator.coef_[0], float(estimator.intercept_[0])
        return (lambda x: expit(x @ coef + intercept)), "numpy preprocessing + logistic formula"
    if not hasattr(estimator, "predict_proba"):
        raise NotCompilable(f"final step {kind} has no predict_proba")
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)  # one row does not pay for a thread pool
    return (
        lambda x: estimator.predict_proba(x)[:, positive]
    ), f"numpy preprocessing + {kind}.predict_proba (1 thread)"


@dataclass
class Scorer:
    """Scores a batch of `Columns`; `kind` is `compiled` or `pipeline` (the fallback)."""

    kind: str
    detail: str
    _score: Any

    def predict(self, columns: Columns) -> np.ndarray:
        """The model's raw answer per row (Answers.pipeline_raw's): the positive class's
        probability, a row of class probabilities, or the value."""
        with _quiet_finiteness_check():
            return np.asarray(self._score(columns), dtype=float)


def compile_model(model: Any) -> Scorer:
    """The compiled scorer of a fitted pipeline (behind an optional calibration map).
    Raises NotCompilable naming the first step it cannot reproduce."""
    pipeline = getattr(model, "classifier", model)
    calibration = getattr(model, "calibration", None)
    steps = [(n, s) for n, s in getattr(pipeline, "steps", []) if not hasattr(s, "fit_resample")]
    if len(steps) != 2 or steps[0][0] != "preprocess":
        raise NotCompilable(f"pipeline steps {[n for n, _ in steps]}")
    encode = _preprocessor(steps[0][1])
    proba, detail = _estimator(steps[1][1])
    if calibration is not None:
        detail += f" + {calibration.method} calibration"

    def score(columns: Columns) -> np.ndarray:
        positive = proba(encode(columns))
        return positive if calibration is None else calibration.apply(positive)

    return Scorer("compiled", detail, score)


def pipeline_scorer(
    model: Any, profile: Mapping[str, Mapping[str, Any]], answers: Answers | None = None
) -> Scorer:
    """The fallback: the pipeline itself, its estimator on one thread as well."""
    pipeline = inner_pipeline(model)
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)
    if answers is None:
        return Scorer(
            "pipeline",
            f"sklearn {type(pipeline).__name__}.predict_proba (1 thread)",
            lambda columns: model.predict_proba(columns_to_frame(columns, profile))[:, 1],
        )
    return Scorer(
        "pipeline",
        f"sklearn {type(pipeline).__name__} behind {type(model).__name__} (1 thread)",
        lambda columns: answers.pipeline_raw(model, columns_to_frame(columns, profile)),
    )


def inner_pipeline(model: Any) -> Any:
    """The sklearn pipeline behind a calibration map, a temperature or an interval."""
    for wrapper in ("classifier", "regressor"):
        if hasattr(model, wrapper):
            return getattr(model, wrapper)
    return model


def _quiet_finiteness_check() -> Any:
    """scikit-learn checks its input is finite by summing it: values near ±float32's max in
    two columns (allowed, and in the hard cases) overflow that sum to inf - inf, and numpy
    warns of an invalid value about a check that then passes, element by element."""
    return np.errstate(invalid="ignore", over="ignore")


def hard_cases(profile: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Rows that exercise every branch of the preprocessing: each known category,
    unseen and missing ones, each feature missing alone and all at once, values at and
    far beyond the training range (to the contract's limits), zero, 0/1 (booleans arrive
    as numbers), huge integers."""
    # The contract's limits: a float32 holds +-3.4e38, every estimator casts to it.
    numbers = [np.nan, 0.0, 1.0, -1.0, 1e9, -1e9, 3e38, -3e38, float(2**62)]
    longest = max(
        [len(numbers) + 3]
        + [len(s["categories"]) + 2 for s in profile.values() if s["kind"] == "category"]
    )
    cases: dict[str, list[Any]] = {}
    for name, spec in profile.items():
        if spec["kind"] == "category":
            values: list[Any] = [*spec["categories"], "never-seen", None]
            typical = next(iter(spec["categories"]), None)
        else:
            values = [spec["min"], spec["max"], *numbers]
            typical = spec["min"]
        cases[name] = [values[i % len(values)] for i in range(longest)] + [typical, None]
    for name in profile:  # one row per feature with only that feature missing
        for other in profile:
            cases[other].append(None if other == name else cases[other][-2])
    return {
        name: np.array(values, dtype=object)
        if profile[name]["kind"] == "category"
        else np.array([np.nan if v is None else v for v in values], dtype=float)
        for name, values in cases.items()
    }


def difference(scorer: Scorer, model: Any, frame: pd.DataFrame) -> float:
    """Largest absolute difference between the scorer and `model.predict_proba` on `frame`."""
    with _quiet_finiteness_check():
        expected = model.predict_proba(frame)[:, 1]
    found = scorer.predict(frame_to_columns(frame))
    return float(np.max(np.abs(found - expected), initial=0.0))


def build_scorer(
    model: Any,
    profile: Mapping[str, Mapping[str, Any]],
    rows: pd.DataFrame | None = None,
    answers: Answers | None = None,
) -> tuple[Scorer, dict[str, Any]]:
    """The compiled scorer if it equals the pipeline on the hard cases (and `rows`),
    else the pipeline itself. Returns it and the check: rows compared, largest difference.
    `answers` is how a version of another task than binary answers: its pipeline serves,
    checked to answer the hard cases."""
    check_frame = columns_to_frame(hard_cases(profile), profile)
    if rows is not None:
        check_frame = pd.concat([check_frame, columns_to_frame(frame_to_columns(rows), profile)])
    if answers is not None and answers.task != "binary":
        scorer = pipeline_scorer(model, profile, answers)
        scorer.predict(frame_to_columns(check_frame))
        reason = f"the compiled scorer covers binary models; this is a {answers.task} model"
        return scorer, {"rows": len(check_frame), "reason": reason}
    try:
        scorer = compile_model(model)
        worst = difference(scorer, model, check_frame)
        if not worst <= TOLERANCE:
            raise NotCompilable(f"it differs from the pipeline by {worst:.3g} > {TOLERANCE}")
    except NotCompilable as reason:
        log.warning("scorer: serving the sklearn pipeline, not a compiled scorer: %s", reason)
        return pipeline_scorer(model, profile), {"rows": len(check_frame), "reason": str(reason)}
    return scorer, {"rows": len(check_frame), "max_abs_difference": worst}
