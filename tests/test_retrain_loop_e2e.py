"""The loop `monitor.retrain_when` closes, on the demo: drifted traffic through the served
champion, alerts that make a retrain due, `make retrain` on fresh rows, the gate, and the
new version as the challenger of a shadow experiment, with the champion unmoved (only
the experiment's verdict promotes: tests/serving/test_experiment_e2e.py)."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import VENV_BIN

from mlops_starter.data.demo import generate_demo_table

pytestmark = pytest.mark.e2e

SOURCE = "data/source/customers.csv"
FIRST_ROWS, FRESH_ROWS = 6000, 4000

# What TRAINING_DATA_SYNC runs: the newest rows, the world as it now is (the covariate
# shift the monitor saw), appended to the source params.yaml reads.
FRESH = f"""
import pandas as pd
from mlops_starter.data.demo import generate_production_batch
fresh = generate_production_batch({FRESH_ROWS}, seed=11, scenario="covariate")
fresh["customer_id"] = "F-" + fresh["customer_id"]
older = pd.read_csv("{SOURCE}")
pd.concat([older, fresh], ignore_index=True).to_csv("{SOURCE}", index=False)
"""

ALIASES = """
import json, sys
from mlops_starter.registry.model_registry import Registry
registry = Registry.connect(sys.argv[1])
print(json.dumps({
    alias: {"version": str(v.version), "tags": dict(v.tags)}
    for alias in ("champion", "challenger") for v in [registry.version(alias)]
}))
"""


def test_drift_makes_a_retrain_due_whose_gated_version_enters_a_shadow_experiment(
    repo_copy, tmp_path
):
    copy = repo_copy(
        {
            "data": {"source": SOURCE},
            # The demo's suite file bounds each number by the demo's range, which the
            # drifted rows leave: a suite profiled from each table's own rows instead.
            "validate": {"suite": None},
            "monitor": {
                "retrain_when": {"checks": ["data_drift"], "alerting_windows": 2, "of_last": 5}
            },
        }
    )
    (copy.root / SOURCE).parent.mkdir(parents=True, exist_ok=True)
    generate_demo_table(FIRST_ROWS, seed=7).to_csv(copy.root / SOURCE, index=False)
    copy.run("dvc", "repro", timeout=900)
    copy.run("mlops", "promote", "1")

    # Five days through the served champion, drifted from day 2: three alerting windows.
    copy.run(
        *("mlops", "monitor-demo", "--scenario", "covariate"),
        *("--rows", "300", "--days", "5", "--drift-day", "2"),
        timeout=900,
    )
    outputs = tmp_path / "github_output"
    folder = copy.root / "build/monitor-demo/covariate"
    copy.env["GITHUB_OUTPUT"] = str(outputs)  # as in the scheduled workflow
    monitored = copy.run(
        *("mlops", "monitor", "--log", str(folder / "predictions.jsonl")),
        *("--labels", str(folder / "labels.csv")),
        check=False,
    )
    del copy.env["GITHUB_OUTPUT"]
    assert monitored.returncode == 3, monitored.stdout + monitored.stderr
    assert "RETRAIN due: data_drift alerting in 2 of the last 5 windows holds (3 windows)" in (
        monitored.stdout
    )
    assert "retrain=true" in outputs.read_text().splitlines()
    page = (copy.root / "build/monitoring/monitoring.html").read_text()
    assert "<b>Retrain due</b>" in page

    # What retrain.yml runs: the Makefile's own recipe, in this run's environment (-o env:
    # the copy's newer lock file must not reinstall it).
    sync = tmp_path / "fresh_rows.py"
    sync.write_text(FRESH)
    copy.env["TRAINING_DATA_SYNC"] = f"{sys.executable} {sync}"
    retrained = copy.run(*("make", "-o", "env", "retrain", f"VENV={VENV_BIN.parent}"), timeout=1800)
    assert "with challenger version 2 (shadow)" in retrained.stdout, retrained.stdout
    test_rows = copy.read_json("metrics/test.json")["rows"]
    assert test_rows > 0.15 * (FIRST_ROWS + FRESH_ROWS)  # the split saw the fresh rows
    registry = json.loads(
        copy.run(sys.executable, "-c", ALIASES, copy.params()["mlflow"]["registered_model"]).stdout
    )
    assert registry["champion"]["version"] == "1", "a retrain must not promote"
    assert registry["challenger"]["version"] == "2"
    gate = copy.read_json("reports/gate.json")
    assert gate["passed"] and str(gate["version"]) == "2"
