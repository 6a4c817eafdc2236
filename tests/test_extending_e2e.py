"""A team's three first additions, each one module outside src/ plus its params.yaml
settings (docs/how-to/extending.md): a JSON Lines source, a monitoring check and a
candidate model (scikit-learn's HistGradientBoostingClassifier). One real `dvc repro`
trains from the source and takes the candidate through CV, calibration, the gate and
packaging; a real `mlops serve` answers with it, names its scorer in /metadata and
refuses /explain with a 501 naming it; `mlops monitor` runs the check."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import VENV_BIN

from mlops_starter.data.demo import generate_demo_table
from mlops_starter.serving.process import free_port, wait_for_http
from mlops_starter.storage import json_records

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[1] / "docs/examples"
TEAM_MODULES = {
    "team_jsonl": "jsonl_source.py",
    "team_traffic": "traffic_check.py",
    "team_hgb": "hist_gradient_boosting.py",
}


@pytest.fixture(scope="module")
def extended(repo_copy):
    """The repository with the docs' three examples as the team's modules at its root,
    trained from a JSON Lines file with the new candidate alone."""
    copy = repo_copy(
        {
            "extensions": list(TEAM_MODULES),
            "data": {"source": "data/source/customers.jsonl"},
            "train": {
                "candidates": {
                    "logistic_regression": {"enabled": False},
                    "random_forest": {"enabled": False},
                    "xgboost": {"enabled": False},
                    "hist_gradient_boosting": {
                        "enabled": True,
                        "max_iter": 150,
                        "learning_rate": 0.05,
                        "max_leaf_nodes": 15,
                    },
                }
            },
            "monitor": {"custom": {"traffic_floor": {"min_records_per_hour": 10_000}}},
        }
    )
    for module, example in TEAM_MODULES.items():
        shutil.copy(EXAMPLES / example, copy.root / f"{module}.py")
    demo = copy.params()["data"]["demo"]
    table = generate_demo_table(demo["n_rows"], demo["seed"], demo["positive_rate"])
    table.to_json(
        copy.root / "data/source/customers.jsonl", orient="records", lines=True, date_format="iso"
    )
    copy.run("dvc", "repro", timeout=900)
    return copy


def test_the_team_candidate_is_cross_validated_gated_and_packaged(extended):
    cv = extended.read_json("metrics/cv.json")
    assert cv["winner"] == "hist_gradient_boosting"
    assert set(cv["candidates"]) == {"hist_gradient_boosting"}
    assert extended.read_json("reports/gate.json")["passed"] is True
    assert extended.read_json("metrics/test.json")["model"] == "hist_gradient_boosting"
    assert extended.read_json("models/bento.json")["bento"]
    raw = pd.read_parquet(extended.root / "data/raw/table.parquet")
    assert len(raw) == extended.params()["data"]["demo"]["n_rows"]  # every line of the file


def test_mlops_serve_answers_with_it_and_mlops_monitor_runs_the_team_check(extended, tmp_path):
    port = free_port()
    predictions = tmp_path / "predictions"
    env = extended.env | {"MLOPS_PREDICTION_LOG_DIR": str(predictions)}
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "mlops"), "serve", "--port", str(port)],
            cwd=extended.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", server)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            scorer = client.get("/metadata").json()["scorer"]
            assert "HistGradientBoostingClassifier" in json.dumps(scorer), scorer
            test = extended.root / "data/split/test.parquet"
            rows = pd.read_parquet(test).head(50).drop(columns=["churned", "signup_date"])
            records = json_records(rows)
            answered = client.post("/predict", json={"records": records})
            assert answered.status_code == 200, answered.text
            assert all(0 <= a["probability"] <= 1 for a in answered.json())
            explained = client.post("/explain", json={"records": records[:1]})
            assert explained.status_code == 501, explained.text
            assert "HistGradientBoostingClassifier" in explained.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    log = str(predictions / "predictions-*.jsonl*")
    monitored = extended.run("mlops", "monitor", "--log", log, "--out", "build/m", check=False)
    assert monitored.returncode in (0, 3), monitored.stdout + monitored.stderr
    report = extended.read_json("build/m/monitoring.json")
    assert report["windows"][report["current"]]["traffic_floor"]["floor"] == 10_000
    assert any(alert["check"] == "traffic_floor" for alert in report["alerts"])
    assert "<h3>traffic floor</h3>" in (extended.root / "build/m/monitoring.html").read_text()
