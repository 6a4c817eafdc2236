"""Metrics for a rare positive class: ranking quality (ROC-AUC, PR-AUC), decisions at
a threshold (precision, recall, F1), and calibration (Brier score)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    fbeta_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

# Threshold-free scores, by name; the gate compares models on one of these.
RANKING_SCORERS = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score}


def ranking_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    scores = {name: float(scorer(y, proba)) for name, scorer in RANKING_SCORERS.items()}
    return scores | {"brier": float(brier_score_loss(y, proba))}


def threshold_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (proba >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    return {
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(fbeta_score(y, predicted, beta=1.0, zero_division=0)),
        "true_negatives": int(tn),
        "false_positives": int(fp),
        "false_negatives": int(fn),
        "true_positives": int(tp),
    }


def classification_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        **ranking_metrics(y, proba),
        **threshold_metrics(y, proba, threshold),
        "threshold": float(threshold),
    }


def tune_threshold(y: np.ndarray, proba: np.ndarray, beta: float) -> tuple[float, float]:
    """The probability cut-off that maximises F-beta on (out-of-fold) predictions.

    beta > 1 weighs recall above precision (missing a churner costs more than a
    needless retention offer). Returns (threshold, best F-beta).
    """
    precision, recall, thresholds = precision_recall_curve(y, proba)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denominator = beta**2 * precision + recall
    scores = np.divide(
        (1 + beta**2) * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    best = int(np.argmax(scores))
    return float(thresholds[best]), float(scores[best])


def curve_tables(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, pd.DataFrame]:
    """ROC, PR and confusion-matrix tables in the shapes DVC's plot templates read."""
    fpr, tpr, roc_thresholds = roc_curve(y, proba)
    precision, recall, pr_thresholds = precision_recall_curve(y, proba)
    # Categories, not strings: a test set past memory has a row here per test row.
    outcomes = pd.Index(["negative", "positive"])
    labels = pd.Categorical.from_codes((np.asarray(y) == 1).astype(np.int8), outcomes)
    predicted = pd.Categorical.from_codes(
        (np.asarray(proba) >= threshold).astype(np.int8), outcomes
    )
    return {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.clip(roc_thresholds, 0, 1)}),
        "pr": pd.DataFrame(
            {"recall": recall[:-1], "precision": precision[:-1], "threshold": pr_thresholds}
        ),
        "confusion": pd.DataFrame({"actual": labels, "predicted": predicted}),
    }


def reliability_table(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Rows grouped into `bins` equal-count bins of predicted probability: mean predicted
    against observed positive rate (the reliability diagram), with the row count."""
    frame = pd.DataFrame({"y": np.asarray(y), "p": np.asarray(proba)})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), bins, labels=False)
    table = frame.groupby("bin").agg(
        mean_predicted=("p", "mean"), observed_rate=("y", "mean"), rows=("y", "size")
    )
    return table.reset_index(drop=True)


def calibration_metrics(y: np.ndarray, proba: np.ndarray, base_rate: float) -> dict[str, float]:
    """Expected calibration error over equal-count bins, and the Brier skill score against
    always predicting `base_rate` (the training set's positive rate): above 0 means the
    probabilities carry more than the base rate does, 0 or below that they are no better."""
    table = reliability_table(y, proba)
    ece = float(
        np.sum(table["rows"] * (table["mean_predicted"] - table["observed_rate"]).abs())
        / table["rows"].sum()
    )
    reference = float(brier_score_loss(y, np.full(len(y), base_rate)))
    return {
        "ece": ece,
        "brier_base_rate": reference,
        "brier_skill": 1.0 - float(brier_score_loss(y, proba)) / reference,
    }


def weighted_scores(
    y: np.ndarray, proba: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """The test metrics for many weightings of the same rows at once (one row of `weights`
    per weighting, e.g. how often a bootstrap resample drew each row): the same values as
    scikit-learn's scorers with `sample_weight`, from one sort instead of one per weighting.
    Tied scores count as one threshold, as scikit-learn counts them."""
    order = np.argsort(-proba, kind="stable")
    y_sorted, p_sorted, w = y[order], proba[order], weights[:, order].astype(float)
    true_pos = np.cumsum(w * y_sorted, axis=1)
    false_pos = np.cumsum(w * (1 - y_sorted), axis=1)
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tp, fp = true_pos[:, last_of_tie], false_pos[:, last_of_tie]
    positives, negatives = tp[:, -1:], fp[:, -1:]
    tpr = np.hstack([np.zeros_like(positives), tp]) / positives
    fpr = np.hstack([np.zeros_like(negatives), fp]) / negatives
    recall_steps = np.diff(tpr, axis=1)
    precision = tp / np.maximum(tp + fp, 1e-300)
    decided = (p_sorted >= threshold) * 1.0
    hits = (w * y_sorted) @ decided
    flagged = w @ decided
    return {
        "roc_auc": np.trapezoid(tpr, fpr, axis=1),
        "pr_auc": np.sum(recall_steps * precision, axis=1),
        "brier": (w @ (p_sorted - y_sorted) ** 2) / w.sum(axis=1),
        "recall": hits / positives[:, 0],
        "precision": np.divide(hits, flagged, out=np.zeros_like(hits), where=flagged > 0),
    }


def bootstrap_draws(
    y: np.ndarray, rounds: int, seed: int, chunk: int = 100
) -> Iterator[np.ndarray]:
    """Resamples of the rows of `y` (with replacement), as how often each row was drawn:
    a (resamples x rows) matrix per chunk. A resample holding one class only is dropped:
    it has no ranking metric."""
    rng = np.random.default_rng(seed)
    for start in range(0, rounds, chunk):
        draws = rng.multinomial(
            len(y), np.full(len(y), 1 / len(y)), size=min(chunk, rounds - start)
        )
        yield draws[(draws @ y > 0) & (draws @ (1 - y) > 0)]


def bootstrap_intervals(
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    rounds: int,
    confidence: float,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the test metrics over resamples of the test rows: how much
    of a metric is the model and how much is which rows happened to be in the test set."""
    y, proba = np.asarray(y), np.asarray(proba, dtype=float)
    samples: dict[str, list[np.ndarray]] = {}
    for draws in bootstrap_draws(y, rounds, seed):
        for name, values in weighted_scores(y, proba, threshold, draws).items():
            samples.setdefault(name, []).append(values)
    tail = (1 - confidence) / 2
    intervals = {}
    for name, parts in samples.items():
        low, high = np.quantile(np.concatenate(parts), [tail, 1 - tail])
        intervals[name] = (float(low), float(high))
    return intervals
