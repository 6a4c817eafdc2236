"""The same params.yaml gives the same split and the same CV folds in every scale.mode:
one placement rule (training/placement.py) looks at each row alone, so a table read as
one batch (in memory) or in many (streaming, dask) is placed identically. Checked on
the demo and on generated tables, in every split strategy, in batches of odd sizes."""

import numpy as np
import pandas as pd
import pytest
from conftest import stage_config, write_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_starter.data.batches import iter_parquet
from mlops_starter.data.demo import generate_demo_table
from mlops_starter.data.schema import target_of
from mlops_starter.errors import PipelineError
from mlops_starter.training.cv import cv_folds
from mlops_starter.training.placement import RowPlaces, block_folds
from mlops_starter.training.split import split_table
from mlops_starter.training.train_streaming import RowBlocks

MODES = ("in_memory", "streaming", "dask")
STRATEGIES = {
    "stratified": {},
    "time": {"strategy": "time"},
    "group": {"strategy": "group", "group_column": "region"},
}


def placed(tmp_path, table: pd.DataFrame, mode: str, strategy: str, batch_rows: int, data=None):
    """(train, test, validation rows of each fold) as `mode` makes them, or the error."""
    cfg = stage_config(
        tmp_path / mode,
        mode,
        split=STRATEGIES[strategy],
        scale={"batch_rows": batch_rows},
        train={"cv_folds": 3},
        **({"data": data} if data else {}),
    )
    write_raw(cfg, table)
    try:
        split_table(cfg)
    except PipelineError as stopped:
        return str(stopped)
    train, test = pd.read_parquet(cfg.paths.train), pd.read_parquet(cfg.paths.test)
    if mode == "in_memory":
        try:
            folds = cv_folds(
                target_of(train, cfg.data), 3, cfg.train.seed, strategy, RowPlaces.of(train, cfg)
            )
        except PipelineError as stopped:
            return train, test, str(stopped)
        valid = [sorted(rows) for _, rows in folds]
    else:  # the batch trainers' blocks, batch by batch
        blocks = RowBlocks(cfg)
        of_rows = np.concatenate(
            [blocks.of(frame) for frame in iter_parquet(cfg.paths.train, batch_rows)]
        )
        folds = block_folds(blocks.count, strategy == "time")
        valid = [sorted(np.flatnonzero(of_rows == block)) for _, block in folds]
    return train, test, valid


def assert_same_everywhere(tmp_path, table, strategy, batch_rows, data=None):
    outcomes = {m: placed(tmp_path, table, m, strategy, batch_rows, data) for m in MODES}
    reference = outcomes["in_memory"]
    for mode, outcome in outcomes.items():
        if isinstance(reference, str) or isinstance(outcome, str):
            assert outcome == reference, mode  # the same error in every mode
            continue
        pd.testing.assert_frame_equal(outcome[0], reference[0])
        pd.testing.assert_frame_equal(outcome[1], reference[1])
        if isinstance(reference[2], str):  # in memory refused the folds, naming the fold
            continue
        assert outcome[2] == reference[2], mode
    return reference


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_demo_is_split_and_folded_alike_in_every_mode(tmp_path, strategy):
    table = generate_demo_table(3000, seed=21)
    train, test, valid = assert_same_everywhere(tmp_path, table, strategy, batch_rows=217)
    assert len(train) + len(test) == 3000 and len(valid) == 3 and all(valid)


@st.composite
def generated_tables(draw) -> pd.DataFrame:
    """Tables of the kind that make placement hard: repeated rows, missing values, coarse
    times with ties, few groups, rare positives."""
    rows = draw(st.integers(60, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    distinct = draw(st.sampled_from([3, 20, rows]))  # many repeated feature rows, or none
    codes = rng.integers(0, distinct, rows)
    numbers = rng.normal(0, 1, distinct)[codes]
    numbers[rng.random(rows) < 0.1] = np.nan
    days = draw(st.sampled_from([4, 30, 700]))
    return pd.DataFrame(
        {
            "amount": numbers,
            "plan": np.array(["a", "b", "c", None], dtype=object)[codes % 4],
            "region": [f"R{g}" for g in rng.integers(0, draw(st.integers(3, 12)), rows)],
            "signup_date": pd.Timestamp("2022-01-01")
            + pd.to_timedelta(rng.integers(0, days, rows), "D"),
            "churned": np.where(rng.random(rows) < draw(st.floats(0.05, 0.5)), "yes", "no"),
        }
    )


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=generated_tables(), strategy=st.sampled_from(list(STRATEGIES)))
def test_generated_tables_are_split_and_folded_alike_in_every_mode(tmp_path, table, strategy):
    data = {"id_column": None, "categorical_columns": []}
    assert_same_everywhere(tmp_path, table, strategy, batch_rows=37, data=data)
