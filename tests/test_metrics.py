import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mlops_starter.metrics import (
    bootstrap_intervals,
    classification_metrics,
    curve_tables,
    tune_threshold,
    weighted_scores,
)

Y = np.array([0, 0, 0, 0, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.9])


def test_threshold_metrics_match_a_hand_count():
    m = classification_metrics(Y, P, threshold=0.35)
    # predicted positive: 0.6 (FP), 0.4 (TP), 0.9 (TP)
    assert (
        m["true_positives"],
        m["false_positives"],
        m["false_negatives"],
        m["true_negatives"],
    ) == (2, 1, 0, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(0.8)
    assert m["roc_auc"] == pytest.approx(7 / 8)


def test_tuned_threshold_maximises_f_beta():
    threshold, score = tune_threshold(Y, P, beta=1.0)
    assert threshold == pytest.approx(0.4) and score == pytest.approx(0.8)
    # Weighing precision heavily moves the cut-off up to the only certain positive.
    strict, _ = tune_threshold(Y, P, beta=0.1)
    assert strict == pytest.approx(0.9)


def test_curve_tables_have_the_columns_dvc_plots_read():
    tables = curve_tables(Y, P, 0.5)
    assert list(tables["roc"].columns[:2]) == ["fpr", "tpr"]
    assert list(tables["pr"].columns[:2]) == ["recall", "precision"]
    assert len(tables["confusion"]) == len(Y)


def test_weighted_scores_equal_scikit_learns_with_sample_weights_ties_included():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.08).astype(int)
    proba = np.round(np.clip(0.25 * y + 0.6 * rng.random(3000), 0, 1), 2)  # many ties
    draws = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=4)
    got = weighted_scores(y, proba, 0.3, draws)
    decided = (proba >= 0.3).astype(int)
    for row, weights in enumerate(draws):
        expected = {
            "roc_auc": roc_auc_score(y, proba, sample_weight=weights),
            "pr_auc": average_precision_score(y, proba, sample_weight=weights),
            "brier": brier_score_loss(y, proba, sample_weight=weights),
            "recall": recall_score(y, decided, sample_weight=weights),
            "precision": precision_score(y, decided, sample_weight=weights),
        }
        for name, value in expected.items():
            assert got[name][row] == pytest.approx(value, abs=1e-12), name


def test_bootstrap_intervals_hold_the_point_estimate_and_narrow_with_more_rows():
    rng = np.random.default_rng(1)

    def interval_width(rows):
        y = (rng.random(rows) < 0.1).astype(int)
        proba = np.clip(0.3 * y + 0.7 * rng.random(rows), 0, 1)
        low, high = bootstrap_intervals(y, proba, 0.5, 400, 0.95, 0)["roc_auc"]
        assert low < roc_auc_score(y, proba) < high
        return high - low

    assert interval_width(8000) < interval_width(500) / 2
