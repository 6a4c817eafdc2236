"""Batch-by-batch validation gives the in-memory report, verdicts and samples alike."""

import numpy as np
import pandas as pd
import pytest

from mlops_starter.config import Config
from mlops_starter.errors import ConfigError
from mlops_starter.validation.run import run_suite
from mlops_starter.validation.validate import table_expectations
from mlops_starter.validation.validate_streaming import validate_batches


@pytest.fixture(scope="module")
def expectations(demo_frame, tmp_path_factory):
    """The demo's checks, read off a raw table of its own: the task and the row count come
    from the file, and a fresh clone has none until `dvc repro` runs ingest."""
    raw = tmp_path_factory.mktemp("raw") / "table.parquet"
    demo_frame.to_parquet(raw, index=False)
    cfg = Config.from_yaml()
    return table_expectations(
        cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"raw": str(raw)})})
    )


def faulty(frame: pd.DataFrame) -> pd.DataFrame:
    """Repeated ids across batches, gaps, out-of-range and unknown values."""
    bad = frame.head(3000).copy()
    bad.loc[[5, 900, 2500], "customer_id"] = bad.loc[[7, 901, 12], "customer_id"].to_numpy()
    bad.loc[[10, 1200, 2950], "age"] = np.nan
    bad.loc[[3, 1500, 2999], "age"] = -40
    bad.loc[[44, 2000], "plan"] = "platinum"
    return bad


@pytest.mark.parametrize("batch_rows", [700, 3000])
def test_batches_give_the_in_memory_report(demo_frame, expectations, tmp_path, batch_rows):
    table = faulty(demo_frame)
    path = tmp_path / "raw.parquet"
    table.to_parquet(path, index=False)
    whole = run_suite(pd.read_parquet(path), expectations).to_dict()
    batched = validate_batches(path, expectations, batch_rows).to_dict()
    assert batched == whole
    assert not whole["success"]


def test_positive_rate_band_merges_by_totals(demo_frame, expectations, tmp_path):
    """`mostly` applies to the whole table: each batch alone would pass or fail differently."""
    table = demo_frame.head(2000).copy()
    table = table.sort_values("churned", ascending=False, kind="stable")  # positives first
    table.loc[table.index[:600], "churned"] = "yes"
    path = tmp_path / "raw.parquet"
    table.to_parquet(path, index=False)
    whole = run_suite(pd.read_parquet(path), expectations)
    batched = validate_batches(path, expectations, 250)
    assert batched.to_dict() == whole.to_dict()
    assert any("positive rate" in f for f in whole.failures)


def test_an_expectation_without_an_exact_merge_is_refused_by_name(demo_frame, tmp_path):
    path = tmp_path / "raw.parquet"
    demo_frame.head(100).to_parquet(path, index=False)
    mean_check = {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "age", "min_value": 0, "max_value": 100},
        "meta": {},
    }
    with pytest.raises(ConfigError, match="expect_column_mean_to_be_between"):
        validate_batches(path, [mean_check], 10)
