"""The ingest stage: any table source (data/sources.py) streamed into one Parquet file,
its cells made what the pipeline expects: missing-value markers as missing, integer
codes listed as categorical as text, booleans as 0/1, the time column as timestamps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_starter.config import DataConfig
from mlops_starter.data.sources import open_table, pipeline_columns, refuse_missing_columns
from mlops_starter.errors import DataError
from mlops_starter.storage import atomic_path
from mlops_starter.tasks import resolve_task


def missing_markers(column: pd.Series, na_values: list[str]) -> pd.Series:
    """Where a text column holds one of `na_values` (spaces around it ignored): the
    markers that ingest, and `mlops score` after it, read as missing."""
    if column.dtype != object and not pd.api.types.is_string_dtype(column):
        return pd.Series(False, index=column.index)
    return column.astype("string").str.strip().isin(na_values).fillna(False).astype(bool)


def _as_category_text(column: pd.Series) -> pd.Series:
    """Integer codes as text ("3", not "3.0" where a gap made the column float); null stays null."""
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype("string").astype(object).where(column.notna(), None)


# The largest magnitude a model computes with (XGBoost and the service work in float32).
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _refuse_beyond_float32(column: pd.Series, name: str, first_row: int) -> None:
    """Stop on numbers no model can hold (±inf included): they overflow scaling and
    become infinities in XGBoost, far from the error that would name them."""
    if not pd.api.types.is_float_dtype(column):
        return
    values = column.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        beyond = np.abs(values) > FLOAT32_MAX
    if beyond.any():
        rows = np.flatnonzero(beyond)
        shown = ", ".join(f"{values[r]:g} at row {r + first_row + 1}" for r in rows[:5])
        raise DataError(
            f"column '{name}' holds {len(rows)} value(s) beyond ±{FLOAT32_MAX:.3g}, the float32 "
            f"range the models compute in: {shown}{' ...' if len(rows) > 5 else ''} (rows count "
            "data rows from 1). Set them missing or rescale the column (e.g. a log)"
        )


# A text column counts as numbers with a few bad cells (and stops ingest) when at least
# this share of its non-missing values are numbers; below it, it is text.
NEARLY_ALL_NUMBERS = 0.9


def _markers_as_missing(
    column: pd.Series, name: str, na_values: list[str], first_row: int, as_text: bool
) -> pd.Series:
    """A text column with `na_values` as missing. If every other value is a number, the
    column is numeric (the markers and their counts are logged). If nearly every one is,
    the others are bad cells: stop, naming them, their counts and their first rows."""
    if column.dtype != object and not pd.api.types.is_string_dtype(column):
        return column
    text = column.astype("string").str.strip()
    marker = missing_markers(column, na_values)
    column = column.where(~marker, None)
    present = text.notna() & ~marker
    if as_text or not present.any():
        return column
    numbers = pd.to_numeric(text.where(present), errors="coerce")
    bad = present & numbers.isna()
    if not bad.any():
        if counts := text[marker].value_counts().to_dict():
            logging.getLogger("ingest").info(
                "column '%s' holds numbers with missing-value markers %s: read as numeric, "
                "the markers as missing (data.na_values)",
                name,
                ", ".join(f"{m!r} x{n}" for m, n in counts.items()),
            )
        return numbers.astype("float64")
    if bad.sum() <= (1 - NEARLY_ALL_NUMBERS) * present.sum():
        rows = np.flatnonzero(bad.to_numpy()) + first_row + 1
        found = text[bad].value_counts()
        listed = ", ".join(
            f"{value!r} x{count} (first at row {rows[text[bad].to_numpy() == value][0]})"
            for value, count in found.head(5).items()
        )
        raise DataError(
            f"column '{name}' holds numbers, but {int(bad.sum())} of the {int(present.sum())} "
            f"values in rows {first_row + 1}-{first_row + len(column)} are not: {listed}"
            f"{' ...' if len(found) > 5 else ''} (rows count data rows from 1). Add those "
            "that mean missing to data.na_values, correct the others, or list the column in "
            "data.categorical_columns to treat it as text"
        )
    return column


def _prepare_batch(
    batch: pd.DataFrame,
    required: list[str],
    drop: list[str],
    time_column: str | None,
    categorical: list[str] = (),  # type: ignore[assignment]
    na_values: list[str] = (),  # type: ignore[assignment]
    first_row: int = 0,
) -> pd.DataFrame:
    refuse_missing_columns(required, list(batch.columns), "the table")
    batch = batch.drop(columns=[c for c in drop if c in batch.columns])
    for column in batch.columns:
        if column not in required:
            batch[column] = _markers_as_missing(
                batch[column], column, list(na_values), first_row, as_text=column in categorical
            )
            _refuse_beyond_float32(batch[column], column, first_row)
    for column in categorical:
        if column in batch.columns:
            batch[column] = _as_category_text(batch[column])
    for column in batch.columns:
        if column not in required and _is_boolean(batch[column]):
            # Booleans become 0/1 numbers (null stays null): one numeric treatment for the
            # pipeline, validation and the service, whichever way the file spelled them.
            batch[column] = batch[column].astype("float64")
    if time_column:
        batch[time_column] = _as_timestamps(batch[time_column], time_column, first_row)
    return batch


def _as_timestamps(column: pd.Series, name: str, first_row: int) -> pd.Series:
    """The time column as timestamps: one format throughout, or any ISO 8601 forms mixed
    (a table appended to by another tool writes `2024-01-01` beside `2024-01-01 08:30:00`);
    else stop, naming the first values that are no time and their rows."""
    try:
        return pd.to_datetime(column)
    except (ValueError, TypeError):
        pass
    parsed = pd.to_datetime(column, format="ISO8601", errors="coerce")
    bad = column.notna() & parsed.isna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:3]
        shown = ", ".join(f"{column.iloc[r]!r} at row {r + first_row + 1}" for r in rows)
        raise DataError(
            f"column '{name}' (data.time_column) is not a timestamp: {int(bad.sum())} values "
            f"are no ISO 8601 time, e.g. {shown} (rows count data rows from 1)"
        )
    return parsed


def _is_boolean(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column):
        return True
    present = column.dropna()
    return (
        column.dtype == object
        and len(present) > 0
        and all(isinstance(v, (bool, np.bool_)) for v in present)
    )


def write_batches_to_parquet(
    batches: Iterable[pd.DataFrame],
    target: str | Path,
    required: list[str],
    drop: list[str] = (),  # type: ignore[assignment]
    time_column: str | None = None,
    categorical: list[str] = (),  # type: ignore[assignment]
    na_values: list[str] = (),  # type: ignore[assignment]
    before_commit: Callable[[Path], None] = lambda written: None,
) -> int:
    """Stream batches into one Parquet file (atomically); return the row count.

    Every batch is cast to the first batch's schema, so a column whose type
    changes half-way through a file is reported by name instead of corrupting it.
    `before_commit` sees the whole written file before it replaces `target`: what it
    raises leaves the old file in place.
    """
    rows = 0
    with atomic_path(target) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for batch in batches:
                batch = _prepare_batch(
                    batch, required, list(drop), time_column, list(categorical), na_values, rows
                )
                table = pa.Table.from_pandas(batch, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                else:
                    table = _cast_like(table, writer.schema)
                writer.write_table(table)
                rows += len(batch)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise DataError("the table has no rows and no header")
        before_commit(Path(tmp))
    return rows


def _cast_like(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.names != schema.names:
        raise DataError(f"columns changed between batches: {table.schema.names} vs {schema.names}")
    columns = []
    for name, field in zip(schema.names, schema, strict=True):
        column = table.column(name)
        try:
            columns.append(column.cast(field.type) if column.type != field.type else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"column '{name}' changes type from {field.type} to {column.type} part-way through the "
                "file; fix the column or raise data.read_chunk_rows so its type is inferred from more rows"
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def ingest(data: DataConfig, target: str | Path) -> int:
    """The ingest stage: the table data.source names, streamed into `target`.

    It writes as it reads (never the whole table in memory) and returns the row count.
    A database returns rows in no order of its own, and the split depends on the order:
    rows are read by data.id_column (by every column when there is none), for the same
    split on every run and machine.
    """
    table = open_table(data.source, data)
    columns = pipeline_columns(data, table)
    order = [data.id_column] if data.id_column else columns
    required = [c for c in (data.target, data.id_column, data.time_column) if c]

    def announce_task(written: Path) -> None:
        task = resolve_task(data, str(written))
        logging.getLogger("ingest").info(
            "task: %s, for target '%s': %s", task.name, data.target, task.reason
        )

    return write_batches_to_parquet(
        table.batches(columns, data.read_chunk_rows, order),
        target,
        required,
        data.drop_columns,
        data.time_column,
        data.categorical_columns,
        data.na_values,
        announce_task,
    )


def fingerprint(data: DataConfig) -> dict[str, object]:
    """What tells DVC that the rows ingest would read changed (the fingerprint stage's
    output): only a source DVC cannot hash itself, such as a database table, has one."""
    table = open_table(data.source, data)
    found = table.fingerprint(pipeline_columns(data, table), data.read_chunk_rows)
    if found is None:
        raise DataError(
            f"data.source {table.label()} is hashed by DVC itself and has no fingerprint: "
            "set data.recheck_source: []"
        )
    return found
