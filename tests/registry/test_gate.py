import numpy as np
import pytest

from mlops_starter.registry.gate import (
    champion_check,
    markdown_summary,
    paired_bootstrap,
    threshold_checks,
)

rng = np.random.default_rng(0)
Y = (rng.random(3000) < 0.1).astype(int)
SIGNAL = Y + rng.normal(0, 0.8, len(Y))  # a decent model's scores


def noisy(scale: float, seed: int) -> np.ndarray:
    return SIGNAL + np.random.default_rng(seed).normal(0, scale, len(Y))


def test_threshold_checks_compare_each_metric_with_its_bar():
    checks = threshold_checks({"roc_auc": 0.81, "recall": 0.3}, {"roc_auc": 0.7, "recall": 0.4})
    assert [(c.name, c.passed) for c in checks] == [("min_roc_auc", True), ("min_recall", False)]


def test_same_model_twice_is_no_difference():
    result = paired_bootstrap(Y, SIGNAL, SIGNAL.copy(), "pr_auc", 200, 0.95, seed=1)
    assert result.delta == 0 and result.low == 0 and result.high == 0
    assert champion_check(result, 0.02).passed


def test_a_clearly_worse_challenger_fails_with_its_interval():
    result = paired_bootstrap(Y, noisy(3.0, 1), SIGNAL, "roc_auc", 300, 0.95, seed=1)
    check = champion_check(result, max_regression=0.02)
    assert result.high < -0.02 and not check.passed
    assert "worse than the champion" in check.detail and f"{result.low:+.4f}" in check.detail


def test_a_difference_within_noise_is_not_called_a_regression():
    champion, challenger = noisy(0.05, 2), noisy(0.05, 3)
    result = paired_bootstrap(Y, challenger, champion, "pr_auc", 300, 0.95, seed=1)
    assert result.low < 0 < result.high
    check = champion_check(result, max_regression=0.0)
    assert check.passed and "no difference beyond noise" in check.detail


def test_a_clearly_better_challenger_is_reported_as_better():
    result = paired_bootstrap(Y, SIGNAL, noisy(3.0, 1), "roc_auc", 300, 0.95, seed=1)
    assert "better than the champion" in champion_check(result, 0.02).detail


def test_pairing_narrows_the_interval():
    """Scoring both models on the same resampled rows cancels the noise they share."""
    champion, challenger = noisy(0.3, 4), noisy(0.3, 5)
    paired = paired_bootstrap(Y, challenger, champion, "roc_auc", 300, 0.95, seed=1)
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(8)
    from sklearn.metrics import roc_auc_score

    unpaired = []
    for _ in range(300):
        a, b = rng_a.integers(0, len(Y), len(Y)), rng_b.integers(0, len(Y), len(Y))
        unpaired.append(roc_auc_score(Y[a], challenger[a]) - roc_auc_score(Y[b], champion[b]))
    low, high = np.quantile(unpaired, [0.025, 0.975])
    assert paired.high - paired.low < (high - low) / 2


def test_markdown_summary_lists_every_check():
    checks = threshold_checks({"roc_auc": 0.81, "recall": 0.3}, {"roc_auc": 0.7, "recall": 0.4})
    text = markdown_summary(checks, "m", "4")
    assert "FAILED" in text and "| min_recall | 0.3 | >= 0.4 | **FAIL** |" in text


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_bootstrap_point_estimate_is_the_full_sample_difference(metric):
    from mlops_starter.evaluation.metrics import RANKING_SCORERS

    result = paired_bootstrap(Y, noisy(1.0, 6), SIGNAL, metric, 100, 0.9, seed=0)
    expected = RANKING_SCORERS[metric](Y, noisy(1.0, 6)) - RANKING_SCORERS[metric](Y, SIGNAL)
    assert result.delta == pytest.approx(expected)
