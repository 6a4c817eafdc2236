"""The real `dvc repro` in a throw-away copy of the repository, on small demo data,
with MLflow on its default local SQLite store (no server, no environment variable)."""

import json
import re
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from mlops_starter.lineage import MODEL_MD5_TAG, MODEL_URI_TAG
from mlops_starter.storage import file_md5, load_model

pytestmark = pytest.mark.e2e

STAGES = ("ingest", "validate", "split", "train", "evaluate", "register")


@pytest.fixture(scope="module")
def reproduced(repo_copy):
    copy = repo_copy()
    copy.first_run = copy.run("dvc", "repro")
    return copy


@pytest.fixture(scope="module")
def mlflow_runs(reproduced):
    client = MlflowClient(tracking_uri=f"sqlite:///{reproduced.root}/mlflow.db")
    experiment = client.get_experiment_by_name("mlops-starter")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return client, parent, children


def test_every_stage_runs_and_writes_its_outputs(reproduced):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in reproduced.first_run.stdout
    for relative in (
        "data/raw/table.parquet",
        "data/split/train.parquet",
        "data/split/test.parquet",
        "models/model.skops",
        "reports/validation.json",
        "reports/leakage.json",
        "reports/gate.json",
        "reports/gate.md",
        "plots/roc.csv",
        "plots/pr.csv",
        "plots/confusion.csv",
        "plots/calibration.csv",
        "plots/importance.csv",
        "reports/slices.json",
        "reports/model_card.md",
    ):
        assert (reproduced.root / relative).is_file(), relative
    assert reproduced.read_json("reports/validation.json")["success"] is True
    assert reproduced.read_json("reports/leakage.json")["passed"] is True


def test_test_metrics_are_dvc_metrics_and_beat_chance(reproduced):
    shown = json.loads(reproduced.run("dvc", "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"]["metrics/test.json"]["data"]
    assert {"roc_auc", "pr_auc", "precision", "recall", "f1", "brier", "threshold"} <= set(metrics)
    assert metrics["roc_auc"] > 0.65
    assert metrics["pr_auc"] > 0.1  # base rate is 0.05
    # Calibrated on out-of-fold predictions: better than predicting the base rate.
    assert metrics["brier_skill"] > 0 and metrics["brier"] < metrics["brier_base_rate"]
    assert 0 <= metrics["ece"] < 0.05
    counts = sum(
        metrics[k]
        for k in ("true_positives", "false_positives", "true_negatives", "false_negatives")
    )
    test_rows = len(pd.read_parquet(reproduced.root / "data/split/test.parquet"))
    assert counts == metrics["rows"] == test_rows
    # Rows are placed one by one (a hash): about a fifth of 3,000, within 3 standard errors.
    assert abs(test_rows - 600) < 3 * (3000 * 0.2 * 0.8) ** 0.5


def test_dvc_plots_render(reproduced):
    reproduced.run("dvc", "plots", "show", "-o", "plots_html")
    assert (reproduced.root / "plots_html" / "index.html").is_file()


def test_test_set_never_shares_an_id_with_train(reproduced):
    train = pd.read_parquet(reproduced.root / "data/split/train.parquet")
    test = pd.read_parquet(reproduced.root / "data/split/test.parquet")
    assert not set(train["customer_id"]) & set(test["customer_id"])


def test_each_candidate_is_a_nested_mlflow_run(mlflow_runs):
    _, parent, children = mlflow_runs
    assert {c.data.tags["candidate"] for c in children} == {
        "logistic_regression",
        "random_forest",
        "xgboost",
    }
    for child in children:
        assert "cv_pr_auc" in child.data.metrics and "fit_seconds" in child.data.metrics
        assert child.data.params["cv_folds"] == "3"
    assert parent.data.tags["winner"] in {c.data.tags["candidate"] for c in children}


def test_mlflow_run_traces_back_to_code_and_data(reproduced, mlflow_runs):
    _, parent, _ = mlflow_runs
    tags = parent.data.tags
    assert tags["git.commit"] == reproduced.run("git", "rev-parse", "HEAD").stdout.strip()
    lock = yaml.safe_load((reproduced.root / "dvc.lock").read_text())
    train_out = next(
        o for o in lock["stages"]["split"]["outs"] if o["path"].endswith("train.parquet")
    )
    assert (
        tags["data.train_md5"]
        == train_out["md5"]
        == file_md5(reproduced.root / "data/split/train.parquet")
    )
    assert tags["data.test_md5"] == file_md5(reproduced.root / "data/split/test.parquet")
    assert "lib.scikit-learn" in tags and "lib.xgboost-cpu" in tags


def test_mlflow_holds_the_test_metrics_and_the_same_model(reproduced, mlflow_runs, monkeypatch):
    _, parent, _ = mlflow_runs
    metrics = reproduced.read_json("metrics/test.json")
    assert parent.data.metrics["test_roc_auc"] == pytest.approx(metrics["roc_auc"])
    # The run is found from the model file alone, by the content hash it was tagged with.
    assert parent.data.tags[MODEL_MD5_TAG] == file_md5(reproduced.root / "models/model.skops")
    assert reproduced.read_json("reports/gate.json")["run_id"] == parent.info.run_id
    info = reproduced.read_json("models/model.json")
    # Through the environment, which the test restores: mlflow.set_tracking_uri would point
    # every later test in this worker at this copy's registry.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{reproduced.root}/mlflow.db")
    logged = mlflow.pyfunc.load_model(parent.data.tags[MODEL_URI_TAG])
    assert logged.metadata.signature is not None
    test = pd.read_parquet(reproduced.root / "data/split/test.parquet").head(20)
    features = info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    local = load_model(reproduced.root / "models/model.skops").predict_proba(test[features])
    np.testing.assert_allclose(
        np.asarray(logged.predict(test[features]))[:, 1], local[:, 1], rtol=1e-6
    )


def test_importance_and_slices_cover_the_original_features(reproduced):
    schema = reproduced.read_json("models/model.json")["feature_schema"]
    importance = pd.read_csv(reproduced.root / "plots/importance.csv")
    assert set(importance["feature"]) == set(schema["numeric"] + schema["categorical"])
    assert importance["importance"].is_monotonic_decreasing
    slices = reproduced.read_json("reports/slices.json")
    assert {s["feature"] for s in slices["slices"]} >= set(schema["categorical"])
    assessed = [s for s in slices["slices"] if s["assessed"]]
    worst = min(s["roc_auc"] for s in assessed)
    assert reproduced.read_json("metrics/test.json")["worst_slice_roc_auc"] == worst


def test_the_registered_version_carries_its_model_card(reproduced):
    client = MlflowClient(tracking_uri=f"sqlite:///{reproduced.root}/mlflow.db")
    gate = reproduced.read_json("reports/gate.json")
    version = client.get_model_version("churn-classifier", str(gate["version"]))
    card_path = version.tags["model_card"]
    logged = Path(client.download_artifacts(version.run_id, card_path)).read_text()
    card = (reproduced.root / "reports/model_card.md").read_text()
    assert logged == card and card_path in version.description
    for heading in (
        "## Intended use",
        "## Data",
        "## Candidates",
        "## Test metrics",
        "## Slices",
        "## Top features",
        "## Gate",
        "## Known limits",
    ):
        assert heading in card
    test = reproduced.read_json("metrics/test.json")
    assert f"| roc_auc | {test['roc_auc']:.4f} | [" in card
    assert reproduced.read_json("models/model.json")["data_train_md5"] in card


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def test_second_repro_runs_no_stage_and_dvc_status_is_clean(reproduced):
    """A file source is hashed by DVC itself: nothing changed, nothing runs."""
    again = reproduced.run("dvc", "repro")
    assert ran_stages(again.stdout) == set(), again.stdout
    assert "Data and pipelines are up to date." in again.stdout
    assert json.loads(reproduced.run("dvc", "status", "--json").stdout) == {}


def test_a_stage_run_by_a_python_without_the_project_deletes_no_committed_file(
    reproduced, tmp_path
):
    """`.venv/bin/dvc repro` with the environment not active runs each stage's `python`
    from PATH, which lacks the project's libraries: every stage fails, and DVC, told that
    outputs kept in git persist, leaves each of them as it was."""
    bare = tmp_path / "bare-python"
    bare.mkdir()
    (bare / "python").symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    committed = reproduced.run("git", "ls-files", "-z").stdout.split("\0")
    before = {name: file_md5(reproduced.root / name) for name in committed if name}
    path = reproduced.env["PATH"]
    reproduced.env["PATH"] = f"{bare}:{path}"
    try:
        for stage in ("ingest", "validate", "split", "train", "evaluate"):
            failed = reproduced.run("dvc", "repro", "--force", "--single-item", stage, check=False)
            assert "ModuleNotFoundError: No module named" in failed.stderr, (stage, failed.stderr)
        after = {name: file_md5(reproduced.root / name) for name in before}
        assert after == before
    finally:
        reproduced.env["PATH"] = path
        reproduced.run("dvc", "checkout", "--force")  # the DVC-cached outputs the runs removed


def test_an_identical_retrain_still_packages_the_version_registered_from_that_model(reproduced):
    """Training again gives the very same model file (results are reproducible), so DVC
    skips evaluate and register; package must find the version an earlier run of that
    file registered, not look for one from the newest run."""
    before = reproduced.read_json("models/bento.json")["version"]
    retrained = reproduced.run("dvc", "repro", "--force", "--single-item", "train")
    assert "Running stage 'train'" in retrained.stdout
    reproduced.run("dvc", "repro", "--force", "--single-item", "package")
    assert reproduced.read_json("models/bento.json")["version"] == before
    assert ran_stages(reproduced.run("dvc", "repro").stdout) == set()


def test_experiment_with_a_train_param_reruns_only_what_depends_on_it(reproduced):
    reproduced.commit("baseline run")
    run = reproduced.run(
        "dvc", "exp", "run", "-n", "shallow-xgb", "-S", "train.candidates.xgboost.max_depth=2"
    )
    ran = {s for s in STAGES if f"Running stage '{s}'" in run.stdout}
    assert ran == {"train", "evaluate", "register"}, run.stdout
    shown = json.loads(reproduced.run("dvc", "exp", "show", "--json").stdout)
    assert "shallow-xgb" in json.dumps(shown)
    diff = reproduced.run("dvc", "params", "diff").stdout
    assert "train.candidates.xgboost.max_depth" in diff


def test_tuned_experiment_reports_nested_scores_and_logs_every_trial(reproduced):
    run = reproduced.run(
        "dvc",
        "exp",
        "run",
        "-n",
        "tuned",
        "-S",
        "train.tuning.enabled=true",
        "-S",
        "train.tuning.trials=2",
        "-S",
        "train.tuning.inner_folds=2",
        timeout=900,
    )
    assert "Running stage 'train'" in run.stdout
    cv = reproduced.read_json("metrics/cv.json")
    assert cv["trials"] == 2 and "search_best_pr_auc" in cv
    assert all("search_best_pr_auc" in c for c in cv["candidates"].values())
    client = MlflowClient(tracking_uri=f"sqlite:///{reproduced.root}/mlflow.db")
    experiment = client.get_experiment_by_name("mlops-starter")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    train_run = max(
        (r for r in runs.values() if r.info.run_name == "train"), key=lambda r: r.info.start_time
    )
    trials = [r for r in runs.values() if "trial" in r.data.tags]
    folds = yaml.safe_load((reproduced.root / "params.yaml").read_text())["train"]["cv_folds"]
    # Per candidate: 2 trials in each outer fold; and 2 more for the winner's refit.
    assert len(trials) == 3 * folds * 2 + 2
    for trial in trials:
        parent = runs[trial.data.tags["mlflow.parentRunId"]]
        grandparent = parent.data.tags.get("mlflow.parentRunId", parent.info.run_id)
        assert grandparent == train_run.info.run_id
        assert trial.data.params and "inner_cv_score" in trial.data.metrics
    card = (reproduced.root / "reports/model_card.md").read_text()
    assert "tuned (2 trials per search, nested CV)" in card
    assert (reproduced.root / "optuna.db").is_file()


def test_a_gate_bar_on_the_worst_slice_fails_a_model_weak_on_one_slice(reproduced):
    reproduced.run("dvc", "exp", "run", "-n", "slice-bar", "-S", "gate.min_worst_slice=0.99")
    gate = reproduced.read_json("reports/gate.json")
    check = next(c for c in gate["checks"] if c["name"] == "min_worst_slice_roc_auc")
    assert not check["passed"] and not gate["passed"]
    assert "worst slice:" in check["detail"]
