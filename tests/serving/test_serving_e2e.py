"""The bento built by `dvc repro`, served by a real `bentoml serve` on a free loopback
port: answers equal to the in-process model, every kind of bad input refused with its
field, health, metrics, metadata, the prediction log, and a schemathesis run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    CHROMIUM_FLAGS,
    VENV_BIN,
    Webhook,
    chromium,
    columns_of,
    dashboard_metric_names,
    logged,
    one_shape_document,
    schemathesis_every_check,
    screenshot_path,
)
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from mlops_starter.serving.packaging import IMAGE_SETUP, NOT_SERVED
from mlops_starter.serving.process import bentoml_server, free_port, wait_for_http
from mlops_starter.serving.scorer import TOLERANCE
from mlops_starter.storage import json_records, load_model

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(packaged, tmp_path_factory):
    """Serve the bento of the gated version, logging predictions to a scratch folder."""
    scratch = tmp_path_factory.mktemp("served")
    env = packaged.env | {"MLOPS_PREDICTION_LOG_DIR": str(scratch / "predictions")}
    bento = packaged.read_json("models/bento.json")["bento"]
    with (
        bentoml_server(bento, free_port(), scratch / "serve.log", env) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client, scratch / "predictions"


@pytest.fixture(scope="module")
def reference(packaged):
    """Test rows inside the training rows' ranges (so the service warns of none), and
    the in-process pipeline's probabilities for them."""
    info = packaged.read_json("models/model.json")
    numeric = info["feature_schema"]["numeric"]
    columns = numeric + info["feature_schema"]["categorical"]
    train = pd.read_parquet(packaged.root / "data/split/train.parquet", columns=numeric)
    test = pd.read_parquet(packaged.root / "data/split/test.parquet")
    inside = test[numeric].isna() | (
        (test[numeric] >= train.min()) & (test[numeric] <= train.max())
    )
    test = test[inside.all(axis=1)].head(200).reset_index(drop=True)
    proba = load_model(packaged.root / "models/model.skops").predict_proba(test[columns])[:, 1]
    records = json_records(test[["customer_id", *columns]])
    return records, proba, info["threshold"]


def predict(client: httpx.Client, records, **headers) -> httpx.Response:
    return client.post("/predict", json={"records": records}, headers=headers)


def test_the_bento_carries_model_labels_dockerfile_and_openapi(packaged):
    bento_info = packaged.read_json("models/bento.json")
    gate = packaged.read_json("reports/gate.json")
    assert bento_info["built"] and bento_info["version"] == str(gate["version"])
    listed = packaged.run(str(VENV_BIN / "bentoml"), "get", bento_info["bento"], "-o", "json")
    described = json.loads(listed.stdout)
    assert described["labels"]["registered_version"] == str(gate["version"])
    assert described["labels"]["run_id"] == gate["run_id"] == bento_info["run_id"]
    name, version = bento_info["bento"].split(":")
    root = Path(packaged.env["BENTOML_HOME"]) / "bentos" / name / version
    dockerfile = (root / "env/docker/Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert f"RUN {IMAGE_SETUP}" in dockerfile and "build-essential" not in dockerfile
    assert "ENV UV_NO_BUILD=$UV_NO_BUILD" in dockerfile  # wheels only: no compiler in the image
    requirements = (root / "env/python/requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "pytest" not in requirements
    # Training-only libraries stay out of the image.
    assert not [p for p in NOT_SERVED if f"\n{p}==" in f"\n{requirements.lower()}"]
    assert (root / "apis/openapi.yaml").is_file()
    assert (root / "src/mlops_starter/serving/service.py").is_file()


def test_single_and_batch_answers_equal_the_in_process_model(server, reference, packaged):
    client, _ = server
    records, proba, threshold = reference
    version = packaged.read_json("models/bento.json")["version"]
    single = predict(client, records[:1])
    assert single.status_code == 200, single.text
    [answer] = single.json()
    assert answer["probability"] == pytest.approx(proba[0], abs=TOLERANCE)
    assert answer["label"] == int(proba[0] >= threshold)
    assert answer["model_version"] == version
    assert answer["id"] == records[0]["customer_id"]
    batch = predict(client, records)
    assert batch.status_code == 200, batch.text
    served = np.array([p["probability"] for p in batch.json()])
    np.testing.assert_allclose(served, proba, atol=TOLERANCE)
    assert [p["label"] for p in batch.json()] == [int(p >= threshold) for p in served]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answers(server, reference):
    client, _ = server
    records, proba, _ = reference
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: predict(client, records[i : i + 1]), range(64)))
    assert all(a.status_code == 200 for a in answers)
    served = [a.json()[0]["probability"] for a in answers]
    np.testing.assert_allclose(served, proba[:64], atol=TOLERANCE)


@pytest.mark.parametrize(
    ("change", "field", "kind_in_message"),
    [
        ({"tenure_months": "twelve"}, "tenure_months", "valid integer"),
        ({"tenure_months": None}, "tenure_months", "valid integer"),
        ({"plan": 7}, "plan", "valid string"),
    ],
)
def test_bad_fields_get_400_naming_record_and_field(
    server, reference, change, field, kind_in_message
):
    client, _ = server
    records, _, _ = reference
    bad = records[1] | change
    response = predict(client, [records[0], bad])
    assert response.status_code == 400
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["records", 1, field]
    assert kind_in_message in detail["msg"]


def test_missing_required_field_and_malformed_bodies_get_400(server, reference):
    client, _ = server
    records, _, _ = reference
    missing = {k: v for k, v in records[0].items() if k != "contract"}
    assert predict(client, [missing]).json()["detail"][0]["loc"] == ["records", 0, "contract"]
    assert predict(client, []).status_code == 400
    assert (
        client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert client.post("/predict", json={"rows": records[:1]}).status_code == 400
    form = client.post("/predict", data={"records": "x"})
    assert form.status_code == 415 and "application/json" in form.json()["error"]


def test_limits_on_records_and_body_size(server, reference):
    client, _ = server
    records, _, _ = reference
    too_many = predict(client, records[:1] * 301)
    assert too_many.status_code == 400
    assert "at most 300" in too_many.text
    huge = client.post(
        "/predict", content=b"x" * 2_500_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    assert "serve.max_body_bytes" in huge.json()["error"]


def test_unseen_category_and_out_of_range_are_accepted_warned_and_counted(server, reference):
    client, _ = server
    records, _, _ = reference
    odd = records[2] | {"plan": "platinum", "age": 250.0}
    response = predict(client, [odd])
    assert response.status_code == 200
    assert set(response.json()[0]["warnings"]) == {"plan:unseen_category", "age:out_of_range"}
    metrics = client.get("/metrics").text
    assert (
        'mlops_input_quality_issues_total{field="plan",kind="unseen_category",outcome="accepted"}'
        in metrics
    )
    assert (
        'mlops_input_quality_issues_total{field="age",kind="out_of_range",outcome="accepted"}'
        in metrics
    )


def test_a_field_the_model_does_not_use_is_ignored_named_and_counted(server, reference):
    """A client that sends the whole row (the table's time column too) is answered as if
    it had not, told which fields were ignored, and counted by field in /metrics."""
    client, log_dir = server
    records, proba, _ = reference
    whole_rows = [r | {"signup_date": "2024-01-31"} for r in records[30:33]]
    whole_rows[1]["coupon"] = "SPRING"
    by_records = predict(client, whole_rows, **{"X-Request-ID": "whole-rows"})
    assert by_records.status_code == 200, by_records.text
    answered = by_records.json()
    np.testing.assert_allclose([a["probability"] for a in answered], proba[30:33], atol=TOLERANCE)
    assert [sorted(a["warnings"]) for a in answered] == [
        ["signup_date:unknown_field"],
        ["coupon:unknown_field", "signup_date:unknown_field"],
        ["signup_date:unknown_field"],
    ]
    by_columns = client.post("/predict", json={"columns": columns_of(whole_rows[:1] * 2)})
    assert by_columns.status_code == 200, by_columns.text
    assert by_columns.json()["warnings"] == {"signup_date:unknown_field": [0, 1]}
    metrics = client.get("/metrics").text
    assert 'field="signup_date",kind="unknown_field",outcome="ignored"} 5.0' in metrics
    assert 'field="coupon",kind="unknown_field",outcome="ignored"} 1.0' in metrics
    # The log keeps the rows as sent, the ignored fields with them.
    entries = logged(log_dir, "whole-rows", 3)
    assert all(entry["features"]["signup_date"] == "2024-01-31" for entry in entries)


def test_health_readiness_and_metrics(server, packaged, reference):
    client, _ = server
    records, _, _ = reference
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    predict(client, [records[0] | {"plan": 7}])
    predict(client, records[:5])
    metrics = client.get("/metrics").text
    version = packaged.read_json("models/bento.json")["version"]
    assert f'version="{version}"' in metrics and "mlops_model_info" in metrics
    assert 'field="plan",kind="wrong_type",outcome="rejected"' in metrics
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("mlops_predicted_probability_count")
    )
    assert count >= 5
    assert "bentoml_service_request_duration_seconds" in metrics
    # The Grafana dashboard (deploy/) reads only metrics this service really exports.
    exported = {
        line.split("{")[0].split()[0] for line in metrics.splitlines() if line[:1].isalpha()
    }
    assert dashboard_metric_names() <= exported, dashboard_metric_names() - exported


def test_metadata_describes_the_served_version(server, packaged):
    client, _ = server
    meta = client.get("/metadata").json()
    bento = packaged.read_json("models/bento.json")
    info = packaged.read_json("models/model.json")
    assert meta["version"] == bento["version"] and meta["run_id"] == bento["run_id"]
    assert meta["threshold"] == pytest.approx(info["threshold"])
    assert meta["data_train_md5"] == info["data_train_md5"]
    assert set(meta["feature_schema"]) == set(
        info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    )
    assert meta["policies"] == {
        "unseen_category": "accept",
        "out_of_range": "accept",
        "unknown_fields": "ignore",
        "api_key": False,
    }
    # The compiled scorer serves, checked against the pipeline at packaging (test set and
    # hard cases) and again at start.
    test_rows = len(pd.read_parquet(packaged.root / "data/split/test.parquet"))
    scorer = meta["scorer"]
    assert scorer["kind"] == "compiled", scorer
    assert scorer["check_at_packaging"]["kind"] == "compiled"
    assert scorer["check_at_packaging"]["rows"] > test_rows
    assert scorer["check_at_packaging"]["max_abs_difference"] <= TOLERANCE
    assert scorer["check_at_start"]["max_abs_difference"] <= TOLERANCE
    # The version's model card, as registered (and as the register stage wrote it here).
    assert meta["model_card"] == (packaged.root / "reports/model_card.md").read_text()
    assert meta["model_card"].startswith(
        f"# Model card: churn-classifier version {meta['version']}"
    )


def test_explain_gives_contributions_that_add_up_to_the_margin(server, reference, packaged):
    client, _ = server
    records, proba, _ = reference
    answer = client.post("/explain", json={"records": records[:25]})
    assert answer.status_code == 200, answer.text
    explained = answer.json()
    features = set(records[0]) - {"customer_id"}
    winner = packaged.read_json("models/model.json")["winner"]
    for record, served, probability in zip(records, explained, proba, strict=False):
        assert served["id"] == record["customer_id"]
        assert set(served["contributions"]) == features  # original features, not one-hot columns
        assert served["method"] and served["scale"] in ("log-odds", "probability")
        total = served["base_value"] + sum(served["contributions"].values())
        assert total == pytest.approx(served["margin"], abs=1e-4)
        assert served["probability"] == pytest.approx(probability, abs=1e-9)
        sizes = [abs(v) for v in served["contributions"].values()]
        assert sizes == sorted(sizes, reverse=True)
    expected_scale = "probability" if winner == "random_forest" else "log-odds"
    assert explained[0]["scale"] == expected_scale, (winner, explained[0]["method"])
    bad = client.post("/explain", json={"records": [{**records[0], "tenure_months": "long"}]})
    assert bad.status_code == 400 and "tenure_months" in bad.text


def test_prediction_log_holds_inputs_outputs_version_and_request_id(server, reference):
    client, log_dir = server
    records, proba, _ = reference
    predict(client, records[10:13], **{"X-Request-ID": "test-log-42"})
    entries = logged(log_dir, "test-log-42", 3)
    assert len(entries) == 3
    by_id = {e["id"]: e for e in entries}
    for offset, record in enumerate(records[10:13]):
        entry = by_id[record["customer_id"]]
        assert entry["probability"] == pytest.approx(proba[10 + offset], abs=TOLERANCE)
        assert entry["features"]["tenure_months"] == record["tenure_months"]
        assert entry["model_version"] and entry["timestamp"].endswith("+00:00")


def test_one_clients_kept_alive_connection_is_recycled_over_both_workers(server, reference):
    """serve.keepalive_requests (100): about one answer in 100 closes the connection, so
    one client's traffic reaches both workers. Without it, the one connection stays on
    the worker that accepted it (2,000 requests: all on one worker with p = 4e-5)."""
    client, log_dir = server
    records, _, _ = reference
    answers = [
        predict(client, records[n % 50 : n % 50 + 1], **{"X-Request-ID": f"recycled-{n}"})
        for n in range(2000)
    ]
    assert all(a.status_code == 200 for a in answers)
    closed = sum(a.headers.get("connection") == "close" for a in answers)
    assert 2 <= closed <= 50, closed
    time.sleep(1)  # the log's flush
    workers = {
        path.name
        for path in log_dir.glob("predictions-*.jsonl")
        if '"request_id":"recycled-' in path.read_text()
    }
    assert len(workers) == 2, workers


def test_columns_answer_as_records_do_equal_to_the_pipeline(server, reference, packaged):
    client, _ = server
    records, proba, threshold = reference
    response = client.post("/predict", json={"columns": columns_of(records)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == packaged.read_json("models/bento.json")["version"]
    answered = body["columns"]
    np.testing.assert_allclose(answered["probability"], proba, atol=TOLERANCE)
    by_records = [p["probability"] for p in predict(client, records).json()]
    assert answered["probability"] == by_records  # one scorer behind both bodies
    assert answered["label"] == [int(p >= threshold) for p in by_records]
    assert answered["id"] == [r["customer_id"] for r in records]
    assert body["warnings"] == {}


def test_columns_with_bad_values_get_400_naming_column_and_row_and_are_counted(server, reference):
    client, _ = server
    records, _, _ = reference
    columns = columns_of(records[:5])
    columns["tenure_months"][3] = "twelve"
    columns["plan"][1] = 7
    refused = client.post("/predict", json={"columns": columns})
    assert refused.status_code == 400
    found = {(tuple(e["loc"]), e["type"]) for e in refused.json()["detail"]}
    assert found == {
        (("columns", "tenure_months", 3), "wrong_type"),
        (("columns", "plan", 1), "wrong_type"),
    }
    too_many = client.post("/predict", json={"columns": columns_of(records * 2)})
    assert too_many.status_code == 400 and "serve.max_records" in too_many.text
    odd = columns_of(records[:5])
    odd["plan"][2], odd["age"][2] = "platinum", 250.0
    warned = client.post("/predict", json={"columns": odd})
    assert warned.status_code == 200
    assert warned.json()["warnings"] == {"plan:unseen_category": [2], "age:out_of_range": [2]}
    metrics = client.get("/metrics").text
    assert 'field="tenure_months",kind="wrong_type",outcome="rejected"' in metrics
    assert 'field="columns",kind="too_many_records",outcome="rejected"' in metrics


def test_columns_are_logged_row_by_row(server, reference):
    client, log_dir = server
    records, proba, _ = reference
    sent = client.post(
        "/predict",
        json={"columns": columns_of(records[20:24])},
        headers={"X-Request-ID": "test-columns-7"},
    )
    assert sent.status_code == 200 and sent.headers["x-request-id"] == "test-columns-7"
    entries = logged(log_dir, "test-columns-7", 4)
    assert [e["id"] for e in entries] == [r["customer_id"] for r in records[20:24]]
    for entry, record, probability in zip(entries, records[20:24], proba[20:24], strict=True):
        assert entry["features"] == record
        assert entry["probability"] == pytest.approx(probability, abs=TOLERANCE)


@pytest.mark.parametrize("shape", ["records", "columns"])
def test_schemathesis_with_every_check_passes_on_the_served_document(server, shape, tmp_path):
    """Every check schemathesis has (status codes, response schemas and content types
    conform, valid bodies are answered, invalid ones refused, ...) on the document a
    client reads, for each body shape: the document declares every answer truly."""
    client, _ = server
    document = one_shape_document(client.get("/docs.json").json(), shape)
    schemathesis_every_check(str(client.base_url), document, tmp_path)


def test_the_bento_holds_the_document_the_service_serves(server, packaged):
    client, _ = server
    bento_info = packaged.read_json("models/bento.json")
    name, version = bento_info["bento"].split(":")
    root = Path(packaged.env["BENTOML_HOME"]) / "bentos" / name / version
    assert (
        yaml.safe_load((root / "apis/openapi.yaml").read_text()) == client.get("/docs.json").json()
    )


def test_a_client_generated_from_the_document_scores_a_record_and_reads_a_refusal(
    server, reference, tmp_path
):
    """What a team does with the document: generate a client (openapi-python-client), then
    call the real service with it. Its types are the document's: a refusal parses into
    a Refusal whose detail names record and field."""
    client, _ = server
    records, proba, _ = reference
    (tmp_path / "openapi.json").write_text(client.get("/docs.json").text)
    (tmp_path / "client.yaml").write_text(
        "post_hooks: []\nproject_name_override: churn-client\npackage_name_override: churn_client\n"
    )
    subprocess.run(
        [
            str(VENV_BIN / "openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "client.yaml",
            "--output-path",
            "generated",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    script = f"""
import json, sys
sys.path.insert(0, "generated")
from churn_client import Client
from churn_client.api.model import predict
from churn_client.models import ColumnsAnswer, ColumnsBody, FeatureColumns, FeatureRecord, Prediction, RecordsBody, Refusal
records = json.loads(sys.argv[1])
with Client(base_url={str(client.base_url)!r}) as api:
    scored = predict.sync(client=api, body=RecordsBody(records=[FeatureRecord.from_dict(r) for r in records]))
    assert all(isinstance(p, Prediction) for p in scored), scored
    columns = predict.sync(client=api, body=ColumnsBody(columns=FeatureColumns.from_dict({{k: [r[k] for r in records] for k in records[0]}})))
    assert isinstance(columns, ColumnsAnswer), columns
    refused = predict.sync(client=api, body=RecordsBody(records=[FeatureRecord.from_dict(records[0] | {{"tenure_months": "long"}})]))
    assert isinstance(refused, Refusal), refused
print(json.dumps({{
    "probabilities": [p.probability for p in scored],
    "ids": [p.id for p in scored],
    "columns": columns.columns.probability,
    "refused": [problem.loc for problem in refused.detail],
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(records[:3])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answered = json.loads(done.stdout)
    np.testing.assert_allclose(answered["probabilities"], proba[:3], atol=TOLERANCE)
    assert answered["columns"] == answered["probabilities"]
    assert answered["ids"] == [r["customer_id"] for r in records[:3]]
    assert answered["refused"] == [["records", 0, "tenure_months"]]


def test_monitor_demo_through_the_real_service_and_the_monitor_command(packaged):
    """Six days through the service, drifted from day 4: the page dates the drift to day
    4 and the browser shows its alerts and trends; `mlops monitor` on the demo's log
    gives the same verdict."""
    demo = packaged.run(
        "mlops",
        "monitor-demo",
        "--scenario",
        "covariate",
        *("--days", "6", "--drift-day", "4"),
        timeout=600,
    )
    report = packaged.read_json("build/monitor-demo/covariate/monitoring.json")
    windows = report["windows"]
    assert [w["records"] for w in windows] == [500] * 6 and report["refused_requests"] == 0
    assert not any(w["alerts"] for w in windows[:4]), [w["alerts"] for w in windows[:4]]
    began = {a["subject"]: a["began"] for a in report["alerts"] if a["check"] == "data_drift"}
    assert began == dict.fromkeys(["monthly_charges", "tenure_months"], windows[4]["start"])
    day_four = windows[4]["start"][:16].replace("T", " ")
    assert f"data_drift since {day_four}: tenure_months" in demo.stdout
    # Labels arrive two days late: realized performance for days 0 to 3 only.
    assert [("performance" in w and "metrics" in w["performance"]) for w in windows] == [
        True
    ] * 4 + [False] * 2
    assert all("estimate" in w["estimated_performance"]["scores"]["roc_auc"] for w in windows)
    page = packaged.root / "build/monitor-demo/covariate/monitoring.html"
    look_at_the_monitoring_page(page, screenshot_path("monitoring-page.png"))

    folder = packaged.root / "build/monitor-demo/covariate"
    hook = Webhook()
    packaged.env["MLOPS_ALERT_WEBHOOK"] = hook.url
    try:
        alerted = packaged.run(
            "mlops",
            "monitor",
            *("--log", str(folder / "predictions.jsonl"), "--labels", str(folder / "labels.csv")),
            check=False,
            timeout=300,
        )
    finally:
        del packaged.env["MLOPS_ALERT_WEBHOOK"]
        hook.close()
    assert alerted.returncode == 3, alerted.stdout + alerted.stderr
    assert "Downloading artifacts" not in demo.stderr + alerted.stderr  # MLflow's bar
    assert f"ALERT data_drift since {day_four}: monthly_charges" in alerted.stdout
    assert "alerts posted to $MLOPS_ALERT_WEBHOOK" in alerted.stdout
    (posted,) = hook.received
    assert f"data drift since {day_four}: monthly_charges" in posted["text"]
    assert str(packaged.root / "build/monitoring/monitoring.html") in posted["text"]
    # The same figures per window; only the demo read the service's /metrics.
    again = packaged.read_json("build/monitoring/monitoring.json")["windows"]
    for check in ("input_quality", "data_drift", "prediction_drift", "estimated_performance"):
        assert [w[check] for w in again] == [w[check] for w in windows], check
    assert [w["performance"] for w in again] == [w["performance"] for w in windows]
    # A second run reads no line again, and says the same.
    rerun = packaged.run(
        "mlops", "monitor", "--log", str(folder / "predictions.jsonl"), check=False
    )
    assert rerun.returncode == 3 and ": 0 new records read, 3000 in 6 window(s)" in rerun.stdout

    missing = packaged.run("mlops", "monitor", "--log", "nowhere/*.jsonl", check=False)
    assert missing.returncode == 2
    assert "no prediction log files match" in missing.stderr
    follow_the_log_as_it_grows(packaged, folder / "predictions.jsonl")


def follow_the_log_as_it_grows(packaged, demo_log) -> None:
    """`mlops monitor --follow`: half the demo's log, then the rest appended while it
    watches; its page and the metrics it serves Prometheus catch up, and Ctrl-C stops it
    cleanly."""
    lines = demo_log.read_bytes().splitlines(keepends=True)
    growing = packaged.root / "follow" / "predictions-a.jsonl"
    growing.parent.mkdir()
    growing.write_bytes(b"".join(lines[:1000]))
    out = packaged.root / "follow" / "report"
    labels = demo_log.with_name("labels.csv")
    listen = f"127.0.0.1:{free_port()}"
    command = ["mlops", "monitor", "--log", str(growing), "--labels", str(labels)]
    command += ["--out", str(out), "--export-metrics", listen, "--follow", "0.5"]
    process = subprocess.Popen(
        command,
        cwd=packaged.root,
        env=packaged.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def records_shown(expected: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            page = out / "monitoring.json"
            if page.is_file() and json.loads(page.read_text())["records"] == expected:
                return
            time.sleep(0.5)
        raise AssertionError(f"the page never showed {expected} records: {process.poll()}")

    try:
        records_shown(1000)
        with open(growing, "ab") as log:
            log.write(b"".join(lines[1000:]))
        records_shown(len(lines))
        exported_figures_are_the_pages(f"http://{listen}/metrics", out / "monitoring.json")
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert stdout.rstrip().endswith("stopped following the log")
    # Each line was read once, however many passes the appended lines took.
    once = packaged.run(*command[:-4], check=False)
    assert f": 0 new records read, {len(lines)} in 6 window(s)" in once.stdout, once.stdout


def exported_figures_are_the_pages(url: str, page_json: Path) -> None:
    """What Prometheus scrapes from the monitor: every metric the dashboard's monitoring
    panels read, each equal to the figure on the page."""
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url).text)}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert dashboard_metric_names("monitor") <= {name for name, _ in samples}
    report = json.loads(page_json.read_text())
    windows = report["windows"]
    current = windows[report["current"]]
    assert samples[("mlops_monitor_window_records", ())] == current["records"]
    for feature, figures in current["data_drift"].items():
        key = ("mlops_monitor_feature_psi", (("feature", feature),))
        assert samples[key] == pytest.approx(figures["psi"]), feature
    for check in ("data_drift", "input_quality", "performance"):
        raised = sum(alert["check"] == check for alert in report["alerts"])
        assert samples[("mlops_monitor_alerts", (("check", check),))] == raised, check
    roc_auc = current["estimated_performance"]["scores"]["roc_auc"]
    assert samples[("mlops_monitor_estimated_score", (("metric", "roc_auc"),))] == pytest.approx(
        roc_auc["estimate"]
    )
    # Realized: the newest window the late labels cover, not the current one.
    labelled = [w for w in windows if "metrics" in w["performance"]]
    realized = labelled[-1]["performance"]["metrics"]["roc_auc"]
    assert samples[("mlops_monitor_realized_score", (("metric", "roc_auc"),))] == pytest.approx(
        realized
    )
    assert "metrics" not in current["performance"]


def look_at_the_monitoring_page(page_file, screenshot) -> None:
    """The page in a real Chromium: the alert table first with rows, every plot decoded."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(page_file.as_uri())
            alerts = page.locator("table.alerts tr")
            assert alerts.count() > 1 and alerts.first.is_visible()
            assert "since" in alerts.first.inner_text()
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
            assert len(widths) > 8 and all(w > 100 for w in widths), widths
            assert page.locator("table.windows tr.alerting").count() == 2
            page.screenshot(path=screenshot)
        finally:
            browser.close()


def test_make_serve_serves_the_champion_from_source(packaged, reference):
    """`mlops serve` (what `make serve` runs): the champion, from this checkout's code."""
    records, proba, _ = reference
    port = free_port()
    log = packaged.root.parent / "serve-from-source.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            ["mlops", "serve", "--port", str(port)],
            cwd=packaged.root,
            env=packaged.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
        champion = packaged.read_json("reports/gate.json")["version"]
        assert httpx.get(f"http://127.0.0.1:{port}/metadata").json()["version"] == str(champion)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"records": records[:1]})
        # The compiled scorer answers, as in the bento: within its tolerance of the pipeline.
        assert answer.json()[0]["probability"] == pytest.approx(proba[0], abs=TOLERANCE)
        deadline = time.monotonic() + 10
        while not list((packaged.root / "predictions").glob("predictions-*.jsonl")):
            assert time.monotonic() < deadline, (
                "make serve wrote no prediction log under predictions/"
            )
            time.sleep(0.3)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def batch_score(copy, version: str, table: Path, out: Path, chunk_rows: int, **run):
    """`mlops score` in the repository copy; with `summary=` also its JSON summary."""
    summary = run.pop("summary", None)
    extra = ["--summary", str(summary)] if summary else []
    return copy.run(
        "mlops",
        "score",
        "--version",
        version,
        "--input",
        str(table),
        "--output",
        str(out),
        "--chunk-rows",
        str(chunk_rows),
        *extra,
        **run,
    )


def test_batch_scorer_keeps_ids_scores_as_the_pipeline_and_counts_issues(packaged, tmp_path):
    info = packaged.read_json("models/model.json")
    features = info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    test_file = packaged.root / "data/split/test.parquet"
    test = pd.read_parquet(test_file)
    version = packaged.read_json("models/bento.json")["version"]
    out, summary = tmp_path / "scores.parquet", tmp_path / "summary.json"
    batch_score(packaged, version, test_file, out, 700, summary=summary)
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["customer_id", "probability", "label", "model_version"]
    assert scores["customer_id"].tolist() == test["customer_id"].tolist()
    expected = load_model(packaged.root / "models/model.skops").predict_proba(test[features])[:, 1]
    np.testing.assert_allclose(scores["probability"], expected, atol=TOLERANCE)
    assert (
        scores["label"].tolist()
        == (scores["probability"] >= info["threshold"]).astype(int).tolist()
    )
    assert set(scores["model_version"]) == {version}
    ran = json.loads(summary.read_text())
    assert ran["rows"] == len(test) and ran["scorer"]["kind"] == "compiled"

    # A CSV, several chunks, with values the service would refuse: scored, counted.
    table = pd.concat([test] * 40, ignore_index=True).astype({"tenure_months": object})
    table.loc[[5, len(table) - 3], "tenure_months"] = "twelve"
    table.loc[7, "plan"] = "platinum"
    csv = tmp_path / "table.csv"
    table.to_csv(csv, index=False)
    batch_score(packaged, version, csv, out, 5000, summary=summary)
    ran = json.loads(summary.read_text())
    assert ran["rows"] == len(table) == len(pd.read_parquet(out))
    assert ran["issues"]["tenure_months"]["wrong_type"] == 2
    assert ran["issues"]["plan"]["unseen_category"] == 1
    before = out.read_bytes()

    # A file that breaks past its first chunks: an error naming it, the output untouched.
    with csv.open("a") as broken:
        broken.write("one,line,with,too,many,fields,for,this,table,at,all,here,now\n")
    failed = batch_score(packaged, version, csv, out, 5000, check=False)
    assert failed.returncode != 0 and str(csv) in failed.stderr, failed.stderr
    assert int(re.search(r"past row (\d+)", failed.stderr)[1]) >= 5000  # chunks were written
    assert "Traceback" not in failed.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "scores.parquet",
        "summary.json",
        "table.csv",
    ]

    # A European export (';' between fields, decimal commas) with '?' for missing: read
    # as ingest reads it (data.csv sniffed, data.na_values), scored as the pipeline would.
    european = test.astype({"monthly_charges": object})
    european.loc[[1, 2], "monthly_charges"] = "?"
    european.to_csv(tmp_path / "european.csv", sep=";", decimal=",", index=False)
    batch_score(packaged, version, tmp_path / "european.csv", out, 700, summary=summary)
    ran = json.loads(summary.read_text())
    assert "wrong_type" not in ran["issues"].get("monthly_charges", {}), ran["issues"]
    assert ran["issues"]["monthly_charges"]["missing"] >= 2
    as_missing = test.copy()
    as_missing.loc[[1, 2], "monthly_charges"] = np.nan
    expected = load_model(packaged.root / "models/model.skops").predict_proba(as_missing[features])[
        :, 1
    ]
    np.testing.assert_allclose(pd.read_parquet(out)["probability"], expected, atol=TOLERANCE)


def test_with_an_api_key_strangers_get_401_and_probes_stay_open(packaged, reference, tmp_path):
    """The key from a secret file (as compose mounts it): /predict, /explain, /metadata
    and the docs need it; the probes and /metrics do not; it is never logged."""
    records, proba, _ = reference
    key = "s3cret-key-for-the-test-only"
    secret = tmp_path / "api_key"
    secret.write_text(key + "\n")
    env = packaged.env | {
        "MLOPS_PREDICTION_LOG_DIR": str(tmp_path / "predictions"),
        "MLOPS_API_KEY_FILE": str(secret),
    }
    bento = packaged.read_json("models/bento.json")["bento"]
    with (
        bentoml_server(bento, free_port(), tmp_path / "serve.log", env) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        body = {"records": records[:3]}
        wrong_keys = [
            {},
            {"Authorization": "Bearer wrong-key-of-some-length"},
            {"Authorization": key},
        ]
        refused = [client.post("/predict", json=body, headers=h) for h in wrong_keys]
        refused += [
            client.post("/explain", json=body),
            client.get("/metadata"),
            client.get("/docs.json"),
            # Refused before the body is read: an oversized one gets 401, not 413.
            client.post("/predict", content=b"x" * 3_000_000),
        ]
        for answer in refused:
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in answer.json()["error"]

        keyed = {"Authorization": f"Bearer {key}"}
        answered = client.post("/predict", json=body, headers=keyed | {"X-Request-ID": "keyed"})
        assert answered.status_code == 200, answered.text
        got = [p["probability"] for p in answered.json()]
        np.testing.assert_allclose(got, proba[:3], atol=TOLERANCE)
        assert client.get("/metadata", headers=keyed).json()["policies"]["api_key"] is True

        for probe in ("/healthz", "/livez", "/readyz"):
            assert client.get(probe).status_code == 200
        metrics = client.get("/metrics").text
        counted = re.search(r"^mlops_unauthorized_requests_total (\S+)", metrics, re.M)
        assert counted and float(counted[1]) == len(refused)
        assert len(logged(tmp_path / "predictions", "keyed", 3)) == 3
    written = (tmp_path / "serve.log").read_text() + "".join(
        p.read_text() for p in (tmp_path / "predictions").glob("*")
    )
    assert key not in written
