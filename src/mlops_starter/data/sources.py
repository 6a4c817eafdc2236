"""Reading a user's CSV/Parquet file or database table in batches, and streaming the
batches into one Parquet file."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_starter.config import CsvConfig, DatabaseSource, DataConfig
from mlops_starter.data.batches import open_parquet
from mlops_starter.data.csv_format import SEPARATORS, sniff_csv
from mlops_starter.data.database import iter_database_batches
from mlops_starter.data.demo import generate_demo_table
from mlops_starter.errors import DataError
from mlops_starter.storage import atomic_path


def iter_table_batches(
    path: str | Path, chunk_rows: int, csv_settings: CsvConfig | None = None
) -> Iterator[pd.DataFrame]:
    """Yield the table at `path` in batches of at most `chunk_rows`, never all of it at
    once; a CSV is read with the separator, decimal mark and encoding `csv_settings`
    gives or, where it gives none, sniffed from the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.source: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        found = sniff_csv(path, csv_settings or CsvConfig())
        logging.getLogger("ingest").info("reading %s: %s", path, found.describe())
        try:
            yield from pd.read_csv(
                path,
                chunksize=chunk_rows,
                sep=found.sep,
                decimal=found.decimal,
                encoding=found.encoding,
            )
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty (no header, no rows)") from None
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: not a readable CSV with {found.describe()} ({exc})") from None
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: byte {exc.start} is not {found.encoding} text; set data.csv.encoding "
                "(for example cp1252 or latin-1 for a Windows export)"
            ) from None
    elif suffix in {".parquet", ".pq"}:
        try:
            parquet = open_parquet(path)
        except pa.ArrowInvalid as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        raise DataError(f"data.source: {path} must end in .csv or .parquet")


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
    marker = text.isin(na_values)
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
    if missing := [c for c in required if c not in batch.columns]:
        hint = ""
        if len(batch.columns) == 1:
            header = str(batch.columns[0])
            if seps := [repr(s) for s in SEPARATORS if s in header]:
                hint = (
                    f". The header was read as one column; its fields look separated by "
                    f"{' or '.join(seps)}: set data.csv.sep"
                )
        raise DataError(
            f"column(s) {missing} named in params.yaml are not in the table; it has "
            f"{list(batch.columns)}{hint}"
        )
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
        try:
            batch[time_column] = pd.to_datetime(batch[time_column])
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"column '{time_column}' (data.time_column) is not a timestamp: {exc}"
            ) from None
    return batch


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
) -> int:
    """Stream batches into one Parquet file (atomically); return the row count.

    Every batch is cast to the first batch's schema, so a column whose type
    changes half-way through a file is reported by name instead of corrupting it.
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
    """The ingest stage: the demo table or the user's file, streamed into `target`.

    It writes as it reads (never the whole table in memory) and returns the row count.
    """
    if data.is_demo:
        batches: Iterable[pd.DataFrame] = [
            generate_demo_table(data.demo.n_rows, data.demo.seed, data.demo.positive_rate)
        ]
    elif isinstance(data.source, DatabaseSource):
        batches = iter_database_batches(data)
    else:
        batches = iter_table_batches(data.source, data.read_chunk_rows, data.csv)
    required = [c for c in (data.target, data.id_column, data.time_column) if c]
    return write_batches_to_parquet(
        batches,
        target,
        required,
        data.drop_columns,
        data.time_column,
        data.categorical_columns,
        data.na_values,
    )
