"""A real regression table and a real multi-class table through a real `dvc repro`, by
editing params.yaml alone: trained, scored, gated, registered and packaged; the bento
served by a real `bentoml serve` answers records and columns as its OpenAPI document
says, as the trained model does, and as `mlops score` writes; then a multi-class
retrain is judged against the champion by the task's own metric (regression's is in
tests/registry/test_gate.py)."""

import json

import httpx
import jsonschema
import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_starter.data.corpus import TASK_CORPUS, corpus_params, load_corpus_table
from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.storage import json_records, load_model

pytestmark = pytest.mark.e2e

TABLES = {t.name: t for t in TASK_CORPUS}
ROWS = 40  # test rows sent to the service


def reproduce(repo_copy, name: str):
    """The table's `dvc repro`, to its bento, in a copy of its own."""
    table = TABLES[name]
    source = f"data/source/{table.name}.csv"
    # Three folds instead of five: the suite's time, and the same stages.
    changes = {"mlflow": {"registered_model": table.name}, "train": {"cv_folds": 3}}
    copy = repo_copy(corpus_params(table, source) | changes)
    load_corpus_table(table).to_csv(copy.root / source, index=False)
    first = copy.run("dvc", "repro", check=False, timeout=900)
    copy.table = table
    copy.first = {
        "stderr": first.stdout + first.stderr,
        "gate": copy.read_json("reports/gate.json"),
        "card": (copy.root / "reports/model_card.md").read_text(),
        "bento": copy.read_json("models/bento.json"),
    }
    return copy


@pytest.fixture(scope="module")
def wage(repo_copy):
    return reproduce(repo_copy, "wage")


@pytest.fixture(scope="module")
def beps(repo_copy):
    """Reproduced, then retrained on another training seed: the gate compares the second
    version with the first, the champion."""
    copy = reproduce(repo_copy, "beps")
    copy.set_params({"train": {"seed": 7}})
    second = copy.run("dvc", "repro", check=False, timeout=900)
    copy.second = {
        "stderr": second.stdout + second.stderr,
        "gate": copy.read_json("reports/gate.json"),
    }
    return copy


@pytest.fixture(params=["wage", "beps"])
def reproduced(request):
    return request.getfixturevalue(request.param)


def test_the_task_is_trained_scored_registered_and_packaged(reproduced):
    task = reproduced.read_json("metrics/test.json")["task"]
    assert task == {"wage": "regression", "beps": "multiclass"}[reproduced.table.name]
    assert (
        f"task: {task}, for target '{reproduced.table.data['target']}'"
        in (reproduced.first["stderr"])
    )
    gate = reproduced.first["gate"]
    assert gate["passed"] and gate["version"] == 1, gate
    bar = {"regression": "min_r2", "multiclass": "min_roc_auc_ovr"}[task]
    assert [c["name"] for c in gate["checks"]] == [bar]
    client = mlflow.MlflowClient(f"sqlite:///{reproduced.root / 'mlflow.db'}")
    champion = client.get_model_version_by_alias(reproduced.table.name, "champion")
    assert str(champion.version) == "1" and champion.tags["gate.passed"] == "true"
    bento = reproduced.first["bento"]
    assert bento["built"] and bento["version"] == "1", bento
    # Served by its pipeline, and /metadata says why.
    assert bento["scorer"]["kind"] == "pipeline"
    assert f"this is a {task} model" in bento["scorer"]["reason"]


def expected_answers(copy, test: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the trained model (models/model.skops) answers for `test`, field by field."""
    model = load_model(copy.root / "models/model.skops")
    if copy.table.name == "wage":
        value = model.predict(test)
        half = copy.read_json("models/model.json")["interval_half_width"]
        return {"value": value, "lower": value - half, "upper": value + half}
    # The model predicts class codes; the service answers their labels.
    labels = np.asarray(model.labels, dtype=object)[model.predict(test)]
    return {"probabilities": model.predict_proba(test), "label": labels}


def test_the_bento_answers_records_and_columns_as_its_document_says_and_the_model_does(
    reproduced, tmp_path
):
    copy = reproduced
    info = copy.read_json("models/model.json")
    features = info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    test = pd.read_parquet(copy.root / "data/split/test.parquet").head(ROWS)
    records = json_records(test[features])
    columns = {name: [r[name] for r in records] for name in features}
    env = {**copy.env, "MLOPS_PREDICTION_LOG_DIR": str(tmp_path / "predictions")}
    bento = copy.read_json("models/bento.json")  # the last run's: beps's retrain
    with bentoml_server(
        bento["bento"], free_port(), tmp_path / "serve.log", env, cwd=copy.root
    ) as url:
        by_records = httpx.post(f"{url}/predict", json={"records": records}, timeout=60)
        by_columns = httpx.post(f"{url}/predict", json={"columns": columns}, timeout=60)
        explained = httpx.post(f"{url}/explain", json={"records": records[:1]}, timeout=60)
        metadata = httpx.get(f"{url}/metadata").json()
        document = httpx.get(f"{url}/docs.json").json()
    assert by_records.status_code == 200 and by_columns.status_code == 200, by_records.text
    schemas = document["components"]["schemas"]
    for answer in by_records.json():
        jsonschema.validate(answer, schemas["Prediction"])
    jsonschema.validate(by_columns.json(), schemas["ColumnsAnswer"])
    answered = by_columns.json()["columns"]
    expected = expected_answers(copy, test[features])
    if metadata["task"] == "regression":
        assert set(schemas["Prediction"]["required"]) >= {"value", "lower", "upper"}
        assert metadata["interval"]["coverage"] == 0.9
        for name in ("value", "lower", "upper"):
            np.testing.assert_allclose(answered[name], expected[name], rtol=1e-9)
            assert [a[name] for a in by_records.json()] == answered[name]
    else:
        classes = ["Conservative", "Labour", "Liberal Democrat"]
        assert metadata["task"] == "multiclass" and metadata["classes"] == classes
        assert schemas["Prediction"]["properties"]["label"]["enum"] == classes
        served = np.column_stack([answered["probabilities"][c] for c in classes])
        np.testing.assert_allclose(served, expected["probabilities"], rtol=1e-9)
        assert answered["label"] == expected["label"].astype(str).tolist()
        assert [a["label"] for a in by_records.json()] == answered["label"]
        assert [list(a["probabilities"]) for a in by_records.json()] == [classes] * ROWS
    assert explained.status_code == 200, explained.text
    (explanation,) = explained.json()
    jsonschema.validate(explanation, schemas["Explanation"])
    if metadata["task"] == "regression":
        outputs = {"value": explanation}
        assert explanation["value"] == pytest.approx(answered["value"][0], rel=1e-9)
    else:  # one explanation per class, beside the probability /predict answered for it
        outputs = explanation["classes"]
        assert explanation["label"] == answered["label"][0]
        for name, output in outputs.items():
            assert output["probability"] == pytest.approx(answered["probabilities"][name][0])
    for output in outputs.values():
        assert set(output["contributions"]) == set(features)
        total = output["base_value"] + sum(output["contributions"].values())
        assert total == pytest.approx(output["margin"], abs=1e-4)
    logged = [
        json.loads(line)
        for path in (tmp_path / "predictions").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(logged) == 2 * ROWS
    assert all(set(expected) <= set(line) for line in logged)

    # The monitor reads those lines against the test set's answers (evaluate's reference).
    out = tmp_path / "monitoring"
    log_files = str(tmp_path / "predictions" / "*.jsonl")
    monitored = copy.run(
        "mlops",
        "monitor",
        "--log",
        log_files,
        "--version",
        bento["version"],
        "--out",
        str(out),
        check=False,
    )
    assert monitored.returncode in (0, 3), monitored.stdout + monitored.stderr  # 3: an alert
    report = json.loads((out / "monitoring.json").read_text())
    drift = report["windows"][report["current"]]["prediction_drift"]
    by_class = [f"probability of {c}" for c in metadata.get("classes", [])]
    numbers = ["value"] if metadata["task"] == "regression" else by_class
    assert list(drift["psi"]) == numbers

    # `mlops score` of the same rows writes the columns the service answers.
    test.to_csv(tmp_path / "rows.csv", index=False)
    copy.run(
        "mlops",
        "score",
        "--version",
        bento["version"],
        "--input",
        str(tmp_path / "rows.csv"),
        "--output",
        str(tmp_path / "s.parquet"),
    )
    scored = pd.read_parquet(tmp_path / "s.parquet")
    for name, values in answered.items():
        if isinstance(values, dict):  # each class's probability, one struct column
            found = pd.DataFrame(scored[name].tolist())[list(values)].to_numpy()
            np.testing.assert_allclose(found, np.column_stack(list(values.values())), rtol=1e-9)
        elif isinstance(values[0], str):
            assert scored[name].tolist() == values
        else:
            np.testing.assert_allclose(scored[name], values, rtol=1e-9)


def test_each_task_writes_its_own_plots_and_card(reproduced):
    plots = {p.stem for p in (reproduced.root / "plots").glob("*.csv")}
    card = reproduced.first["card"]
    if reproduced.table.name == "wage":
        assert plots == {"predicted", "residuals", "coverage", "importance"}
        coverage = pd.read_csv(reproduced.root / "plots/coverage.csv")
        test_rows = reproduced.read_json("metrics/test.json")["rows"]
        assert len(coverage) == 10 and coverage["rows"].sum() == test_rows
        assert "Conformal interval: the value ±" in card and "CV rmse" in card
        # The leakage audit would have stopped on logwage: it is the table's own drop.
        assert "logwage" not in reproduced.read_json("models/model.json")["columns"]
    else:
        assert plots == {"roc", "pr", "confusion", "calibration", "importance"}
        roc = pd.read_csv(reproduced.root / "plots/roc.csv")
        assert set(roc["class"]) == {"Conservative", "Labour", "Liberal Democrat"}
        assert "| class | rows | precision | recall | f1 |" in card and "temperature" in card


def test_a_retrain_is_compared_with_the_champion_by_the_task_s_metric(beps):
    gate = beps.second["gate"]
    comparison = gate["champion_comparison"]
    metric = "roc_auc_ovr"
    assert gate["version"] == 2 and comparison["metric"] == metric
    assert comparison["assessed"] is True, comparison
    check = next(c for c in gate["checks"] if c["name"] == f"not_worse_than_champion_{metric}")
    assert "paired resamples" in check["detail"]
    # Another training seed on the same split: within noise of the champion, not worse.
    assert check["passed"] and abs(check["value"]) < 0.05, check
