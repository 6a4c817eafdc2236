"""The registry story against a real `mlflow server`: the pipeline registers and gates
every model, the CLI promotes and rolls back, and MLflow alone holds the history."""

import json

import pytest
from conftest import ONLY_LOGISTIC
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.e2e

MODEL = "churn-classifier"
# Regularised until every coefficient is zero: a constant score, no better than chance.
WEAKER = {"train": {"candidates": {"logistic_regression": {"C": 0.0001, "l1_ratio": 1.0}}}}
BETTER = {
    "train": {
        "candidates": {
            "logistic_regression": {"C": 0.5, "l1_ratio": 0.5},
            "random_forest": {"enabled": True},
            "xgboost": {"enabled": True},
        }
    }
}


@pytest.fixture(scope="module")
def story(repo_copy, mlflow_server):
    copy = repo_copy(ONLY_LOGISTIC)
    copy.env |= {"MLFLOW_TRACKING_URI": mlflow_server, "GITHUB_ACTOR": "ci-bot"}
    copy.client = MlflowClient(tracking_uri=mlflow_server)
    copy.champion = lambda: copy.client.get_model_version_by_alias(MODEL, "champion").version
    return copy


def test_first_version_that_passes_becomes_champion(story):
    story.run("dvc", "repro")
    gate = story.read_json("reports/gate.json")
    assert gate["passed"] and gate["version"] == "1" and gate["champion_before"] is None
    assert story.champion() == "1"
    version = story.client.get_model_version(MODEL, "1")
    assert version.tags["gate.passed"] == "true"
    assert version.tags["run_id"] == gate["run_id"] == version.run_id
    assert {"git.commit", "data.train_md5", "threshold", "test.roc_auc", "test.pr_auc"} <= set(
        version.tags
    )


def test_weaker_model_fails_the_gate_and_stays_challenger(story):
    story.set_params(WEAKER)
    story.run("dvc", "repro")
    gate = story.read_json("reports/gate.json")
    assert gate["version"] == "2" and not gate["passed"]
    failed = {c["name"]: c for c in gate["checks"] if not c["passed"]}
    versus = failed["not_worse_than_champion_pr_auc"]
    assert "worse than the champion" in versus["detail"] and "interval" in versus["detail"]
    assert story.champion() == "1"
    assert story.client.get_model_version_by_alias(MODEL, "challenger").version == "2"
    assert story.client.get_model_version(MODEL, "2").tags["gate.passed"] == "false"

    checked = story.run("mlops", "gate", check=False)
    assert checked.returncode == 1
    assert "gate check failed: not_worse_than_champion_pr_auc" in checked.stderr
    assert "FAIL" in checked.stdout  # the Markdown summary CI posts

    refused = story.run("mlops", "promote", "2", check=False)
    assert refused.returncode == 2 and "did not pass the gate" in refused.stderr
    assert story.champion() == "1"


def test_better_model_passes_and_is_promoted(story):
    story.set_params(BETTER)
    story.run("dvc", "repro")
    gate = story.read_json("reports/gate.json")
    assert gate["version"] == "3" and gate["passed"], gate
    assert gate["champion_before"] == "1"
    assert any(c["name"] == "not_worse_than_champion_pr_auc" for c in gate["checks"])
    assert story.champion() == "1"  # only the first version is promoted automatically
    assert story.run("mlops", "gate").returncode == 0
    story.run("mlops", "promote", "challenger", "--reason", "beats v1 on the gate")
    assert story.champion() == "3"
    assert "nothing to do" in story.run("mlops", "promote", "3").stdout  # no second move logged
    assert "smoke test passed: champion version 3" in story.run("mlops", "smoke").stdout


def test_rollback_restores_the_previous_champion_and_repeats_harmlessly(story):
    story.run("mlops", "rollback", "--reason", "smoke test failed")
    assert story.champion() == "1"
    again = story.run("mlops", "rollback")
    assert "nothing to do" in again.stdout
    assert story.champion() == "1"
    versions = {v.version for v in story.client.search_model_versions(f"name='{MODEL}'")}
    assert versions == {"1", "2", "3"}  # rollback never deletes


def test_forced_promotion_needs_and_records_a_reason(story):
    no_reason = story.run("mlops", "promote", "2", "--force", check=False)
    assert no_reason.returncode == 2 and "needs a --reason" in no_reason.stderr
    story.run(
        "mlops", "promote", "2", "--force", "--reason", "regulator asked for the simpler model"
    )
    assert story.champion() == "2"
    tags = story.client.get_model_version(MODEL, "2").tags
    assert tags["forced_promotion.reason"] == "regulator asked for the simpler model"


def test_every_alias_move_is_in_the_registry_history(story):
    tags = story.client.get_registered_model(MODEL).tags
    moves = [json.loads(v) for k, v in sorted(tags.items()) if k.startswith("alias_log.")]
    assert [(m["action"], m["from_version"], m["to_version"]) for m in moves] == [
        ("auto-promote", None, "1"),
        ("promote", "1", "3"),
        ("rollback", "3", "1"),
        ("forced-promote", "1", "2"),
    ]
    assert {m["actor"] for m in moves} == {"ci-bot"}
    shown = story.run("mlops", "history").stdout
    assert "forced-promote: champion 1 -> 2 by ci-bot: regulator asked" in shown
    assert "champion: version 2" in shown


def test_a_move_made_outside_the_cli_is_flagged(story):
    story.client.set_registered_model_alias(MODEL, "champion", "3")  # as the MLflow UI would
    assert "moved outside this CLI" in story.run("mlops", "history").stdout
