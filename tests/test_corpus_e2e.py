"""Every corpus table (real public data shipped in a package) through the whole DAG,
`package` included, by editing params.yaml alone and with the default leakage
settings; then the built bento answers a record of the test set."""

import json
import subprocess

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops_starter.candidates import CANDIDATES
from mlops_starter.data.corpus import CORPUS, corpus_params, load_corpus_table
from mlops_starter.serving.explain import explain
from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.serving.scorer import TOLERANCE
from mlops_starter.storage import json_records, load_model

pytestmark = pytest.mark.e2e

# The bento's own model (from the copy's BentoML store) scores the first test rows.
BENTO_SCORES = """
import json, bentoml, pandas as pd
info, model_info = json.load(open("models/bento.json")), json.load(open("models/model.json"))
schema = model_info["feature_schema"]
test = pd.read_parquet("data/split/test.parquet").head(3)
model = bentoml.mlflow.load_model(info["bento_model"])
print(json.dumps(model.predict(test[schema["numeric"] + schema["categorical"]])[:, 1].tolist()))
"""


_reproduced: dict[tuple[str, str | None], object] = {}


def reproduce(table, repo_copy, only: str | None = None):
    """One `dvc repro` per table (and candidate set) for the whole module; `only` trains
    that candidate alone."""
    if (table.name, only) not in _reproduced:
        source = f"data/source/{table.name}.csv"
        params = corpus_params(table, source)
        if only:
            params["train"] = {"candidates": {n: {"enabled": n == only} for n in CANDIDATES}}
        copy = repo_copy(params)
        load_corpus_table(table).to_csv(copy.root / source, index=False)
        copy.run("dvc", "repro", timeout=900)
        copy.table = table
        _reproduced[(table.name, only)] = copy
    return _reproduced[(table.name, only)]


@pytest.fixture(scope="module", params=CORPUS, ids=lambda table: table.name)
def reproduced(request, repo_copy):
    return reproduce(request.param, repo_copy)


def expected_scores(copy, rows: int = 3) -> np.ndarray:
    model_info = copy.read_json("models/model.json")
    schema = model_info["feature_schema"]
    test = pd.read_parquet(copy.root / "data/split/test.parquet").head(rows)
    model = load_model(copy.root / "models/model.skops")
    return model.predict_proba(test[schema["numeric"] + schema["categorical"]])[:, 1]


def test_table_runs_end_to_end_and_is_packaged(reproduced):
    assert reproduced.read_json("reports/leakage.json")["passed"] is True
    gate = reproduced.read_json("reports/gate.json")
    assert gate["passed"], gate
    bento = reproduced.read_json("models/bento.json")
    assert bento["built"] is True
    # The compiled scorer serves every real table, equal to the pipeline on its test set.
    test_rows = len(pd.read_parquet(reproduced.root / "data/split/test.parquet"))
    assert bento["scorer"]["kind"] == "compiled", bento["scorer"]
    assert bento["scorer"]["max_abs_difference"] <= TOLERANCE
    assert bento["scorer"]["rows"] > test_rows


def test_probabilities_beat_the_base_rate(reproduced):
    metrics = reproduced.read_json("metrics/test.json")
    assert metrics["brier_skill"] > 0, metrics
    assert metrics["brier"] < metrics["brier_base_rate"]
    assert metrics["roc_auc"] > 0.6


def test_every_column_has_a_written_treatment(reproduced):
    model_info = reproduced.read_json("models/model.json")
    table = pd.read_parquet(reproduced.root / "data/raw/table.parquet")
    roles = {reproduced.table.data["target"], reproduced.table.data.get("id_column")}
    roles |= {reproduced.table.data.get("time_column")}
    assert set(model_info["columns"]) == set(table.columns) - roles
    split_report = reproduced.read_json("reports/leakage.json")
    assert split_report["columns"] == model_info["columns"]


def test_real_tables_get_importance_slices_a_model_card_and_exact_explanations(reproduced):
    schema = reproduced.read_json("models/model.json")["feature_schema"]
    features = schema["numeric"] + schema["categorical"]
    importance = pd.read_csv(reproduced.root / "plots/importance.csv")
    assert set(importance["feature"]) == set(features)
    slices = reproduced.read_json("reports/slices.json")
    assert {s["feature"] for s in slices["slices"]} >= set(schema["categorical"])
    card = (reproduced.root / "reports/model_card.md").read_text()
    assert "## Slices" in card and "## Top features" in card and importance["feature"][0] in card
    rows = pd.read_parquet(reproduced.root / "data/split/test.parquet").head(50)[features]
    found = explain(load_model(reproduced.root / "models/model.skops"), rows)
    total = found.base_value + found.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, found.margin, atol=1e-4)


def test_the_bento_answers_as_the_trained_model(reproduced):
    done = subprocess.run(
        ["python", "-c", BENTO_SCORES],
        cwd=reproduced.root,
        env=reproduced.env,
        capture_output=True,
        text=True,
        check=True,
    )
    answered = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(answered, expected_scores(reproduced), atol=1e-6)


@pytest.mark.parametrize("name", ["default", "loans"])
def test_real_records_are_served_over_http_as_the_trained_model_scores_them(
    name, repo_copy, tmp_path
):
    """`default` once crashed `package` (no id column); `loans` sends nulls in numeric and
    categorical fields and has left-out columns: both answer from a real `bentoml serve`."""
    copy = reproduce(next(t for t in CORPUS if t.name == name), repo_copy)
    bento = copy.read_json("models/bento.json")["bento"]
    rows = 200
    schema = copy.read_json("models/model.json")["feature_schema"]
    test = pd.read_parquet(copy.root / "data/split/test.parquet").head(rows)
    records = json_records(test[schema["numeric"] + schema["categorical"]])
    env = {**copy.env, "MLOPS_PREDICTION_LOG_DIR": str(tmp_path / "predictions")}
    columns = {name: [r[name] for r in records] for name in records[0]}
    with bentoml_server(bento, free_port(), tmp_path / "serve.log", env, cwd=copy.root) as url:
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=60)
        by_columns = httpx.post(f"{url}/predict", json={"columns": columns}, timeout=60)
        metadata = httpx.get(f"{url}/metadata").json()
    assert answer.status_code == 200, answer.text
    assert by_columns.status_code == 200, by_columns.text
    assert metadata["id_field"] is None
    served = np.array([prediction["probability"] for prediction in answer.json()])
    np.testing.assert_allclose(served, expected_scores(copy, rows), atol=TOLERANCE)
    assert by_columns.json()["columns"]["probability"] == served.tolist()

    # The batch scorer on the same real table, as CSV: the same numbers, nothing refused.
    test.to_csv(tmp_path / "table.csv", index=False)
    copy.run(
        "mlops",
        "score",
        "--version",
        copy.read_json("models/bento.json")["version"],
        "--input",
        str(tmp_path / "table.csv"),
        "--output",
        str(tmp_path / "scores.parquet"),
        "--chunk-rows",
        "64",
        "--summary",
        str(tmp_path / "summary.json"),
    )
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    np.testing.assert_allclose(scores["probability"], served, atol=TOLERANCE)
    issues = json.loads((tmp_path / "summary.json").read_text())["issues"]
    refused = {"wrong_type", "not_finite"}
    assert not [(c, k) for c, kinds in issues.items() for k in kinds if k in refused], issues


@pytest.mark.parametrize("only", ["balanced_random_forest", "adaboost"])
def test_the_candidates_off_by_default_win_gate_and_serve_on_a_real_table(
    only, repo_copy, tmp_path
):
    """Switched on alone for the wages table (small, 22% positive), each of the two goes
    through the folds, calibration, the gate, the model card and the compiled scorer,
    and a real `bentoml serve` answers /predict and /explain (or /explain's 501, naming
    the estimator it has no method for)."""
    copy = reproduce(next(t for t in CORPUS if t.name == "wages"), repo_copy, only)
    assert copy.read_json("metrics/cv.json")["winner"] == only
    assert copy.read_json("reports/gate.json")["passed"]
    assert only in (copy.root / "reports/model_card.md").read_text()
    bento = copy.read_json("models/bento.json")
    assert bento["scorer"]["kind"] == "compiled", bento["scorer"]
    schema = copy.read_json("models/model.json")["feature_schema"]
    test = pd.read_parquet(copy.root / "data/split/test.parquet").head(20)
    records = json_records(test[schema["numeric"] + schema["categorical"]])
    with bentoml_server(bento["bento"], free_port(), tmp_path / "serve.log", copy.env) as url:
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=60)
        explained = httpx.post(f"{url}/explain", json={"records": records}, timeout=60)
    assert answer.status_code == 200, answer.text
    served = [prediction["probability"] for prediction in answer.json()]
    np.testing.assert_allclose(served, expected_scores(copy, 20), atol=TOLERANCE)
    if only == "adaboost":
        assert explained.status_code == 501, explained.text
        assert "AdaBoostClassifier" in explained.text
    else:
        assert explained.status_code == 200, explained.text
        first = explained.json()[0]
        total = first["base_value"] + sum(first["contributions"].values())
        assert total == pytest.approx(first["margin"], abs=1e-4)
