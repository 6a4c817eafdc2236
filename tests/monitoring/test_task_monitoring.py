"""Monitoring a multi-class or a regression model: its answers are logged as the service
logs them, read back, and checked against the test set's answers. Drift in what it
answers alerts per class probability or on the value; performance, once labels
arrive, is scored by the task's own metrics, and a concept shift is caught there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_starter.config import ExperimentConfig, MonitorConfig
from mlops_starter.data.profile import answer_profile, feature_profile
from mlops_starter.data.schema import FeatureSchema
from mlops_starter.evaluation.evaluate import performance_reference
from mlops_starter.monitoring.checks import run_checks
from mlops_starter.monitoring.experiment import decide, matured
from mlops_starter.monitoring.exported import ReportMetrics
from mlops_starter.monitoring.inputs import Reference, answers_in_log, read_prediction_log
from mlops_starter.monitoring.report import write_report
from mlops_starter.monitoring.timeline import run_over_time, trends
from mlops_starter.serving.prediction_log import LogBatch, PredictionLog
from mlops_starter.tasks import answers_of

SETTINGS = MonitorConfig()
ROWS = 2000
# A split's inverse-probability weights are noisy: its verdict needs more rows.
EXPERIMENT_ROWS = 8000
CLASSES = ["cat", "dog", "eel"]
ANSWERS = {
    "multiclass": answers_of({"task": "multiclass", "classes": CLASSES}),
    "regression": answers_of(
        {"task": "regression", "interval_half_width": 1.7, "interval_coverage": 0.9}
    ),
}


def raw_answers(task: str, rng: np.random.Generator, shifted: bool) -> np.ndarray:
    """The model's raw output for a batch: class probabilities, or values. Shifted: the
    inputs moved, so the answers lean to the last class, or rise by two."""
    if task == "multiclass":
        weights = [1.0, 1.0, 4.0] if shifted else [2.0, 2.0, 2.0]
        return rng.dirichlet(weights, ROWS)
    return rng.normal(2.0 if shifted else 0.0, 1.0, ROWS)


def actual_of(task: str, raw: np.ndarray, rng: np.random.Generator, concept: bool) -> list:
    """Labels as the model's calibrated answers say they fall; after a concept shift,
    unrelated to them."""
    if task == "multiclass":
        chances = np.full_like(raw, 1 / 3) if concept else raw
        return [CLASSES[rng.choice(3, p=p)] for p in chances]
    noise = rng.normal(0.0, 1.0, len(raw))
    return (noise * 3 if concept else raw + noise).tolist()


def reference_for(task: str, rng: np.random.Generator) -> Reference:
    answers = ANSWERS[task]
    raw = raw_answers(task, rng, shifted=False)
    decided = answers.decide(raw)
    actual = pd.Series(actual_of(task, raw, rng, concept=False))
    metrics = answers.realized(decided, actual)
    assert isinstance(metrics, dict)
    features = pd.DataFrame({"x": rng.normal(size=ROWS)})
    profile = answer_profile(answers.drift_series(decided), decided.get("label"))
    if (performance := performance_reference(answers, decided, answers.actual(actual))) is not None:
        profile["performance"] = performance
    return Reference(
        model="m",
        version="1",
        answers=answers,
        id_column="id",
        feature_profile=feature_profile(features, FeatureSchema(numeric=["x"], categorical=[])),
        score_profile=profile,
        test_metrics=metrics,
    )


def served(tmp_path, task: str, shifted: bool, concept: bool, seed: int):
    """A batch answered and logged as the service does, and its labels."""
    rng = np.random.default_rng(seed)
    answers = ANSWERS[task]
    raw = raw_answers(task, rng, shifted)
    ids = [f"r{i}" for i in range(ROWS)]
    log = PredictionLog(tmp_path / "log").start()
    keys = {"timestamp": "2026-12-01T00:00:00+00:00", "request_id": "q", "model": "m"}
    log.write(
        LogBatch(
            keys | {"model_version": "1"},
            ids,
            {"x": rng.normal(size=ROWS).tolist()},
            answers.per_row(answers.decide(raw)),
        )
    )
    log.close()
    labels = pd.DataFrame({"id": ids, "target": actual_of(task, raw, rng, concept)})
    return read_prediction_log([str(tmp_path / "log" / "*.jsonl")]), labels


@pytest.fixture(scope="module", params=list(ANSWERS))
def task(request):
    return request.param


@pytest.fixture(scope="module")
def reference(task):
    return reference_for(task, np.random.default_rng(1))


def alerts(report) -> set[tuple[str, str]]:
    return {(a["check"], a["subject"]) for a in report["alerts"]}


def test_answers_like_the_test_set_s_raise_no_alert(tmp_path, task, reference):
    log, labels = served(tmp_path, task, shifted=False, concept=False, seed=2)
    report = run_checks(log, reference, SETTINGS, labels, "target")
    assert alerts(report) == set(), report["alerts"]
    assert report["performance"]["labelled_rows"] == ROWS
    estimated = report["estimated_performance"]
    if task == "multiclass":  # before labels, near what they then show
        for name, found in estimated["scores"].items():
            realized = report["performance"]["metrics"][name]
            assert abs(found["estimate"] - realized) <= 3 * found["standard_error"], name
    else:
        assert estimated["note"].startswith("not estimated for a regression")
    over_time = run_over_time(log, reference, SETTINGS, labels, "target")
    assert over_time["windows"][0]["performance"] == report["performance"]  # one window
    charts = {chart.title for chart in trends(over_time, SETTINGS)}
    assert "prediction drift (PSI)" in charts
    assert ("estimated roc_auc_ovr" in charts) == (task == "multiclass")
    page = write_report(over_time, log, reference, tmp_path).read_text()
    # The trends, then the window's answers and x's against the reference.
    assert page.count("data:image/png;base64,") >= len(charts) + 2


def test_drifted_answers_alert_per_class_probability_or_on_the_value(tmp_path, task, reference):
    log, _ = served(tmp_path, task, shifted=True, concept=False, seed=3)
    found = {s for c, s in alerts(run_checks(log, reference, SETTINGS)) if c == "prediction_drift"}
    if task == "multiclass":
        assert {"probability of eel", "share of eel"} <= found
    else:
        assert found == {"value"}


def test_a_concept_shift_shows_in_the_task_s_metrics_once_labels_arrive(tmp_path, task, reference):
    log, labels = served(tmp_path, task, shifted=False, concept=True, seed=4)
    report = run_checks(log, reference, SETTINGS, labels, "target")
    metric = "roc_auc_ovr" if task == "multiclass" else "r2"
    assert ("performance", metric) in alerts(report)
    assert not [a for a in report["alerts"] if a["check"] == "prediction_drift"]
    if task == "regression":  # an error's drop is its rise
        drops = report["performance"]["drops"]
        assert drops["r2"] > SETTINGS.max_metric_drop["r2"]
    # What Prometheus scrapes carries the same figures, for every task.
    exported = ReportMetrics(SETTINGS)
    exported.update(run_over_time(log, reference, SETTINGS, labels, "target"))
    samples = {
        (sample.name, *sample.labels.values()): sample.value
        for family in exported.collect()
        for sample in family.samples
    }
    realized = report["performance"]["metrics"][metric]
    assert samples[("mlops_monitor_realized_score", metric)] == pytest.approx(realized)
    assert samples[("mlops_monitor_alerts", "performance")] >= 1
    for answer, found in report["prediction_drift"]["psi"].items():
        assert samples[("mlops_monitor_prediction_psi", answer)] == found
    estimated = {name[1] for name in samples if name[0] == "mlops_monitor_estimated_score"}
    assert estimated == set(report["estimated_performance"].get("scores", {}))


def experiment_log(tmp_path, task: str, mode: str, challenger_is: str, seed: int):
    """A shadow or split experiment's log, written as the service writes it, and its
    labels: the challenger's answers nearer the truth than the champion's, or farther."""
    rng = np.random.default_rng(seed)
    answers = ANSWERS[task]
    ids = [f"r{i}" for i in range(EXPERIMENT_ROWS)]
    if task == "multiclass":
        truth = rng.dirichlet([1.0, 1.0, 1.0], EXPERIMENT_ROWS)
        actual = [CLASSES[rng.choice(3, p=p)] for p in truth]
        noise = {"better": 0.1, "worse": 2.0, "champion": 0.8}

        def answered(kind):
            logits = np.log(truth) + rng.normal(0, noise[kind], truth.shape)
            return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    else:
        truth = rng.normal(0, 3, EXPERIMENT_ROWS)
        actual = (truth + rng.normal(0, 0.5, EXPERIMENT_ROWS)).tolist()
        noise = {"better": 0.2, "worse": 2.0, "champion": 1.0}

        def answered(kind):
            return truth + rng.normal(0, noise[kind], EXPERIMENT_ROWS)

    log = PredictionLog(tmp_path / "experiment").start()
    keys = {"timestamp": "2026-05-01T00:00:00+00:00", "request_id": ids, "model": "m"}
    champion, challenger = answered("champion"), answered(challenger_is)
    if mode == "shadow":
        for version, raw in (("3", champion), ("4", challenger)):
            row_answers = answers.per_row(answers.decide(raw))
            log.write(LogBatch(keys | {"model_version": version}, ids, {}, row_answers))
    else:
        to_challenger = rng.random(EXPERIMENT_ROWS) < 0.5
        raw = np.where(
            to_challenger[:, None] if raw_is_matrix(champion) else to_challenger,
            challenger,
            champion,
        )
        versions = np.where(to_challenger, "4", "3").tolist()
        log.write(
            LogBatch(
                keys | {"model_version": versions}, ids, {}, answers.per_row(answers.decide(raw))
            )
        )
    log.close()
    return read_prediction_log([str(tmp_path / "experiment" / "*.jsonl")]), pd.DataFrame(
        {"id": ids, "target": actual}
    )


def raw_is_matrix(raw: np.ndarray) -> bool:
    return raw.ndim == 2


@pytest.mark.parametrize("mode", ["shadow", "split"])
@pytest.mark.parametrize("challenger_is", ["better", "worse"])
def test_an_experiment_weighs_each_row_by_the_task_s_own_loss(tmp_path, task, mode, challenger_is):
    """Minus the log loss of the actual class, or minus the squared error: the verdict
    finds the challenger nearer the truth better and the one farther worse."""
    log, labels = experiment_log(tmp_path, task, mode, challenger_is, seed=5)
    answers = answers_in_log(log, positive_label=None)
    assert answers.task == task
    settings = ExperimentConfig(mode=mode, challenger_share=0.5, maturation_hours=0)
    rows = matured(log, labels, "target", settings, pd.Timestamp("2026-06-01", tz="UTC"))
    metric = "roc_auc_ovr" if task == "multiclass" else "r2"
    found = decide(rows, mode, "3", "4", settings, metric, answers, evidence=mode == "split")
    assert found["verdict"] == challenger_is, found["effect"]
    assert found["effect"]["per_row"] == (
        "minus the log loss" if task == "multiclass" else "minus the squared error"
    )
    if mode == "split":  # each arm scored by the task's metric
        arms = found["arms"]
        better, worse = ("4", "3") if challenger_is == "better" else ("3", "4")
        assert arms[better][metric] > arms[worse][metric]
