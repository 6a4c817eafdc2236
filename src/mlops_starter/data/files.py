"""Files as table sources: CSV (its dialect as params.yaml says, or sniffed) and Parquet
(row group by row group). Each is registered with `data.sources.file_source`."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mlops_starter.config import DataConfig
from mlops_starter.data.batches import open_parquet
from mlops_starter.data.csv_format import CsvFormat, sniff_csv
from mlops_starter.data.sources import file_source
from mlops_starter.errors import DataError


@file_source(".csv")
class CsvTable:
    """A CSV file, read with the separator, decimal mark and encoding data.csv gives or,
    where it gives none, that its first bytes suggest."""

    def __init__(self, path: Path, data: DataConfig) -> None:
        self.path = path
        self.format: CsvFormat = sniff_csv(path, data.csv)
        # Markers read as missing while parsing, so a column of decimal commas with a '?'
        # among them still parses as numbers (ingest's later pass cannot re-read "1,5").
        self.na_values = data.na_values
        logging.getLogger("data").info("reading %s: %s", path, self.format.describe())

    def label(self) -> str:
        return str(self.path)

    def _read(self, **options: Any) -> Any:
        try:
            return pd.read_csv(
                self.path,
                sep=self.format.sep,
                decimal=self.format.decimal,
                encoding=self.format.encoding,
                na_values=self.na_values,
                **options,
            )
        except pd.errors.EmptyDataError:
            raise DataError(f"{self.path}: the file is empty (no header, no rows)") from None

    def columns(self) -> list[str]:
        try:
            return [str(c) for c in self._read(nrows=0).columns]
        except UnicodeDecodeError as exc:
            raise self._not_text(exc) from None

    def batches(
        self, columns: list[str], chunk_rows: int, order_by: Sequence[str] = ()
    ) -> Iterator[pd.DataFrame]:
        read = 0
        try:
            # Every column is parsed, then `columns` kept: with usecols, pandas lets a line
            # with too many fields (a shifted row) pass without a word.
            for chunk in self._read(chunksize=chunk_rows):
                read += len(chunk)
                yield chunk[columns]
        except pd.errors.ParserError as exc:
            raise DataError(
                f"{self.path} could not be read past row {read} as a CSV with "
                f"{self.format.describe()} ({exc})"
            ) from None
        except UnicodeDecodeError as exc:
            raise self._not_text(exc) from None

    def _not_text(self, exc: UnicodeDecodeError) -> DataError:
        return DataError(
            f"{self.path}: byte {exc.start} is not {self.format.encoding} text; set "
            "data.csv.encoding (for example cp1252 or latin-1 for a Windows export)"
        )

    def total_rows(self) -> int | None:
        return None

    def fingerprint(self, columns: list[str], chunk_rows: int) -> dict[str, Any] | None:
        return None


@file_source(".parquet", ".pq")
class ParquetTable:
    """A Parquet file, one row group's worth of batches at a time."""

    def __init__(self, path: Path, data: DataConfig) -> None:
        self.path = path
        try:
            self.file = open_parquet(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None

    def label(self) -> str:
        return str(self.path)

    def columns(self) -> list[str]:
        return list(self.file.schema_arrow.names)

    def batches(
        self, columns: list[str], chunk_rows: int, order_by: Sequence[str] = ()
    ) -> Iterator[pd.DataFrame]:
        read = 0
        try:
            for batch in self.file.iter_batches(batch_size=chunk_rows, columns=columns):
                read += batch.num_rows
                yield batch.to_pandas()
        except (pa.ArrowException, OSError) as exc:  # a damaged row group
            raise DataError(f"{self.path} could not be read past row {read}: {exc}") from None

    def total_rows(self) -> int | None:
        return int(self.file.metadata.num_rows)

    def fingerprint(self, columns: list[str], chunk_rows: int) -> dict[str, Any] | None:
        return None
