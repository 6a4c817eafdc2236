"""Streaming split and train on small tables in tiny batches (several per stage), with the
in-memory mode as the oracle where both exist."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import stage_config, write_raw
from sklearn.metrics import roc_auc_score

from mlops_starter.config import Config
from mlops_starter.data.batches import (
    FOLD_SALT,
    SPLIT_SALT,
    BottomSample,
    stable_hash,
    unit_interval,
)
from mlops_starter.data.demo import generate_demo_table
from mlops_starter.data.schema import FeatureSchema, target_of
from mlops_starter.errors import DataError, LeakageError
from mlops_starter.training.split import split_table
from mlops_starter.training.train_streaming import train_streaming, xgboost_pipeline


def streaming_config(tmp_path, **changes) -> Config:
    """params.yaml's settings with paths under tmp_path, streaming in batches of 700."""
    return stage_config(tmp_path, "streaming", **changes)


@pytest.fixture
def mlflow_here(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")


def test_numeric_rows_get_independent_hashes_per_salt():
    """pandas ignores its hash key for numbers: the split and the folds must still differ."""
    numbers = pd.DataFrame({"x": np.arange(20_000) % 97, "y": np.arange(20_000) * 0.5})
    split = unit_interval(stable_hash(numbers, 42, SPLIT_SALT)) < 0.2
    fold = unit_interval(stable_hash(numbers, 42, FOLD_SALT)) < 0.2
    assert abs((split & fold).mean() - 0.04) < 0.01  # independent: 0.2 x 0.2
    assert not np.array_equal(stable_hash(numbers, 1, 1), stable_hash(numbers, 2, 1))


def test_bottom_sample_does_not_depend_on_batches(demo_frame):
    keys = unit_interval(stable_hash(demo_frame, 0, 3))

    def sample(batch: int) -> pd.DataFrame:
        kept = BottomSample(500)
        for start in range(0, len(demo_frame), batch):
            rows = slice(start, start + batch)
            kept.add(demo_frame.iloc[rows], keys[rows], np.arange(len(demo_frame))[rows])
        return kept.frame()

    whole = sample(len(demo_frame))
    pd.testing.assert_frame_equal(sample(97), whole)
    assert len(whole) == 500
    # the union of two halves' samples is the sample of the whole
    half = len(demo_frame) // 2
    first, second = BottomSample(500), BottomSample(500)
    first.add(demo_frame.iloc[:half], keys[:half], np.arange(half))
    second.add(demo_frame.iloc[half:], keys[half:], np.arange(half, len(demo_frame)))
    pd.testing.assert_frame_equal(first.merged_with([second]).frame(), whole)


def test_streaming_split_keeps_duplicates_together_in_row_groups(tmp_path):
    cfg = streaming_config(tmp_path)
    table = generate_demo_table(4000, seed=3)
    copies = table.iloc[:300].copy()
    copies["customer_id"] = [f"copy-{i}" for i in range(300)]  # same features, other ids
    write_raw(cfg, pd.concat([table, copies], ignore_index=True))
    split_table(cfg)
    train, test = pd.read_parquet(cfg.paths.train), pd.read_parquet(cfg.paths.test)
    assert len(train) + len(test) == 4300
    assert pq.ParquetFile(cfg.paths.train).num_row_groups > 3  # written batch by batch
    features = [c for c in table.columns if c not in cfg.non_feature_columns]
    shared = set(pd.util.hash_pandas_object(train[features], index=False)) & set(
        pd.util.hash_pandas_object(test[features], index=False)
    )
    assert not shared
    report = json.loads((tmp_path / "reports" / "leakage.json").read_text())
    assert report["passed"] and report["duplicates"]["duplicate_groups"] == 300
    # stratified in expectation: each class goes to test at about test_size
    assert abs(len(test) / 4300 - cfg.split.test_size) < 0.03


def test_streaming_split_writes_nothing_when_the_audit_fails(tmp_path):
    cfg = streaming_config(tmp_path)
    table = generate_demo_table(3000, seed=4)
    table["closure_code"] = np.where(table["churned"] == "yes", "C-17", "none")
    write_raw(cfg, table)
    with pytest.raises(LeakageError, match="closure_code"):
        split_table(cfg)
    assert not (tmp_path / cfg.paths.train).exists()
    report = json.loads((tmp_path / "reports" / "leakage.json").read_text())
    assert not report["passed"]


def test_streaming_time_split_puts_test_strictly_later(tmp_path):
    cfg = streaming_config(tmp_path, split={"strategy": "time"})
    write_raw(cfg, generate_demo_table(3000, seed=5))
    split_table(cfg)
    train, test = pd.read_parquet(cfg.paths.train), pd.read_parquet(cfg.paths.test)
    assert train["signup_date"].max() < test["signup_date"].min()


def test_streaming_audit_counts_shared_ids_rows_and_duplicates_as_in_memory(tmp_path):
    cfg = streaming_config(tmp_path, split={"strategy": "time"})
    table = generate_demo_table(3000, seed=6)
    copies = table.sort_values("signup_date").head(30).copy()  # early rows again, late
    copies["signup_date"] = table["signup_date"].max() + pd.Timedelta(days=1)
    copies["customer_id"] = [f"new-{i}" for i in range(20)] + list(copies["customer_id"][20:])
    twice = copies.tail(1).copy()
    twice["churned"] = np.where(twice["churned"] == "yes", "no", "yes")  # a label conflict too
    write_raw(cfg, pd.concat([table, copies, twice], ignore_index=True))
    whole = stage_config(tmp_path, split={"strategy": "time"})
    reports = []
    for each in (whole, cfg):
        with pytest.raises(LeakageError, match="shared_feature_rows"):
            split_table(each)
        reports.append(json.loads((tmp_path / "reports" / "leakage.json").read_text()))
    in_memory, streamed = reports

    def values(report):
        return {
            c["check"]: c["value"] for c in report["checks"] if c["check"] != "target_leak_suspects"
        }

    assert values(streamed) == values(in_memory)
    assert values(streamed)["id_overlap"] == 10 and values(streamed)["shared_feature_rows"] == 31
    assert streamed["duplicates"] == in_memory["duplicates"]
    assert streamed["duplicates"]["groups_with_conflicting_labels"] >= 1


def test_streaming_train_matches_in_memory_pipeline(tmp_path, mlflow_here):
    cfg = streaming_config(tmp_path)
    write_raw(cfg, generate_demo_table(3000, seed=6))
    split_table(cfg)
    outcome = train_streaming(cfg)
    test = pd.read_parquet(cfg.paths.test)
    y = target_of(test, cfg.data)
    streamed = roc_auc_score(y, outcome.model.predict_proba(test)[:, 1])
    # the oracle: the same pipeline fitted in memory on the same training rows
    train = pd.read_parquet(cfg.paths.train)
    schema = FeatureSchema(**outcome.model_info["feature_schema"])
    oracle = xgboost_pipeline(cfg, schema).fit(train[schema.columns], target_of(train, cfg.data))
    in_memory = roc_auc_score(y, oracle.predict_proba(test)[:, 1])
    assert abs(streamed - in_memory) < 0.01
    assert outcome.model_info["scale"]["mode"] == "streaming"
    assert set(outcome.cv_metrics["skipped"]) == {"logistic_regression", "random_forest"}
    assert outcome.cv_metrics["cv_roc_auc"] > 0.7


def test_the_booster_reads_its_external_memory_pages_through_a_memory_map(
    tmp_path, mlflow_here, monkeypatch
):
    """docs/interview-questions.md (question 1) says the streaming booster maps its pages
    into memory (XGBoost 2.0 and later on the CPU): while it trains, the quantised page
    in the scratch folder is in this process's memory map."""
    import xgboost

    mapped: set[str] = set()

    class LookAtTheMap(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            lines = Path("/proc/self/maps").read_text().splitlines()
            mapped.update(line.split()[-1] for line in lines if "xgb-pages-" in line)
            return False

    train = xgboost.train
    monkeypatch.setattr(
        xgboost, "train", lambda *args, **kwargs: train(*args, **kwargs, callbacks=[LookAtTheMap()])
    )
    cfg = streaming_config(tmp_path, train={"cv_folds": 2})
    write_raw(cfg, generate_demo_table(2000, seed=6))
    split_table(cfg)
    train_streaming(cfg)
    assert mapped and all(path.endswith(".gradient_index.page") for path in mapped), mapped


def test_streaming_cv_scores_shuffled_labels_at_chance(tmp_path, mlflow_here):
    """The leak-free guarantee: with per-fold statistics and hash folds, labels that carry
    no signal score at chance out of fold."""
    cfg = streaming_config(tmp_path, train={"calibration": "none"})
    table = generate_demo_table(3000, seed=8)
    table["churned"] = np.random.default_rng(0).permutation(table["churned"].to_numpy())
    write_raw(cfg, table)
    split_table(cfg)
    outcome = train_streaming(cfg)
    assert abs(outcome.cv_metrics["cv_roc_auc"] - 0.5) < 0.05


@pytest.mark.parametrize(("years", "test_size"), [(7, 0.2), (5, 0.3)])
def test_streaming_time_split_on_a_coarse_time_column_trains(
    tmp_path, mlflow_here, years, test_size
):
    """A survey with a few distinct years: every time-ordered block holds rows, and with
    fewer distinct times there are fewer folds, not an empty one."""
    cfg = streaming_config(
        tmp_path, split={"strategy": "time", "test_size": test_size}, train={"cv_folds": 5}
    )
    table = generate_demo_table(3000, seed=9)
    table["signup_date"] = pd.to_datetime(
        [f"{2000 + year}-01-01" for year in np.arange(3000) * years // 3000]
    )
    write_raw(cfg, table)
    split_table(cfg)
    outcome = train_streaming(cfg)
    assert 0 < outcome.cv_metrics["cv_roc_auc"] < 1


def test_streaming_time_split_with_one_time_value_names_the_setting(tmp_path, mlflow_here):
    cfg = streaming_config(tmp_path, split={"strategy": "time"})
    table = generate_demo_table(3000, seed=9)
    write_raw(cfg, table)
    split_table(cfg)
    train = pd.read_parquet(cfg.paths.train).assign(signup_date=pd.Timestamp("2020-01-01"))
    train.to_parquet(cfg.paths.train, index=False)
    with pytest.raises(DataError, match=r"data\.time_column\) has a single value"):
        train_streaming(cfg)
