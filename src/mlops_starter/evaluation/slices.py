"""Why the model predicts what it does, and for whom it works less well, on the test set.

Importance is by permutation of each ORIGINAL feature (all of a category's one-hot
columns move together), measured as the drop in the primary metric: it works for
every candidate and needs nothing but predictions. Slices are the rows sharing one
value of a categorical feature, or one quantile bin of an important numeric feature;
each is scored like the whole, and one far below the whole is flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_starter.config import SliceConfig
from mlops_starter.metrics import RANKING_SCORERS
from mlops_starter.rounding import round_sig
from mlops_starter.tasks import Binary, Task

MISSING = "(missing)"


def feature_importance(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    metric: str,
    repeats: int,
    seed: int,
    task: type[Task] | Task = Binary,
) -> pd.DataFrame:
    """Mean (and spread) loss in `metric`, one of `task`'s, when one feature's values are
    shuffled, most important first (a rise in an error counts as a loss). (sklearn's
    permutation_importance wants a fittable estimator; the calibrated model only
    predicts, and this loop is all it would do.)"""
    rng = np.random.default_rng(seed)
    sign = 1.0 if task.metrics[metric] else -1.0

    def score(rows: pd.DataFrame) -> float:
        # Rounded scores, as evaluate records them, so a tie is a tie on every machine.
        return sign * float(task.score(metric, y, round_sig(task.predict_raw(model, rows))))

    baseline = score(X)
    drops: dict[str, list[float]] = {}
    for column in X.columns:
        drops[column] = []
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[column] = rng.permutation(X[column].to_numpy())
            drops[column].append(baseline - score(shuffled))
    table = pd.DataFrame(
        {
            "feature": list(drops),
            "importance": [float(np.mean(d)) for d in drops.values()],
            "std": [float(np.std(d)) for d in drops.values()],
        }
    )
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _slice_scores(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = proba >= threshold
    positives = y == 1
    return {
        "roc_auc": float(RANKING_SCORERS["roc_auc"](y, proba)),
        "pr_auc": float(RANKING_SCORERS["pr_auc"](y, proba)),
        "recall": float((predicted & positives).sum() / positives.sum()),
        "mean_predicted": float(proba.mean()),
        "observed_rate": float(y.mean()),
    }


def slice_keys(X: pd.DataFrame, categorical: list[str], numeric: list[str], bins: int) -> dict:
    """Feature -> each row's slice: its category (missing is a slice of its own), or its
    quantile bin, written as the bin's interval of values."""
    keys = {}
    for column in categorical:
        keys[column] = X[column].astype("string").fillna(MISSING).to_numpy()
    for column in numeric:
        values = pd.to_numeric(X[column], errors="coerce")
        binned = pd.qcut(values, bins, duplicates="drop")
        keys[column] = binned.astype("string").fillna(MISSING).to_numpy()
    return keys


def slice_metrics(
    X: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    categorical: list[str],
    numeric: list[str],
    settings: SliceConfig,
) -> dict[str, Any]:
    """Scores per slice, with the whole test set for reference. A slice too small to
    score (settings.min_rows, settings.min_positives and at least one negative) is listed
    as not assessed; an assessed slice whose metric is settings.flag_below under the
    whole is flagged. `worst` names the assessed slice lowest on settings.metric."""
    overall = _slice_scores(y, proba, threshold)
    rows = []
    for feature, keys in slice_keys(X, categorical, numeric, settings.bins).items():
        for value in pd.unique(keys):
            members = keys == value
            positives = int(y[members].sum())
            entry: dict[str, Any] = {
                "feature": feature,
                "slice": str(value),
                "rows": int(members.sum()),
                "positives": positives,
            }
            assessed = (
                entry["rows"] >= settings.min_rows
                and positives >= settings.min_positives
                and positives < entry["rows"]
            )
            if assessed:
                entry |= _slice_scores(y[members], proba[members], threshold)
                entry["flagged"] = bool(
                    entry[settings.metric] < overall[settings.metric] - settings.flag_below
                )
            entry["assessed"] = assessed
            rows.append(entry)
    assessed_rows = [r for r in rows if r["assessed"]]
    worst = min(assessed_rows, key=lambda r: r[settings.metric], default=None)
    return {
        "metric": settings.metric,
        "overall": overall,
        "worst": worst,
        "flagged": [r for r in assessed_rows if r["flagged"]],
        "slices": rows,
    }


def task_slice_metrics(
    X: pd.DataFrame,
    y: np.ndarray,
    raw: np.ndarray,
    task: Task,
    categorical: list[str],
    numeric: list[str],
    settings: SliceConfig,
) -> dict[str, Any]:
    """Slices of a multi-class or regression test set, scored by the task's own
    comparison metric (roc_auc_ovr, r2: higher is better, free of the target's scale).
    A slice is assessed with settings.min_rows rows and, for classes, every class and
    settings.min_positives rows of the rarest; the rest is as for binary."""
    metric = task.compared("auto")
    classes = len(np.unique(y)) if task.has_classes else 0
    overall = {metric: task.score(metric, y, raw)}
    rows = []
    for feature, keys in slice_keys(X, categorical, numeric, settings.bins).items():
        for value in pd.unique(keys):
            members = keys == value
            present = y[members]
            entry: dict[str, Any] = {
                "feature": feature,
                "slice": str(value),
                "rows": int(members.sum()),
                "positives": task.rarest_rows(present) if classes else int(members.sum()),
            }
            assessed = entry["rows"] >= settings.min_rows and (
                not classes
                or (
                    len(np.unique(present)) == classes
                    and entry["positives"] >= settings.min_positives
                )
            )
            if assessed:
                entry[metric] = task.score(metric, present, raw[members])
                entry["flagged"] = bool(entry[metric] < overall[metric] - settings.flag_below)
            entry["assessed"] = assessed
            rows.append(entry)
    assessed_rows = [r for r in rows if r["assessed"]]
    return {
        "metric": metric,
        "overall": overall,
        "worst": min(assessed_rows, key=lambda r: r[metric], default=None),
        "flagged": [r for r in assessed_rows if r["flagged"]],
        "slices": rows,
    }
