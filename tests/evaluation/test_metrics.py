import numpy as np
import pytest

from mlops_starter.evaluation.metrics import classification_metrics, curve_tables, tune_threshold

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
