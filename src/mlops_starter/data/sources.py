"""Where a table comes from: one small protocol, and one registry of the kinds there are.

Ingest, `mlops score` and the fingerprint stage open a table here and read it through
`TableSource`, so every kind of table is read one way: the same CSV dialect, the same
columns, the same order. A new kind of file is one module with a class that has these
methods, decorated `@file_source(".suffix")`, and named in BUILT_IN (or imported before
`open_table` runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd

from mlops_starter.config import DatabaseSource, DataConfig
from mlops_starter.data.csv_format import SEPARATORS
from mlops_starter.errors import DataError


class TableSource(Protocol):
    """A table read in batches, never all of it at once (a table in memory is one batch)."""

    def label(self) -> str:
        """What logs and messages show (never a password)."""
        ...

    def columns(self) -> list[str]:
        """The table's column names, read without reading its rows."""
        ...

    def batches(
        self, columns: list[str], chunk_rows: int, order_by: Sequence[str] = ()
    ) -> Iterator[pd.DataFrame]:
        """`columns` (all present) of every row, at most `chunk_rows` at a time. A source
        that keeps rows in no order of its own (a database) sorts them by `order_by`."""
        ...

    def total_rows(self) -> int | None:
        """The row count where it costs nothing to know (a progress bar's total)."""
        ...

    def fingerprint(self, columns: list[str], chunk_rows: int) -> dict[str, Any] | None:
        """What tells DVC the table changed, or None where DVC hashes it itself (a file)."""
        ...


OpenFile = Callable[[Path, DataConfig], TableSource]
FILE_SOURCES: dict[str, OpenFile] = {}

# The modules whose file sources register themselves; a team's own joins them by being imported.
BUILT_IN = ("mlops_starter.data.files",)


Opener = TypeVar("Opener", bound=OpenFile)


def file_source(*suffixes: str) -> Callable[[Opener], Opener]:
    """Register a reader (a class that takes the path and the data settings) for files
    ending in `suffixes` (".csv", say)."""

    def register(opener: Opener) -> Opener:
        for suffix in suffixes:
            FILE_SOURCES[suffix.lower()] = opener
        return opener

    return register


def open_table(source: str | Path | DatabaseSource, data: DataConfig) -> TableSource:
    """The table `source` names (a path, "demo", or a database), read as `data` says."""
    for module in BUILT_IN:
        importlib.import_module(module)
    from mlops_starter.data.database import DatabaseTable
    from mlops_starter.data.demo import DemoTable

    if isinstance(source, DatabaseSource):
        return DatabaseTable(source)
    if source == "demo":
        return DemoTable(data.demo.n_rows, data.demo.seed, data.demo.positive_rate)
    path = Path(source)
    opener = FILE_SOURCES.get(path.suffix.lower())
    if opener is None:
        raise DataError(
            f"{path} must end in {' or '.join(sorted(FILE_SOURCES))}: no reader is registered "
            f"for '{path.suffix}' (data/sources.py)"
        )
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return opener(path, data)


def refuse_missing_columns(required: list[str], available: list[str], label: str) -> None:
    """Stop, naming them, if columns params.yaml names are not in the table; a header read
    as one column says which separator its fields seem to use."""
    if missing := [c for c in required if c not in available]:
        hint = ""
        seps = [repr(s) for s in SEPARATORS if s in str(available[0])] if available else []
        if len(available) == 1 and seps:
            hint = (
                f". The header was read as one column; its fields look separated by "
                f"{' or '.join(seps)}: set data.csv.sep"
            )
        raise DataError(
            f"column(s) {missing} named in params.yaml are not in {label}; it has {available}{hint}"
        )


def pipeline_columns(data: DataConfig, table: TableSource) -> list[str]:
    """What ingest (and the fingerprint) read: every column but `drop_columns`, after
    checking that the target, id and time columns are there."""
    available = table.columns()
    required = [c for c in (data.target, data.id_column, data.time_column) if c]
    refuse_missing_columns(required, available, f"data.source {table.label()}")
    return [c for c in available if c not in data.drop_columns]
