"""A real regression table and a real multi-class table through a real `dvc repro`, by
editing params.yaml alone: trained, scored, gated and registered, then a multi-class
retrain judged against the champion by the task's own metric (regression's is in
tests/registry/test_gate.py). The package stage refuses them by name
until the service answers these tasks."""

import mlflow
import pandas as pd
import pytest

from mlops_starter.data.corpus import TASK_CORPUS, corpus_params, load_corpus_table

pytestmark = pytest.mark.e2e

TABLES = {t.name: t for t in TASK_CORPUS}
PACKAGE_REFUSAL = "but the service (so no bento is built for it) answers binary models only so far"


def reproduce(repo_copy, name: str):
    """The table's `dvc repro`, to the package stage's refusal, in a copy of its own."""
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


def test_the_task_is_trained_scored_and_registered_and_package_refuses_it_by_name(reproduced):
    task = reproduced.read_json("metrics/test.json")["task"]
    assert task == {"wage": "regression", "beps": "multiclass"}[reproduced.table.name]
    assert (
        f"task: {task}, for target '{reproduced.table.data['target']}'"
        in (reproduced.first["stderr"])
    )
    assert f"is a {task} model" in reproduced.first["stderr"]
    assert PACKAGE_REFUSAL in reproduced.first["stderr"]
    gate = reproduced.first["gate"]
    assert gate["passed"] and gate["version"] == 1, gate
    bar = {"regression": "min_r2", "multiclass": "min_roc_auc_ovr"}[task]
    assert [c["name"] for c in gate["checks"]] == [bar]
    client = mlflow.MlflowClient(f"sqlite:///{reproduced.root / 'mlflow.db'}")
    champion = client.get_model_version_by_alias(reproduced.table.name, "champion")
    assert str(champion.version) == "1" and champion.tags["gate.passed"] == "true"


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
        scored = reproduced.run(
            "mlops",
            "score",
            "--input",
            "data/source/wage.csv",
            "--output",
            "s.parquet",
            check=False,
        )
        assert scored.returncode == 2 and "but mlops score answers binary models only" in (
            scored.stderr
        ), scored.stderr
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
