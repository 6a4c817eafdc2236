"""Metrics for a rare positive class: ranking quality (ROC-AUC, PR-AUC), decisions at
a threshold (precision, recall, F1), and calibration (Brier score)."""

from __future__ import annotations

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
    labels = np.where(np.asarray(y) == 1, "positive", "negative")
    predicted = np.where(np.asarray(proba) >= threshold, "positive", "negative")
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
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue  # a resample with one class has no ranking metric
        labels, scores_ = y[rows], proba[rows]
        scores = ranking_metrics(labels, scores_)
        predicted = scores_ >= threshold
        hits = float((predicted & (labels == 1)).sum())
        scores["recall"] = hits / float(labels.sum())
        scores["precision"] = hits / float(predicted.sum()) if predicted.any() else 0.0
        for name, value in scores.items():
            samples.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2
    return {
        name: (float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail)))
        for name, values in samples.items()
    }
