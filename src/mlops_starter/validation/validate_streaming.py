"""The validate stage for tables past memory: the same expectations, run by GX batch by
batch and merged into the verdicts and offending-value samples the whole table would give.

Row-wise expectations (not null, between, in set, not in set) merge by their counts, with
`mostly` applied to the totals and samples taken in table order. Expectations about the
whole table (row count, distinct values, unique ids) are computed over every batch here.
Column existence and type come from the file's schema, the same in every batch. Any
other expectation is refused by name: its merge is not known to be exact.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from mlops_starter.data.batches import iter_parquet, parquet_columns, parquet_rows, stable_hash
from mlops_starter.errors import ConfigError
from mlops_starter.validation.run import (
    RawResult,
    SuiteRunner,
    ValidationReport,
    make_check,
    runnable_on,
)

ROW_WISE = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
}
FROM_SCHEMA = {"expect_column_to_exist", "expect_column_values_to_be_in_type_list"}
WHOLE_TABLE = {
    "expect_table_row_count_to_be_between",
    "expect_column_unique_value_count_to_be_between",
    "expect_column_values_to_be_unique",
}
PARTIAL_LIST = 20  # what GX keeps of the offending values in its SUMMARY format


def _within(value: float, kwargs: dict[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    return (low is None or value >= low) and (high is None or value <= high)


class _RowWise:
    """Counts and the first offending values of one row-wise expectation, over batches."""

    def __init__(self) -> None:
        self.elements = self.missing = self.unexpected = 0
        self.values: list[Any] = []
        self.error: str | None = None

    def add(self, raw: RawResult) -> None:
        _, result, error = raw
        self.error = self.error or error
        self.elements += result.get("element_count", 0)
        self.missing += result.get("missing_count", 0)
        self.unexpected += result.get("unexpected_count", 0)
        if len(self.values) < PARTIAL_LIST:
            self.values += result.get("partial_unexpected_list", [])[
                : PARTIAL_LIST - len(self.values)
            ]

    def result(self, expectation: dict[str, Any]) -> RawResult:
        # GX counts nulls as missing, not offending, except in the not-null check itself.
        counted = (
            self.elements
            if expectation["type"] == "expect_column_values_to_not_be_null"
            else self.elements - self.missing
        )
        share = self.unexpected / counted if counted else 0.0
        success = 1 - share >= expectation["kwargs"].get("mostly", 1.0)
        merged = {
            "unexpected_count": self.unexpected,
            "unexpected_percent": 100 * share,
            "partial_unexpected_list": self.values,
        }
        return success, merged, self.error


def _whole_table(expectation: dict[str, Any], path: Path, batch_rows: int) -> RawResult:
    kind, kwargs = expectation["type"], expectation["kwargs"]
    if kind == "expect_table_row_count_to_be_between":
        rows = parquet_rows(path)  # from the file's footer: no pass over the data
        return _within(rows, kwargs), {"observed_value": rows}, None
    column = kwargs["column"]
    if kind == "expect_column_unique_value_count_to_be_between":
        distinct: set[Any] = set()
        for frame in iter_parquet(path, batch_rows, [column]):
            distinct.update(frame[column].dropna().unique())
        return _within(len(distinct), kwargs), {"observed_value": len(distinct)}, None
    # expect_column_values_to_be_unique: hashes of every value (8 bytes a row) find the
    # repeated ones; a second pass over the column alone collects them in table order.
    hashes = np.concatenate(
        [
            stable_hash(frame[[column]].dropna(), 0, 0)
            for frame in iter_parquet(path, batch_rows, [column])
        ]
    )
    unique, counts = np.unique(hashes, return_counts=True)
    repeated = unique[counts > 1]
    offending: list[Any] = []
    if len(repeated):
        for frame in iter_parquet(path, batch_rows, [column]):
            present = frame[[column]].dropna()
            hit = np.isin(stable_hash(present, 0, 0), repeated)
            offending += present[column][hit].tolist()[: PARTIAL_LIST - len(offending)]
            if len(offending) >= PARTIAL_LIST:
                break
    unexpected = int(counts[counts > 1].sum())
    result = {
        "unexpected_count": unexpected,
        "unexpected_percent": 100 * unexpected / len(hashes) if len(hashes) else 0.0,
        "partial_unexpected_list": offending,
    }
    return unexpected == 0, result, None


def validate_batches(
    path: str | Path, expectations: list[dict[str, Any]], batch_rows: int
) -> ValidationReport:
    """The report `run_suite` gives on the whole table at `path`, from batches of `batch_rows`."""
    path = Path(path)
    runnable = runnable_on(expectations, parquet_columns(path))
    if unknown := sorted({e["type"] for e in runnable} - ROW_WISE - FROM_SCHEMA - WHOLE_TABLE):
        raise ConfigError(
            f"validate.suite: {unknown} cannot be checked batch by batch (scale.mode streaming "
            "or dask); remove them from the suite or use scale.mode: in_memory"
        )
    per_batch = [i for i, e in enumerate(runnable) if e["type"] in ROW_WISE | FROM_SCHEMA]
    runner = SuiteRunner([runnable[i] for i in per_batch])
    merged = {i: _RowWise() for i in per_batch if runnable[i]["type"] in ROW_WISE}
    first: dict[int, RawResult] = {}
    empty = pq.ParquetFile(path).schema_arrow.empty_table().to_pandas()
    for frame in itertools.chain(
        iter_parquet(path, batch_rows), [] if parquet_rows(path) else [empty]
    ):
        for local, raw in runner.run(frame).items():
            index = per_batch[local]
            if index in merged:
                merged[index].add(raw)
            else:
                first.setdefault(index, raw)
    results = {i: row_wise.result(runnable[i]) for i, row_wise in merged.items()} | first
    for i, expectation in enumerate(runnable):
        if expectation["type"] in WHOLE_TABLE:
            results[i] = _whole_table(expectation, path, batch_rows)
    checks = [make_check(e, *results[i]) for i, e in enumerate(runnable)]
    return ValidationReport(
        success=all(c["success"] for c in checks),
        checks=checks,
        skipped=len(expectations) - len(runnable),
    )
