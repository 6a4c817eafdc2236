"""Each drift scenario raises its own alert and no other; drift that begins part-way
through the log is dated to its first window; bad logs get clear errors.

A small model is trained in-process on the demo data; each scenario's batch is
scored by it and written with the service's PredictionLog, then read back."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from conftest import Webhook, missing_as_none
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlops_starter.config import MonitorConfig, RetrainConfig
from mlops_starter.data.demo import generate_demo_table, generate_production_batch
from mlops_starter.data.profile import feature_profile, score_profile
from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.evaluation.evaluate import performance_reference
from mlops_starter.extensions import import_extensions
from mlops_starter.metrics import classification_metrics
from mlops_starter.monitoring.checks import CHECKS, WHAT_TO_DO, run_checks, system_health
from mlops_starter.monitoring.incremental import MonitorState
from mlops_starter.monitoring.inputs import (
    MonitorError,
    Reference,
    feature_frame,
    log_lines,
    read_prediction_log,
)
from mlops_starter.monitoring.notify import post_alerts
from mlops_starter.monitoring.report import write_report
from mlops_starter.monitoring.timeline import run_over_time, trends, window_starts
from mlops_starter.serving.prediction_log import (
    LogBatch,
    PredictionLog,
    _RotatingFile,
    rewrite_rotated,
)
from mlops_starter.storage import json_records
from mlops_starter.tasks.binary import BinaryAnswers
from mlops_starter.training.candidates import build_pipeline

XGB = {
    "n_estimators": 150,
    "learning_rate": 0.1,
    "max_depth": 3,
    "min_child_weight": 1.0,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "reg_alpha": 0.0,
    "reg_lambda": 1.0,
    "scale_pos_weight": 1.0,
}
SETTINGS = MonitorConfig()
EXAMPLE_CHECK = Path(__file__).resolve().parents[2] / "docs/examples/traffic_check.py"


@pytest.fixture(scope="module")
def trained():
    table = generate_demo_table(12_000, seed=3)
    schema = FeatureSchema.infer(table, ["customer_id", "signup_date", "churned"])
    train, test = table.iloc[:9000], table.iloc[9000:]
    model = build_pipeline("xgboost", XGB, schema, "none", 0, 1).fit(
        train[schema.columns], encode_target(train["churned"], "yes")
    )
    proba = model.predict_proba(test[schema.columns])[:, 1]
    threshold = float(np.quantile(proba, 0.8))
    y = encode_target(test["churned"], "yes").to_numpy()
    answers = BinaryAnswers(threshold, "yes")
    reference = Reference(
        model="churn-classifier",
        version="1",
        answers=answers,
        id_column="customer_id",
        feature_profile=feature_profile(train[schema.columns], schema),
        score_profile=score_profile(proba, threshold)
        | {"performance": performance_reference(answers, answers.decide(proba), y)},
        test_metrics=classification_metrics(y, proba, threshold),
    )
    return model, schema, reference


def served_log(
    tmp_path,
    model,
    schema,
    batch: pd.DataFrame,
    threshold: float,
    timestamp: str = "2026-11-24T08:00:00+00:00",
) -> pd.DataFrame:
    """Score a batch and log it as the service does, at `timestamp`, then read it back."""
    proba = model.predict_proba(batch[schema.columns])[:, 1]
    log = PredictionLog(tmp_path).start()
    for start in range(0, len(batch), 100):  # one request per 100 rows
        rows = batch.iloc[start : start + 100]
        probabilities = proba[start : start + 100]
        log.write(
            LogBatch(
                {
                    "timestamp": timestamp,
                    "request_id": f"r{start // 100}",
                    "model": "churn-classifier",
                    "model_version": "1",
                },
                rows["customer_id"].tolist(),
                {c: [r[c] for r in json_records(rows[[c]])] for c in schema.columns},
                {
                    "probability": probabilities.tolist(),
                    "label": (probabilities >= threshold).astype(int).tolist(),
                },
            )
        )
    log.close()
    return read_prediction_log([str(tmp_path / "predictions-*.jsonl")])


def alerts_for(tmp_path, trained, scenario: str, with_labels: bool = True):
    model, schema, reference = trained
    batch = generate_production_batch(3000, seed=21, scenario=scenario)
    log = served_log(tmp_path, model, schema, batch, reference.answers.threshold)
    labels = batch[["customer_id", "churned"]] if with_labels else None
    report = run_checks(log, reference, SETTINGS, labels, "churned")
    return report, {(a["check"], a["subject"]) for a in report["alerts"]}


def test_no_drift_raises_no_alert(tmp_path, trained):
    report, alerts = alerts_for(tmp_path, trained, "none")
    assert alerts == set(), report["alerts"]
    assert report["performance"]["labelled_rows"] == 3000


def test_covariate_shift_names_the_shifted_features(tmp_path, trained):
    report, alerts = alerts_for(tmp_path, trained, "covariate")
    drifted = {subject for check, subject in alerts if check == "data_drift"}
    assert drifted == {"monthly_charges", "tenure_months"}
    assert list(report["data_drift"])[:2] == sorted(
        drifted, key=lambda f: -report["data_drift"][f]["psi"]
    )
    assert not {check for check, _ in alerts} & {"performance"}
    assert {s for c, s in alerts if c == "input_quality"} <= drifted


def test_prior_shift_moves_the_positive_rate_only(tmp_path, trained):
    report, alerts = alerts_for(tmp_path, trained, "prior")
    assert alerts == {("prediction_drift", "positive_rate")}, report["alerts"]
    assert report["prediction_drift"]["positive_rate_shift"] > SETTINGS.max_positive_rate_shift


def test_concept_drift_shows_only_once_labels_arrive(tmp_path, trained):
    _, without_labels = alerts_for(tmp_path / "a", trained, "concept", with_labels=False)
    assert without_labels == set()
    report, alerts = alerts_for(tmp_path / "b", trained, "concept")
    assert {check for check, _ in alerts} == {"performance"}
    assert report["performance"]["metrics"]["roc_auc"] < 0.6


def test_broken_inputs_are_input_quality_alerts(tmp_path, trained):
    report, alerts = alerts_for(tmp_path, trained, "broken")
    assert alerts == {
        ("input_quality", "age"),
        ("input_quality", "region"),
    }, report["alerts"]
    assert report["input_quality"]["region"]["unseen_category_rate"] > 0.4
    assert "NORTH" in report["input_quality"]["region"]["unseen_examples"]


def test_a_renamed_column_is_a_schema_alert(tmp_path, trained):
    model, schema, reference = trained
    batch = generate_production_batch(600, seed=5)
    log = served_log(tmp_path, model, schema, batch, reference.answers.threshold)
    log = log.rename(columns={"features.payment_method": "features.payment_type"})
    report = run_checks(log, reference, SETTINGS)
    assert ("input_quality", "payment_method") in {
        (a["check"], a["subject"]) for a in report["alerts"]
    }
    assert report["input_quality"]["payment_method"] == {"present": False}


def test_the_report_is_an_html_page_with_plots(tmp_path, trained):
    model, schema, reference = trained
    batch = generate_production_batch(1000, seed=8, scenario="covariate")
    log = served_log(tmp_path, model, schema, batch, reference.answers.threshold)
    report = run_over_time(log, reference, SETTINGS)
    report["experiment"] = {"experiment": "exp-7", "verdict": "undecided", "matured_rows": 12}
    page = write_report(report, log, reference, tmp_path).read_text()
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") >= 3
    assert "tenure_months: PSI" in page
    # Tables a person reads: no dict printed raw, no figure to 16 digits.
    assert '{"' not in page and not re.search(r"\d\.\d{6,}", page)
    assert "<th>standard error</th>" in page  # estimated performance, a row per score
    assert "<h2>experiment</h2>" in page and "undecided" in page  # mlops monitor --experiment


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no entries"),
        ("{not json\n", ":1: not JSON"),
        ('{"timestamp": "x"}\n', "missing ['request_id'"),
        (
            '{"timestamp": "yesterday", "request_id": "r", "model": "m", "model_version": "1", '
            '"features": {}, "probability": 0.5}\n',
            ":1: timestamp 'yesterday' is not an ISO 8601 time",
        ),
        ("[1, 2]\n", "not an object"),
        (
            '{"timestamp": "x", "request_id": "r", "model": "m", "model_version": "1", '
            '"features": {}, "label": 1}\n',
            "missing ['probability or probabilities or value']",
        ),
    ],
)
def test_a_malformed_or_empty_log_gets_a_clear_error(tmp_path, content, message):
    (tmp_path / "predictions-a.jsonl").write_text(content)
    with pytest.raises(MonitorError, match=message.replace("[", r"\[")):
        read_prediction_log([str(tmp_path / "predictions-*.jsonl")])


def test_times_with_and_without_a_fraction_of_a_second_are_read_alike(tmp_path):
    """isoformat() drops a zero fraction, so one log can hold both forms."""
    entry = (
        '{{"timestamp": "{}", "request_id": "r", "model": "m", "model_version": "1", '
        '"features": {{}}, "probability": 0.5}}\n'
    )
    stamps = [
        "2026-11-24T08:00:00.250000+00:00",
        "2026-11-24T08:00:01+00:00",
        "2026-11-24T09:00:00Z",
    ]
    (tmp_path / "predictions-a.jsonl").write_text("".join(entry.format(t) for t in stamps))
    log = read_prediction_log([str(tmp_path / "predictions-*.jsonl")])
    assert list(log["timestamp"]) == [pd.Timestamp(t) for t in stamps]


# What users' logs hold: any feature names, values of one type per feature or not, nulls,
# a shadow's null features, a key some lines lack, blank lines.
feature_values = st.one_of(
    st.none(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=4),
)
log_entries = st.lists(
    st.fixed_dictionaries(
        {
            "timestamp": st.sampled_from(["2026-11-24T08:00:00+00:00", "2026-11-25T09:30:00.5Z"]),
            "request_id": st.text(min_size=1, max_size=3),
            "model": st.just("m"),
            "model_version": st.sampled_from(["1", "2"]),
            "features": st.dictionaries(
                st.one_of(st.sampled_from(["a", "b", "é x"]), st.text(max_size=4)), feature_values
            ),
            "probability": st.floats(0, 1),
        },
        optional={"arm": st.sampled_from(["champion", "shadow"]), "id": st.text(max_size=3)},
    ).map(lambda e: e | {"features": None} if e.get("arm") == "shadow" else e),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=log_entries, blank_after=st.integers(0, 30), rotated=st.booleans())
def test_any_log_reads_as_its_lines_say(entries, blank_after, rotated):
    """Arrow's column-wise read, or the line-by-line read it falls back to, gives each
    line's values: features in `features.<name>` columns, absent ones as missing; and
    so does the file rotation rewrote (as Parquet, or gzipped), and each window the
    monitor's state keeps (as Parquet, or lines)."""
    lines = [orjson.dumps(e) + b"\n" for e in entries]
    lines.insert(blank_after, b"\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictions-a.jsonl.2026-11-25T00-00-00-000000"
        path.write_bytes(b"".join(lines))
        if rotated:
            rewrite_rotated(path, keep=10)
            assert not path.exists()
        pattern = [str(Path(folder) / "predictions-a.jsonl*")]
        log = read_prediction_log(pattern)
        state = MonitorState(Path(folder) / "state", "1D", pattern)
        assert state.read_new() == len(entries)
        windows = window_starts(log["timestamp"], "1D")
        for start, rows in log.groupby(windows):
            kept = state.rows(start.isoformat())
            # A feature no line of this window sent is no column of it, or null.
            assert rows.drop(columns=kept.columns).isna().all().all()
            pd.testing.assert_frame_equal(
                missing_as_none(kept), missing_as_none(rows[kept.columns]), check_dtype=False
            )

    features = feature_frame(log)
    assert len(log) == len(entries)
    assert set(features.columns) == {name for e in entries for name in e["features"] or {}}
    for row, entry in enumerate(entries):
        assert log["timestamp"].iloc[row] == pd.Timestamp(entry["timestamp"])
        assert log["request_id"].iloc[row] == entry["request_id"]
        for name in features.columns:
            sent, read = (entry["features"] or {}).get(name), features[name].iloc[row]
            if sent is None:
                assert pd.isna(read), (name, read)
            else:
                assert read == sent or float(read) == pytest.approx(float(sent)), (name, read)


def test_no_log_files_is_a_clear_error(tmp_path):
    with pytest.raises(MonitorError, match="no prediction log files match"):
        read_prediction_log([str(tmp_path / "nothing-*.jsonl")])


def test_system_health_reads_errors_and_latency_from_prometheus_text():
    log = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-11-24T08:00:00Z", "2026-11-24T08:01:00Z"]),
            "request_id": ["a", "b"],
            "model_version": ["1", "1"],
        }
    )
    text = "\n".join(
        [
            "# TYPE bentoml_service_request_total counter",
            'bentoml_service_request_total{endpoint="/predict",http_response_code="200"} 90.0',
            'bentoml_service_request_total{endpoint="/predict",http_response_code="400"} 8.0',
            'bentoml_service_request_total{endpoint="/predict",http_response_code="500"} 2.0',
            "# TYPE bentoml_service_request_duration_seconds histogram",
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict",le="0.05"} 50.0',
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict",le="2.5"} 99.0',
            'bentoml_service_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 100.0',
        ]
    )
    figures, alerts = system_health(log, text, SETTINGS)
    assert figures["server_error_rate"] == pytest.approx(0.02)
    assert figures["latency_p50_s"] == 0.05 and figures["latency_p99_s"] == 2.5
    assert {(a.check, a.subject) for a in alerts} == {
        ("system_health", "server_errors"),
        ("input_quality", "rejected_requests"),
        ("system_health", "latency_p99"),
    }


def test_a_team_check_from_outside_src_runs_and_shows_on_the_page(tmp_path, trained):
    """The docs' example check, as a module of the team's own named in `extensions`:
    run_checks runs it with its settings from monitor.custom, and the page shows it."""
    shutil.copy(EXAMPLE_CHECK, tmp_path / "team_traffic.py")
    import_extensions(["team_traffic"], tmp_path)
    try:
        model, schema, reference = trained
        log = served_log(
            tmp_path, model, schema, generate_demo_table(300, seed=5), reference.answers.threshold
        )
        quiet = MonitorConfig(custom={"traffic_floor": {"min_records_per_hour": 1000}})
        report = run_checks(log, reference, quiet)
        assert report["traffic_floor"] == {"records_per_hour": 300.0, "floor": 1000.0}
        assert [a["check"] for a in report["alerts"]] == ["traffic_floor"]
        page = write_report(
            run_over_time(log, reference, quiet), log, reference, tmp_path
        ).read_text()
        assert "<h3>traffic floor</h3>" in page and "below the floor of 1000" in page
        busy = MonitorConfig(custom={"traffic_floor": {"min_records_per_hour": 100}})
        assert run_checks(log, reference, busy)["alerts"] == []
    finally:
        CHECKS.pop("traffic_floor")
        sys.modules.pop("team_traffic")


DAYS, DRIFT_DAY, ROWS = 9, 6, 500


def days_of_traffic(folders, trained, scenario: str):
    """Nine days of 500 records, `scenario` from day 6 on; the log, and the batches by day."""
    model, schema, reference = trained
    logs, batches = [], []
    for day in range(DAYS):
        batch = generate_production_batch(
            ROWS, seed=40 + day, scenario=scenario if day >= DRIFT_DAY else "none"
        )
        batch["customer_id"] = f"d{day}-" + batch["customer_id"]
        when = f"2026-11-{day + 10:02d}T{8 + day % 5:02d}:30:00+00:00"
        folder = folders.mktemp(f"day{day}")
        logs.append(served_log(folder, model, schema, batch, reference.answers.threshold, when))
        batches.append(batch)
    return pd.concat(logs, ignore_index=True), batches


@pytest.fixture(scope="module")
def drifting(tmp_path_factory, trained):
    return days_of_traffic(tmp_path_factory, trained, "covariate")


def test_drift_that_begins_part_way_is_dated_to_its_first_window(trained, drifting):
    _, _, reference = trained
    log, _ = drifting
    report = run_over_time(log, reference, SETTINGS)
    windows = report["windows"]
    assert [w["start"][:10] for w in windows] == [f"2026-11-{d + 10}" for d in range(DAYS)]
    assert [w["records"] for w in windows] == [ROWS] * DAYS
    assert report["current"] == DAYS - 1
    assert all(not w["alerts"] for w in windows[:DRIFT_DAY]), [w["alerts"] for w in windows]
    drifted = {a["subject"]: a for a in report["alerts"] if a["check"] == "data_drift"}
    assert set(drifted) == {"monthly_charges", "tenure_months"}
    assert {a["began"] for a in drifted.values()} == {windows[DRIFT_DAY]["start"]}
    assert report["settings"]["window"] == "1D"


def test_the_window_setting_sets_the_windows(trained, drifting):
    _, _, reference = trained
    log, _ = drifting
    two_days = run_over_time(log, reference, SETTINGS.model_copy(update={"window": "2D"}))
    # Windows are cut from the Unix epoch, so every run (and every reader) cuts the same.
    epoch = pd.Timestamp(0, tz="UTC")
    starts = [pd.Timestamp(w["start"]) for w in two_days["windows"]]
    assert all((start - epoch) % pd.Timedelta("2D") == pd.Timedelta(0) for start in starts)
    assert len(starts) == 5 and sum(w["records"] for w in two_days["windows"]) == DAYS * ROWS
    # Twelve hours split no day here: each day's records came within one morning.
    half_days = run_over_time(log, reference, SETTINGS.model_copy(update={"window": "12h"}))
    assert len(half_days["windows"]) == DAYS


def test_a_retrain_is_due_once_its_checks_alerted_in_enough_of_the_last_windows(trained, drifting):
    _, _, reference = trained
    log, _ = drifting
    drifted_days = DAYS - DRIFT_DAY  # each alerting on data drift

    def retrain(**rule):
        settings = SETTINGS.model_copy(update={"retrain_when": RetrainConfig(**rule)})
        return run_over_time(log, reference, settings)["retrain"]

    due = retrain(checks=["data_drift"], alerting_windows=drifted_days, of_last=5)
    assert due["due"] and len(due["alerting_windows"]) == drifted_days
    assert due["alerting_windows"][0].startswith(f"2026-11-{DRIFT_DAY + 10}")
    assert not retrain(checks=["data_drift"], alerting_windows=drifted_days + 1, of_last=5)["due"]
    # Only the last of_last windows count: two, of which both drifted.
    assert retrain(checks=["data_drift"], alerting_windows=2, of_last=2)["due"]
    assert not retrain(checks=["system_health"], alerting_windows=1, of_last=9)["due"]
    with pytest.raises(MonitorError, match=r"retrain_when.checks names \['drfit'\]"):
        retrain(checks=["drfit"])
    with pytest.raises(ValidationError, match="alerting_windows"):
        RetrainConfig(alerting_windows=6, of_last=5)


@pytest.mark.parametrize("window", ["monthly", "-1D", "0s"])
def test_a_window_that_is_no_time_span_is_refused_by_name(window):
    with pytest.raises(ValidationError, match="window"):
        MonitorConfig(window=window)


def test_a_thin_newest_window_leaves_the_verdict_to_the_last_full_one(tmp_path, trained, drifting):
    model, schema, reference = trained
    log, _ = drifting
    early = served_log(
        tmp_path,
        model,
        schema,
        generate_production_batch(50, seed=99),
        reference.answers.threshold,
        "2026-11-19T01:00:00+00:00",
    )
    report = run_over_time(pd.concat([log, early], ignore_index=True), reference, SETTINGS)
    assert report["windows"][-1]["records"] == 50 and report["current"] == DAYS - 1
    assert {a["subject"] for a in report["alerts"]} >= {"monthly_charges", "tenure_months"}


def test_labels_fill_in_realized_performance_beside_the_estimate(trained, drifting):
    _, _, reference = trained
    log, batches = drifting
    arrived = pd.concat(batches[: DAYS - 2])[["customer_id", "churned"]]
    report = run_over_time(log, reference, SETTINGS, arrived, "churned")
    chart = next(c for c in trends(report, SETTINGS) if c.title == "estimated roc_auc")
    points = chart.series["roc_auc"]
    assert all(p is not None for p in points)
    assert [p.realized is not None for p in points] == [True] * (DAYS - 2) + [False] * 2
    for point in points[: DAYS - 2]:  # covariate shift: the estimate follows the labels
        assert abs(point.value - point.realized) < 4 * point.standard_error
    assert all(p.lower < p.value for p in points[:DRIFT_DAY])


def test_the_page_puts_dated_alerts_first_then_the_trends(tmp_path, trained, drifting):
    _, _, reference = trained
    log, _ = drifting
    report = run_over_time(log, reference, SETTINGS)
    page = write_report(report, log, reference, tmp_path).read_text()
    alerts = page.index('<table class="alerts">')
    assert alerts < page.index("<h2>Over time</h2>") < page.index("<h3>data drift</h3>")
    assert f"<td>{report['windows'][DRIFT_DAY]['start'][:16].replace('T', ' ')}</td>" in page
    assert WHAT_TO_DO["data_drift"] in page
    assert page.count('<tr class="alerting">') == DAYS - DRIFT_DAY
    charts = trends(report, SETTINGS)
    window_plots = 1 + 6  # the window's probabilities, and its six most drifted features
    assert page.count("data:image/png;base64,") == len(charts) + window_plots
    assert '{"' not in page and not re.search(r"\d\.\d{6,}", page)
    assert (tmp_path / "monitoring.html").stat().st_size < 2_000_000


def test_a_drop_the_late_labels_show_is_judged_on_the_newest_window_they_cover(
    tmp_path_factory, trained
):
    _, _, reference = trained
    log, batches = days_of_traffic(tmp_path_factory, trained, "concept")
    arrived = pd.concat(batches[: DRIFT_DAY + 1])[["customer_id", "churned"]]
    report = run_over_time(log, reference, SETTINGS, arrived, "churned")
    windows = report["windows"]
    assert report["current"] == DAYS - 1 and not windows[-1]["alerts"]
    dropped = {a["subject"]: a for a in report["alerts"] if a["check"] == "performance"}
    assert "roc_auc" in dropped, report["alerts"]
    assert (
        dropped["roc_auc"]["window"] == dropped["roc_auc"]["began"] == windows[DRIFT_DAY]["start"]
    )
    # Before it, no clean day's few dozen positives alerted by chance.
    assert not any(w["alerts"] for w in windows[:DRIFT_DAY])


def test_alerts_are_posted_to_the_webhook_with_when_they_began_and_the_page(trained, drifting):
    _, _, reference = trained
    log, _ = drifting
    report = run_over_time(log, reference, SETTINGS)
    hook = Webhook()
    try:
        env = {"MLOPS_ALERT_WEBHOOK": hook.url, "GITHUB_RUN_ID": "42"}
        env |= {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "team/churn"}
        assert post_alerts(report, SETTINGS.notify, "build/monitoring/monitoring.html", env)
        (posted,) = hook.received
        text = posted["text"]
        assert text.startswith(f"*churn-classifier version 1: {len(report['alerts'])} alert(s)*")
        began = report["windows"][DRIFT_DAY]["start"][:16].replace("T", " ")
        assert f"• data drift since {began}: tenure_months: PSI" in text
        assert text.endswith("<https://github.com/team/churn/actions/runs/42|The monitoring page>")
        # Nothing to say, or nowhere to say it: no post.
        quiet = report | {"alerts": []}
        assert not post_alerts(quiet, SETTINGS.notify, "page.html", env)
        assert not post_alerts(report, SETTINGS.notify, "page.html", {})
        assert len(hook.received) == 1
    finally:
        hook.close()


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
def test_a_failed_post_is_reported_without_the_secret_url_and_is_not_fatal(
    trained, drifting, capsys, failure
):
    _, _, reference = trained
    log, _ = drifting
    report = run_over_time(log, reference, SETTINGS)
    hook = Webhook(status=403)
    if failure == "unreachable":
        hook.close()
    try:
        posted = post_alerts(
            report, SETTINGS.notify, "page.html", {"MLOPS_ALERT_WEBHOOK": hook.url}
        )
    finally:
        if failure == "refused":
            hook.close()
    assert posted is False
    said = capsys.readouterr().err
    assert "the alerts were not posted to $MLOPS_ALERT_WEBHOOK" in said
    assert ("HTTP 403" in said) == (failure == "refused")
    assert "secret-token" not in said


def log_lines_of(log: pd.DataFrame) -> list[bytes]:
    """A read log's entries as the service's lines again."""
    return log_lines(log).splitlines(keepends=True)


def as_json(report: dict) -> str:
    return json.dumps(report, sort_keys=True, default=str)


def test_reading_only_new_lines_gives_what_a_full_read_gives(tmp_path, trained, drifting):
    """Nine days arrive in five reads, through the service's rotating writer (a file
    every 200 KB, so windows span files, and a file partly read as JSON lines is read on
    from its rotated Parquet file),
    one read finding half a line; labels arrive for the first seven days at the end."""
    _, _, reference = trained
    log, batches = drifting
    lines = log_lines_of(log)
    folder = tmp_path / "log"
    writer = _RotatingFile(folder / "predictions-h-1.jsonl", max_bytes=200_000, keep=1_000)
    folder.mkdir()
    pattern = [str(folder / "predictions-*.jsonl*")]
    state = MonitorState(tmp_path / "state", SETTINGS.window, pattern)
    cuts = np.linspace(0, len(lines), 6).astype(int)
    read = 0
    for step, (begin, end) in enumerate(itertools.pairwise(cuts)):
        if step == 2:  # a line being written when the monitor reads: it waits
            writer.write(b"".join(lines[begin : end - 1]))
            with open(writer.path, "ab") as current:
                current.write(lines[end - 1][:40])
            read += state.read_new()
            assert read == end - 1
            with open(writer.path, "ab") as current:
                current.write(lines[end - 1][40:])
        else:
            writer.write(b"".join(lines[begin:end]))
            read += state.read_new()
            assert read == end
        state.report(reference, SETTINGS)
    writer.close()
    assert len(list(folder.glob("*.parquet"))) >= 4
    arrived = pd.concat(batches[: DRIFT_DAY + 1])[["customer_id", "churned"]]
    assert state.read_new() == 0
    incremental = state.report(reference, SETTINGS, arrived, "churned")
    full = run_over_time(read_prediction_log(pattern), reference, SETTINGS, arrived, "churned")
    assert as_json(incremental) == as_json(json.loads(as_json(full)))
    assert incremental["records"] == DAYS * ROWS


def test_a_crash_between_keeping_lines_and_saving_the_state_counts_no_line_twice(
    tmp_path, trained, drifting
):
    _, _, reference = trained
    log, _ = drifting
    folder = tmp_path / "log"
    folder.mkdir()
    lines = log_lines_of(log)
    (folder / "predictions-a.jsonl").write_bytes(b"".join(lines[:2000]))
    pattern = [str(folder / "predictions-*.jsonl*")]
    state = MonitorState(tmp_path / "state", SETTINGS.window, pattern)
    assert state.read_new() == 2000
    with open(folder / "predictions-a.jsonl", "ab") as more:
        more.write(b"".join(lines[2000:]))
    # A directory holds the state file's name, so it cannot be replaced: the read fails
    # after writing its segments, where a crash would leave them.
    state_file = tmp_path / "state/state.json"
    saved = state_file.read_bytes()
    state_file.unlink()
    state_file.mkdir()
    with pytest.raises(OSError):
        state.read_new()
    segments = list((tmp_path / "state/windows").glob("*/*.parquet"))
    state_file.rmdir()
    state_file.write_bytes(saved)
    again = MonitorState(tmp_path / "state", SETTINGS.window, pattern)
    assert len(list((tmp_path / "state/windows").glob("*/*.parquet"))) < len(segments)
    assert again.read_new() == len(lines) - 2000
    full = run_over_time(read_prediction_log(pattern), reference, SETTINGS)
    assert as_json(again.report(reference, SETTINGS)) == as_json(json.loads(as_json(full)))


def test_another_window_setting_or_log_reads_the_log_again(tmp_path, trained, drifting):
    _, _, reference = trained
    log, _ = drifting
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "predictions-a.jsonl").write_bytes(log_lines(log))
    pattern = [str(folder / "predictions-*.jsonl*")]
    MonitorState(tmp_path / "state", "1D", pattern).read_new()
    two_days = SETTINGS.model_copy(update={"window": "2D"})
    state = MonitorState(tmp_path / "state", "2D", pattern)
    assert state.started_afresh
    assert state.read_new() == DAYS * ROWS
    full = run_over_time(read_prediction_log(pattern), reference, two_days)
    assert as_json(state.report(reference, two_days)) == as_json(json.loads(as_json(full)))
    # Another log kept in the same folder never adds its lines to this one's windows.
    (folder / "other.jsonl").write_bytes(b"".join(log_lines_of(log)[:10]))
    other = MonitorState(tmp_path / "state", "2D", [str(folder / "other.jsonl")])
    assert other.started_afresh and other.read_new() == 10
