"""Bring your own table: only params.yaml changes, and failures stop the right stage
with one line that names the problem."""

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops_starter.data.demo import generate_demo_table
from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.storage import json_records

pytestmark = pytest.mark.e2e


def customers_csv(root, rows=2500, **corruptions) -> str:
    """A user's CSV: "Yes"/"No" labels in the second column, its own names (some that
    Python, pydantic and pandas use themselves), gaps in several columns."""
    demo = generate_demo_table(rows, seed=5)
    table = pd.DataFrame(
        {
            "account": demo["customer_id"],
            "Churn": np.where(demo["churned"] == "yes", "Yes", "No"),
            "months active (ø)": demo["tenure_months"],
            "model_config": demo["monthly_charges"],
            "self": demo["support_calls"],
            "_usage": demo["data_usage_gb"],
            "tier": demo["plan"].where(
                np.arange(rows) % 37 != 0
            ),  # categorical with missing values
            "agreement": demo["contract"],
            "notes": "free text we do not use",
        }
    )
    for column, rows_to_null in corruptions.get("nulls", {}).items():
        table.loc[rows_to_null, column] = None
    if "leak" in corruptions:
        table["closure_code"] = np.where(table["Churn"] == "Yes", "C-17", "none")
    path = root / "data" / "source" / "customers.csv"
    table.to_csv(path, index=False)
    return "data/source/customers.csv"


OWN_DATA = {
    "data": {
        "target": "Churn",
        "positive_label": "Yes",
        "id_column": "account",
        "time_column": None,
        "drop_columns": ["notes"],
        "read_chunk_rows": 1000,
    },
    "validate": {"suite": None},
}


def own_data_copy(repo_copy, **corruptions):
    copy = repo_copy(OWN_DATA)
    copy.set_params({"data": {"source": customers_csv(copy.root, **corruptions)}})
    return copy


def test_own_csv_runs_end_to_end_by_changing_params_alone(repo_copy, tmp_path):
    copy = own_data_copy(repo_copy)
    copy.run("dvc", "repro")
    raw = pd.read_parquet(copy.root / "data/raw/table.parquet")
    assert "notes" not in raw.columns and len(raw) == 2500
    model = copy.read_json("models/model.json")
    assert "tier" in model["feature_schema"]["categorical"] and "account" not in str(
        model["feature_schema"]
    )
    metrics = copy.read_json("metrics/test.json")
    assert metrics["rows"] == len(pd.read_parquet(copy.root / "data/split/test.parquet"))
    # A fifth of 2,500 rows, placed one by one: 500 within 3 standard errors.
    assert abs(metrics["rows"] - 500) < 3 * (2500 * 0.2 * 0.8) ** 0.5
    assert metrics["roc_auc"] > 0.65
    slices = copy.read_json("reports/slices.json")
    assert {"self", "_usage"} & {s["feature"] for s in slices["slices"]}

    # The served bento takes every column by its own name, `self` and `_usage` included.
    complete = raw.drop(columns=["Churn"]).dropna().head(1)
    record = json_records(complete)[0]
    bento = copy.read_json("models/bento.json")["bento"]
    env = copy.env | {"MLOPS_PREDICTION_LOG_DIR": str(tmp_path / "predictions")}
    with bentoml_server(bento, free_port(), tmp_path / "serve.log", env) as url:
        answer = httpx.post(f"{url}/predict", json={"records": [record]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert 0 <= answer.json()[0]["probability"] <= 1
        refused = httpx.post(f"{url}/predict", json={"records": [record | {"self": "x"}]})
        assert refused.status_code == 400 and "self" in refused.text
        served = set(httpx.get(f"{url}/metadata", timeout=30).json()["feature_schema"])
        assert {"self", "_usage", "model_config", "months active (ø)"} <= served


def test_null_target_stops_validate_with_one_clear_line(repo_copy):
    copy = own_data_copy(repo_copy, nulls={"Churn": [3, 9]})
    failed = copy.run("dvc", "repro", check=False)
    assert failed.returncode != 0
    assert "stage 'validate' failed" in failed.stderr
    assert "target 'Churn' is never null (set by data.target in params.yaml); 2 offending rows" in (
        failed.stderr
    )
    assert "Traceback" not in failed.stderr + failed.stdout
    assert not (copy.root / "data/split/train.parquet").exists()
    assert copy.read_json("reports/validation.json")["success"] is False


def test_feature_copied_from_the_target_stops_split(repo_copy):
    copy = own_data_copy(repo_copy, leak=True)
    failed = copy.run("dvc", "repro", check=False)
    assert "stage 'split' failed: target_leak_suspects" in failed.stderr
    assert "closure_code" in failed.stderr
    assert not (copy.root / "data/split/train.parquet").exists()
    leakage = copy.read_json("reports/leakage.json")
    assert leakage["passed"] is False and leakage["checks"][-1]["value"]["closure_code"] == 1.0


def test_bad_param_stops_the_first_stage_naming_the_key(repo_copy):
    copy = repo_copy({"split": {"test_size": 1.5}})
    failed = copy.run("dvc", "repro", check=False)
    assert (
        "stage 'ingest' failed: params.yaml: split.test_size: Input should be less than 0.9"
        in failed.stderr
    )
    assert "Traceback" not in failed.stderr
