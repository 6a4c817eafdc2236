"""Classification scores from a confusion matrix of soft labels, so that one formula
gives what happened and what to expect. With the actual labels (one-hot rows) it is the
realized score; with the calibrated probabilities in their place it is the expected
score before any label arrives: confidence-based performance estimation (CBPE), as
NannyML does it.

Shared: evaluation records the test set's scores and their spread by sample size (the
reference a window's estimate is held against), and the monitor estimates each window.

CBPE holds while the probabilities stay calibrated on the served rows: no concept drift
(P(label | features) as in training) and no rows outside the training range, where
calibration was never checked. A drop caused by concept drift is invisible to it."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

# Label draws per window for an estimate's standard error, and test-set resamples
# for the reference's spread: enough for the second digit of a standard error.
DRAWS = 200
RESAMPLES = 100
SEED = 0
SPREAD_ROWS = 50_000  # a larger test set's spread is measured on this many of its rows
DRAW_ROWS = 5_000  # a larger window's standard error is drawn on this many of its rows


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    return np.divide(top, bottom, out=np.full(top.shape, np.nan), where=bottom > 0)


def soft_scores(
    labels: np.ndarray, probabilities: np.ndarray, ranks: np.ndarray, decided: np.ndarray
) -> dict[str, float]:
    """Every score of rows whose labels are `labels` (n x k, each row sums to 1: one-hot
    for actual labels, the probabilities for expected ones), ranked by `probabilities`'
    columns (`ranks`: their mid-ranks) and decided as class codes `decided`.

    Two classes give the positive (last) class's scores, as the binary task reports
    them (accuracy, which a rare class makes near 1 whatever the model, is left out);
    more give the one-against-rest averages. A class with no rows has no recall and no
    ROC-AUC (NaN); its F1 and an undecided class's precision count as 0, as
    scikit-learn's zero_division=0 does."""
    rows, classes = labels.shape
    confusion = np.stack(
        [np.bincount(decided, weights=labels[:, c], minlength=classes) for c in range(classes)]
    )  # actual x decided
    hits = np.diag(confusion)
    actual, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    precision, recall = _ratio(hits, predicted), _ratio(hits, actual)
    f1 = np.nan_to_num(_ratio(2 * hits, actual + predicted))
    # A class's ROC-AUC with soft labels: the expected share of (positive, negative)
    # pairs the score orders right, (Σ wᵢ Rᵢ - W(W+1)/2) / (W(n - W)) with mid-ranks Rᵢ.
    mass = labels.sum(axis=0)
    concordant = np.einsum("ij,ij->j", labels, ranks) - mass * (mass + 1) / 2
    auc = _ratio(concordant, mass * (rows - mass))
    if classes == 2:
        return {
            "roc_auc": float(auc[1]),
            "precision": float(np.nan_to_num(precision[1])),
            "recall": float(recall[1]),
            "f1": float(f1[1]),
        }
    return {
        "roc_auc_ovr": float(np.mean(auc)),
        "accuracy": float(hits.sum() / rows),
        "macro_f1": float(np.mean(f1)),
        "balanced_accuracy": float(np.nanmean(recall)),
    }


def one_hot(codes: np.ndarray, classes: int) -> np.ndarray:
    return (codes[:, None] == np.arange(classes)).astype(float)


def draw_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class code per row, drawn from its probabilities."""
    cumulative = np.cumsum(probabilities, axis=1)[:, :-1]
    return (rng.random(len(probabilities))[:, None] >= cumulative).sum(axis=1)


def estimated_scores(probabilities: np.ndarray, decided: np.ndarray) -> dict[str, dict[str, float]]:
    """Each score expected of rows with these calibrated `probabilities` (n x k) and
    decided classes, before their labels arrive, with its standard error: the spread of
    the realized score over labels drawn from the same probabilities, which shrinks with
    the window's rows as a sampling error does. A window of more than DRAW_ROWS rows
    draws on DRAW_ROWS of them and scales the spread by √(DRAW_ROWS / n), as the
    reference's spread is scaled, so a window's cost stops growing with its traffic."""
    ranks = rankdata(probabilities, axis=0)
    expected = soft_scores(probabilities, probabilities, ranks, decided)
    rng = np.random.default_rng(SEED)
    rows, classes = probabilities.shape
    scale = 1.0
    if rows > DRAW_ROWS:
        picked = np.sort(rng.choice(rows, DRAW_ROWS, replace=False))
        probabilities, decided = probabilities[picked], decided[picked]
        ranks, scale = rankdata(probabilities, axis=0), float(np.sqrt(DRAW_ROWS / rows))
    drawn = [
        soft_scores(
            one_hot(draw_labels(probabilities, rng), classes), probabilities, ranks, decided
        )
        for _ in range(DRAWS)
    ]
    return {
        name: {"estimate": value, "standard_error": _spread([d[name] for d in drawn]) * scale}
        for name, value in expected.items()
    }


def realized_scores(
    probabilities: np.ndarray, decided: np.ndarray, actual: np.ndarray
) -> dict[str, float]:
    """The same scores with the actual class codes."""
    ranks = rankdata(probabilities, axis=0)
    return soft_scores(one_hot(actual, probabilities.shape[1]), probabilities, ranks, decided)


def reference_spread(
    probabilities: np.ndarray, decided: np.ndarray, actual: np.ndarray
) -> dict[str, Any]:
    """The test set's realized scores, and their spread over samples of `spread_rows`
    rows (bootstrap): a window of n rows is expected within ± 3 · spread · √(spread_rows
    / n) of them, NannyML's thresholds from reference chunks, for any window size."""
    rng = np.random.default_rng(SEED)
    scores = realized_scores(probabilities, decided, actual)
    size = min(len(actual), SPREAD_ROWS)
    resampled = []
    for _ in range(RESAMPLES):
        picked = rng.integers(0, len(actual), size)
        resampled.append(realized_scores(probabilities[picked], decided[picked], actual[picked]))
    return {
        "scores": scores,
        "spread": {name: _spread([r[name] for r in resampled]) for name in scores},
        "spread_rows": size,
    }


def _spread(values: list[float]) -> float:
    finite = np.array([v for v in values if np.isfinite(v)])
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
