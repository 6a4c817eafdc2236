"""scale.mode streaming and dask through the real DAG: `dvc repro` in tiny batches, so every
stage reads several, and the same registry, bento and scorer at the end."""

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e

BATCHES = {
    "scale": {"mode": "streaming", "batch_rows": 500, "sample_rows": 1500},
    "train": {"cv_folds": 2, "candidates": {"xgboost": {"n_estimators": 40}}},
}


@pytest.fixture(scope="module")
def streamed(repo_copy):
    copy = repo_copy(BATCHES)
    copy.run("dvc", "repro", timeout=900)
    return copy


def test_every_stage_runs_in_batches_to_a_gated_bento(streamed):
    assert pq.ParquetFile(streamed.root / "data/split/train.parquet").num_row_groups > 3
    assert streamed.read_json("reports/validation.json")["success"]
    assert streamed.read_json("reports/leakage.json")["scale_mode"] == "streaming"
    info = streamed.read_json("models/model.json")
    assert info["winner"] == "xgboost" and info["scale"]["mode"] == "streaming"
    assert info["scale"]["sample_rows"] == 1500  # preprocessing fitted on the sample
    assert info["train_rows"] > 1500
    cv = streamed.read_json("metrics/cv.json")
    assert set(cv["skipped"]) == {"logistic_regression", "random_forest"}
    test = streamed.read_json("metrics/test.json")
    assert test["roc_auc"] > 0.7 and test["rows"] > 500
    assert streamed.read_json("reports/slices.json")["sampled_rows"] <= 1500
    bento = streamed.read_json("models/bento.json")
    # the registered model is the same skops pipeline: the compiled scorer takes it
    assert bento["built"] and bento["scorer"]["kind"] == "compiled"


def test_dask_mode_trains_on_a_local_cluster(streamed):
    streamed.set_params({"scale": {"mode": "dask"}})
    # validate and split do the same in both modes: train alone reruns
    done = streamed.run("dvc", "repro", "--single-item", "train", timeout=900)
    assert "LocalCluster" in done.stderr + done.stdout
    info = streamed.read_json("models/model.json")
    assert info["scale"]["mode"] == "dask"
    assert streamed.read_json("metrics/cv.json")["cv_roc_auc"] > 0.7
