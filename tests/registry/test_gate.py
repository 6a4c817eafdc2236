import numpy as np
import pytest

from mlops_starter.errors import ConfigError
from mlops_starter.registry.gate import (
    ComparedRows,
    champion_check,
    markdown_summary,
    paired_bootstrap,
    paired_bootstrap_task,
    threshold_checks,
    unfair_comparison_check,
    unseen_rows,
)
from mlops_starter.tasks import Binary, Multiclass, Regression

rng = np.random.default_rng(0)
Y = (rng.random(3000) < 0.1).astype(int)
SIGNAL = Y + rng.normal(0, 0.8, len(Y))  # a decent model's scores


def noisy(scale: float, seed: int) -> np.ndarray:
    return SIGNAL + np.random.default_rng(seed).normal(0, scale, len(Y))


def test_threshold_checks_compare_each_metric_with_its_bar():
    checks = threshold_checks(
        {"roc_auc": 0.81, "recall": 0.3}, {"roc_auc": 0.7, "recall": 0.4}, Binary.metrics
    )
    assert [(c.name, c.passed) for c in checks] == [("min_roc_auc", True), ("min_recall", False)]


def test_an_error_s_bar_is_its_most_and_a_score_s_its_least():
    checks = threshold_checks(
        {"rmse": 4.2, "mae": 3.1, "r2": 0.71},
        {"rmse": 5.0, "mae": 3.0, "r2": 0.7},
        Regression.metrics,
    )
    assert [(c.name, c.bar, c.passed) for c in checks] == [
        ("max_rmse", "<= 5.0", True),
        ("max_mae", "<= 3.0", False),
        ("min_r2", ">= 0.7", True),
    ]


@pytest.mark.parametrize(
    ("task", "bars", "named"),
    [
        (
            Regression,
            {"roc_auc": 0.7},
            r"gate.min_test.regression: roc_auc is no regression metric; bar any of rmse, mae, r2",
        ),
        (
            Multiclass,
            {"pr_auc": 0.2, "macro_f1": 0.5},
            r"gate.min_test.multiclass: pr_auc is no multiclass metric",
        ),
    ],
)
def test_a_bar_on_a_metric_the_task_has_not_is_named_with_the_ones_it_has(task, bars, named):
    with pytest.raises(ConfigError, match=named):
        task.bars(bars)


def test_compare_metric_auto_is_each_task_s_own_and_binary_refuses_a_threshold_metric():
    assert [t.compared("auto") for t in (Binary, Multiclass, Regression)] == [
        "pr_auc",
        "roc_auc_ovr",
        "r2",
    ]
    assert Regression.compared("rmse") == "rmse"
    with pytest.raises(ConfigError, match=r"'recall' depends on each model's own threshold"):
        Binary.compared("recall")
    with pytest.raises(ConfigError, match=r"'r2' is no multiclass metric"):
        Multiclass.compared("r2")


def test_a_regression_challenger_with_a_larger_error_is_worse_by_rmse_and_by_r2():
    rng = np.random.default_rng(3)
    y = rng.normal(50, 10, 2000)
    champion = y + rng.normal(0, 3, len(y))
    challenger = y + rng.normal(0, 6, len(y))
    task = Regression("y", "test")
    for metric in ("rmse", "r2"):
        result = paired_bootstrap_task(task, y, challenger, champion, metric, 300, 0.95, seed=0)
        assert result.high < -0.02, metric  # worse either way round
        assert not champion_check(result, 0.02).passed
    same = paired_bootstrap_task(task, y, champion, champion.copy(), "rmse", 200, 0.95, seed=0)
    assert same.delta == 0 and champion_check(same, 0.02).passed


def test_a_multiclass_bootstrap_redraws_resamples_that_miss_a_class():
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(300, int), np.ones(300, int), np.full(3, 2)]  # a class of three rows
    proba = rng.dirichlet(np.ones(3), len(y))
    task = Multiclass("y", "test", ("a", "b", "c"))
    result = paired_bootstrap_task(task, y, proba, proba.copy(), "roc_auc_ovr", 400, 0.95, seed=0)
    # (1 - 1/603)^603 of the time a resample has none of the three: about 5%.
    assert 330 < result.rounds < 400 and result.delta == 0


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
    checks = threshold_checks(
        {"roc_auc": 0.81, "recall": 0.3}, {"roc_auc": 0.7, "recall": 0.4}, Binary.metrics
    )
    text = markdown_summary(checks, "m", "4")
    assert "FAILED" in text and "| min_recall | 0.3 | >= 0.4 | **FAIL** |" in text


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_bootstrap_point_estimate_is_the_full_sample_difference(metric):
    from mlops_starter.metrics import RANKING_SCORERS

    result = paired_bootstrap(Y, noisy(1.0, 6), SIGNAL, metric, 100, 0.9, seed=0)
    expected = RANKING_SCORERS[metric](Y, noisy(1.0, 6)) - RANKING_SCORERS[metric](Y, SIGNAL)
    assert result.delta == pytest.approx(expected)


def test_only_test_rows_the_champion_never_trained_on_are_compared():
    trained = np.sort(np.array([5, 9, 11], dtype=np.uint64))
    test = np.array([1, 9, 5, 7, 11, 11], dtype=np.uint64)
    assert unseen_rows(test, trained).tolist() == [True, False, False, True, False, False]
    rows = ComparedRows("3", test_rows=6, unseen_rows=2, unseen_positives=1, recorded=True)
    assert rows.excluded_rows == 4
    assert rows.note() == (
        "compared on the 2 of 6 test rows that champion version 3 never trained on "
        "(1 positives); the 4 rows it trained on were left out"
    )
    assert "kept no record of its training rows" in ComparedRows("1", 6, 6, 1, False).note()


@pytest.mark.parametrize("policy", ["warn", "fail"])
def test_too_few_unseen_rows_is_said_in_words_and_never_called_worse(policy):
    rows = ComparedRows("1", test_rows=4000, unseen_rows=150, unseen_positives=7, recorded=True)
    check = unfair_comparison_check("pr_auc", rows, 200, 20, policy)
    assert not check.assessed and check.value is None and check.passed == (policy == "warn")
    assert "worse" not in check.detail
    for words in (
        "only 150 of 4000 test rows",
        "7 positives",
        "the other 3850 were in its",
        "gate.min_unseen_rows",
        "split.seed",
        f"gate.too_few_unseen is {policy}",
    ):
        assert words in check.detail, words
    summary = markdown_summary([check], "m", "2")
    assert summary.index("**Warning: not_worse_than_champion_pr_auc was not assessed.**") < (
        summary.index("| check |")
    )
    assert ("not assessed (pass by policy)" if policy == "warn" else "**FAIL** (not assessed)") in (
        summary
    )


def test_the_paired_bootstrap_gives_the_champions_own_interval_too():
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.1).astype(int)
    champion = np.clip(y * 0.3 + rng.random(3000) * 0.6, 0, 1)
    challenger = np.clip(y * 0.3 + rng.random(3000) * 0.6, 0, 1)
    result = paired_bootstrap(y, challenger, champion, "pr_auc", 300, 0.95, seed=0)
    assert result.champion_low < result.champion < result.champion_high
    rows = ComparedRows("1", 3500, 3000, int(y.sum()), True)
    assert champion_check(result, 0.02, rows).detail.startswith("compared on the 3000 of 3500")
