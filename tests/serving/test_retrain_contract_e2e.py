"""Clients survive a retrain: a version trained without one of the champion's features
is promoted, and the same client request, carrying that feature, is answered by both
versions through a real `bentoml serve` (the new one names the feature as ignored).
`mlops promote` warns, naming the field, where the policy would refuse such requests."""

import httpx
import pandas as pd
import pytest
import yaml
from conftest import ONLY_LOGISTIC

from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.storage import json_records

pytestmark = pytest.mark.e2e

LEFT_OUT = "age"


def served_answer(copy, version: str, record: dict, log: str) -> dict:
    built = copy.run("mlops", "package", "--version", version)
    bento = built.stdout.split("built bento ")[1].split()[0]
    with (
        bentoml_server(bento, free_port(), copy.root / log, copy.env) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        answered = client.post("/predict", json={"records": [record]})
        assert answered.status_code == 200, answered.text
        by_columns = client.post("/predict", json={"columns": {k: [v] for k, v in record.items()}})
        assert by_columns.status_code == 200, by_columns.text
        [answer] = answered.json()
        assert by_columns.json()["columns"]["probability"] == [answer["probability"]]
        return answer


def test_a_version_trained_without_a_feature_answers_the_champions_clients(repo_copy):
    copy = repo_copy(ONLY_LOGISTIC)
    copy.run("dvc", "repro", timeout=900)  # version 1, champion
    test = pd.read_parquet(copy.root / "data/split/test.parquet")
    features = copy.read_json("models/model.json")["feature_schema"]
    assert LEFT_OUT in features["numeric"]
    [record] = json_records(
        test[["customer_id", *features["numeric"], *features["categorical"]]].head(1)
    )

    # The committed expectation suite names every demo column: leave it out with the column.
    copy.set_params({"data": {"drop_columns": [LEFT_OUT]}, "validate": {"suite": None}})
    copy.commit("retrain without a feature")
    copy.run("dvc", "repro", timeout=900)  # version 2
    assert LEFT_OUT not in copy.read_json("models/model.json")["feature_schema"]["numeric"]

    # Under unknown_fields: reject, today's clients would be refused: the promotion says so.
    strict = copy.params() | {"serve": copy.params()["serve"] | {"unknown_fields": "reject"}}
    (copy.root / "strict.yaml").write_text(yaml.safe_dump(strict))
    warned = copy.run(
        "mlops", "--params", "strict.yaml", "promote", "2", "--force", "--reason", "retrain"
    )
    assert "warning: version 2 would refuse requests that champion version 1 answers" in (
        warned.stderr
    )
    assert f"['{LEFT_OUT}']" in warned.stderr
    copy.run("mlops", "rollback", "--reason", "back to 1")
    # Ignored by default: the same promotion has nothing to warn of.
    quiet = copy.run("mlops", "promote", "2", "--force", "--reason", "retrain")
    assert "warning" not in quiet.stderr, quiet.stderr
    assert "champion 1 -> 2" in quiet.stdout

    old = served_answer(copy, "1", record, "serve-1.log")
    new = served_answer(copy, "2", record, "serve-2.log")
    assert old["model_version"] == "1" and new["model_version"] == "2"
    assert f"{LEFT_OUT}:unknown_field" not in old["warnings"]
    assert f"{LEFT_OUT}:unknown_field" in new["warnings"]
    assert 0 <= new["probability"] <= 1 and old["id"] == new["id"] == record["customer_id"]
