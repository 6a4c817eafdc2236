"""Performance estimated before labels (CBPE) lands near the performance the labels
later show while only the features' distribution moves, and misses a change in
P(label | features), as its assumptions say. NannyML's own tests check golden values;
these check each estimate against the labels of its window.

The world is a known one: features drawn from a moving normal, labels from a fixed
logistic (binary) or softmax (three classes) law, so a logistic regression fitted on
training rows is calibrated, as the template's models are out of fold."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from mlops_starter import expected_performance
from mlops_starter.config import MonitorConfig
from mlops_starter.monitoring.checks import estimated_performance

# Each class's weights on the two features, and its intercept (last column).
LAWS = {
    "binary": np.array([[0.0, 0.0, 0.0], [1.6, -1.0, -2.0]]),
    "multiclass": np.array([[0.0, 0.0, 0.0], [1.5, 0.5, -0.5], [-0.5, 1.5, -1.0]]),
}
# The law after concept drift: the same features, labels that now depend on them otherwise.
DRIFTED = {
    "binary": np.array([[0.0, 0.0, 0.0], [0.2, 1.0, -2.0]]),
    "multiclass": np.array([[0.0, 0.0, 0.0], [-0.5, 1.5, -1.0], [1.5, 0.5, -0.5]]),
}
RANKING = {"binary": "roc_auc", "multiclass": "roc_auc_ovr"}
WINDOWS, WINDOW_ROWS = 100, 500


def labels_of(law: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    logits = x @ law[:, :2].T + law[:, 2]
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return expected_performance.draw_labels(probabilities, rng)


def features(rows: int, step: float, rng: np.random.Generator) -> np.ndarray:
    """Training's distribution at step 0; by step 1 the mean has moved and the spread
    shrunk, so rows crowd where the classes are hard to tell apart."""
    return rng.normal([1.2 * step, -0.8 * step], 1.0 - 0.6 * step, (rows, 2))


def decide(probabilities: np.ndarray) -> np.ndarray:
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= 0.3).astype(int)
    return probabilities.argmax(axis=1)


@pytest.fixture(scope="module", params=["binary", "multiclass"])
def world(request):
    rng = np.random.default_rng(11)
    law = LAWS[request.param]
    x = features(20_000, 0.0, rng)
    model = LogisticRegression(C=100.0).fit(x, labels_of(law, x, rng))
    test = features(5_000, 0.0, rng)
    probabilities = model.predict_proba(test)
    reference = expected_performance.reference_spread(
        probabilities, decide(probabilities), labels_of(law, test, rng)
    )
    return request.param, law, model, reference


def windows(world, law: np.ndarray):
    """Each window's estimate (from its probabilities) and realized scores (from its labels)."""
    _, _, model, _ = world
    rng = np.random.default_rng(5)
    for step in np.linspace(0.0, 1.0, WINDOWS):
        x = features(WINDOW_ROWS, step, rng)
        probabilities = model.predict_proba(x)
        decided = decide(probabilities)
        actual = labels_of(law, x, rng)
        yield (
            expected_performance.estimated_scores(probabilities, decided),
            expected_performance.realized_scores(probabilities, decided, actual),
        )


def test_under_covariate_shift_the_estimate_lies_within_two_standard_errors_of_the_labels(world):
    task, law, _, reference = world
    found = list(windows(world, law))
    for name in reference["scores"]:
        estimated = np.array([e[name]["estimate"] for e, _ in found])
        error = np.array([e[name]["standard_error"] for e, _ in found])
        actual = np.array([r[name] for _, r in found])
        near = np.abs(estimated - actual) <= 2 * error
        assert near.mean() >= 0.9, f"{task} {name}: within 2 SE in {near.mean():.0%} of windows"
        if name.startswith("roc_auc"):
            # The shift moves the score itself: the test set's figure is more than 2 SE
            # off the labels in most windows, so the estimate is not near them by standing still.
            still = np.abs(reference["scores"][name] - actual) <= 2 * error
            assert still.mean() < 0.5, f"{task} {name}: the shift hardly moved it"


def test_the_check_alerts_when_the_shift_takes_performance_below_the_learned_band(world):
    task, _, model, reference = world
    rng = np.random.default_rng(8)
    ranking = RANKING[task]
    verdicts = {}
    for step in (0.0, 1.0):
        probabilities = model.predict_proba(features(WINDOW_ROWS, step, rng))
        figures, alerts = estimated_performance(
            probabilities, decide(probabilities), reference, MonitorConfig()
        )
        verdicts[step] = {a.subject for a in alerts}
        assert "calibrated" in figures["assumptions"]
    assert verdicts[0.0] == set()
    assert ranking in verdicts[1.0]


def test_a_fixed_floor_in_params_alerts_inside_the_band(world):
    task, _, model, reference = world
    probabilities = model.predict_proba(features(WINDOW_ROWS, 0.0, np.random.default_rng(2)))
    name = RANKING[task]
    strict = MonitorConfig(min_estimated={name: 0.999})
    _, alerts = estimated_performance(probabilities, decide(probabilities), reference, strict)
    assert [a.subject for a in alerts] == [name]
    assert f"monitor.min_estimated.{name}" in alerts[0].message


def test_concept_drift_is_missed_by_the_estimate_and_seen_by_the_labels(world):
    """CBPE's limit, which the docs state: when the labels' law changes and the features
    do not, the probabilities look as they did and so does the estimate."""
    task, _, model, reference = world
    rng = np.random.default_rng(9)
    x = features(WINDOW_ROWS * 3, 0.0, rng)
    probabilities = model.predict_proba(x)
    decided = decide(probabilities)
    figures, alerts = estimated_performance(probabilities, decided, reference, MonitorConfig())
    realized = expected_performance.realized_scores(
        probabilities, decided, labels_of(DRIFTED[task], x, rng)
    )
    scores = figures["scores"][RANKING[task]]
    assert alerts == []
    assert scores["estimate"] > scores["lower_threshold"]
    assert realized[RANKING[task]] < scores["lower_threshold"] - 0.1


@st.composite
def answered_rows(draw):
    classes = draw(st.integers(2, 5))
    rows = draw(st.integers(classes, 60))
    weights = draw(arrays(float, (rows, classes), elements=st.floats(0.01, 1.0)))
    probabilities = weights / weights.sum(axis=1, keepdims=True)
    actual = draw(arrays(np.int64, rows, elements=st.integers(0, classes - 1)))
    decided = draw(arrays(np.int64, rows, elements=st.integers(0, classes - 1)))
    return probabilities, decided, actual


@settings(max_examples=60, deadline=None)
@given(answered_rows())
def test_the_realized_scores_are_scikit_learns_and_raise_no_warning(answered):
    """With one-hot labels the soft confusion matrix is the ordinary one, so the same
    code that estimates also scores what happened, exactly as the task's metrics do."""
    probabilities, decided, actual = answered
    classes = probabilities.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = expected_performance.realized_scores(probabilities, decided, actual)
        expected_performance.estimated_scores(probabilities, decided)
    present = np.unique(actual)
    if classes == 2:
        if len(present) == 2:
            assert found["roc_auc"] == pytest.approx(roc_auc_score(actual, probabilities[:, 1]))
        assert found["f1"] == pytest.approx(f1_score(actual, decided, zero_division=0))
        return
    assert found["accuracy"] == pytest.approx(np.mean(actual == decided))
    labels = np.arange(classes)
    assert found["macro_f1"] == pytest.approx(
        f1_score(actual, decided, labels=labels, average="macro", zero_division=0)
    )
    assert found["balanced_accuracy"] == pytest.approx(
        np.mean([np.mean(decided[actual == c] == c) for c in present])
    )
    if len(present) == classes:
        assert found["roc_auc_ovr"] == pytest.approx(
            roc_auc_score(actual, probabilities, multi_class="ovr", labels=labels)
        )


def test_a_large_windows_standard_error_drawn_on_a_sample_matches_all_its_rows(world, monkeypatch):
    """Past DRAW_ROWS rows the labels are drawn on a sample and the spread scaled by
    √(sample / rows): the same standard error as drawing on every row, at a fixed cost."""
    task, _, model, _ = world
    probabilities = model.predict_proba(features(60_000, 0.5, np.random.default_rng(4)))
    decided = decide(probabilities)
    assert len(decided) >= expected_performance.DRAW_ROWS * 10
    sampled = expected_performance.estimated_scores(probabilities, decided)
    monkeypatch.setattr(expected_performance, "DRAW_ROWS", len(decided))
    every_row = expected_performance.estimated_scores(probabilities, decided)
    for name, found in every_row.items():
        assert sampled[name]["estimate"] == found["estimate"], name  # from every row
        ratio = sampled[name]["standard_error"] / found["standard_error"]
        assert 0.8 < ratio < 1.25, f"{task} {name}: sampled SE {ratio:.2f}x every row's"
