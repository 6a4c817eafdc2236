"""A database as the source: only the columns the pipeline uses, streamed in batches.

Any SQLAlchemy URL works (PostgreSQL through psycopg, SQLite with no server). The
password never sits in params.yaml: it comes from the environment variable
`data.source.password_env`, and the URL shown anywhere is the one params.yaml holds.
Rows come through a server-side cursor (`stream_results`), `read_chunk_rows` at a time,
so memory holds one batch whatever the table's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlops_starter.config import DatabaseSource
from mlops_starter.errors import DataError

FINGERPRINT_SCHEMA = 1


def engine_for(source: DatabaseSource, create: bool = False) -> Engine:
    """An engine with the password from the environment. A SQLite file must exist,
    unless `create`: SQLite would otherwise make an empty one where a path is mistyped."""
    url = sa.engine.make_url(source.url)
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if sqlite_file and create:
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    elif sqlite_file and not Path(str(url.database)).is_file():
        raise DataError(f"data.source {source.label()}: no SQLite file {url.database}")
    if url.username and (password := os.environ.get(source.password_env)):
        url = url.set(password=password)
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as error:  # a malformed URL, a missing driver
        raise DataError(f"data.source {source.label()}: {error}") from None


def _refused(source: DatabaseSource, error: sa.exc.DBAPIError) -> DataError:
    """The driver's complaint as one line that names the source and the fix."""
    said = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    lowered = said.lower()
    if "password" in lowered or "authentication" in lowered or "role" in lowered:
        fix = f"check the user in data.source.url and the password in ${source.password_env}"
    elif isinstance(error, sa.exc.OperationalError) and "no such table" not in lowered:
        fix = "check the host, port and database in data.source.url, and that the server runs"
    else:
        fix = "check data.source.table or data.source.query"
    return DataError(f"data.source {source.label()}: {said} ({fix})")


def _columns(connection: Connection, source: DatabaseSource) -> dict[str, bool]:
    """The source's columns, each with whether the database declares it numeric (a
    query's columns carry no declared types here: False)."""
    if source.table is not None:
        schema, _, name = source.table.rpartition(".")
        inspector = sa.inspect(connection)
        if not inspector.has_table(name, schema=schema or None):
            tables = inspector.get_table_names(schema=schema or None)
            raise DataError(
                f"data.source {source.label()}: no table '{source.table}'; the database has "
                f"{tables} (data.source.table)"
            )
        return {
            c["name"]: _is_number(c["type"])
            for c in inspector.get_columns(name, schema=schema or None)
        }
    probe = f"SELECT * FROM ({source.query}) AS source LIMIT 0"  # noqa: S608 (the user's own query from params.yaml, run on the user's own database)
    return dict.fromkeys(connection.execute(sa.text(probe)).keys(), False)


def _is_number(declared: sa.types.TypeEngine[Any]) -> bool:
    try:
        return issubclass(declared.python_type, (int, float, Decimal)) and not issubclass(
            declared.python_type, bool
        )
    except NotImplementedError:
        return False


def _select(source: DatabaseSource, columns: list[str], order_by: Sequence[str] = ()) -> Any:
    if source.table is not None:
        schema, _, name = source.table.rpartition(".")
        table = sa.table(name, *(sa.column(c) for c in columns), schema=schema or None)
        select = sa.select(*table.c)
    else:
        select = sa.select(*(sa.column(c) for c in columns)).select_from(
            sa.text(f"({source.query}) AS source")
        )
    return select.order_by(*(sa.column(c) for c in order_by))


def _stream(
    source: DatabaseSource, columns: list[str], chunk_rows: int, order_by: Sequence[str]
) -> Iterator[pd.DataFrame]:
    """`columns` of every row, in batches, sorted by `order_by`: a database returns rows
    in no order of its own (PostgreSQL places inserted rows wherever a page has room),
    and the split depends on it."""
    try:
        with engine_for(source).connect() as connection:
            available = _columns(connection, source)
            numeric = [c for c in columns if available.get(c)]
            streaming = connection.execution_options(stream_results=True, max_row_buffer=chunk_rows)
            rows = 0
            select = _select(source, columns, order_by)
            for batch in pd.read_sql(select, streaming, chunksize=chunk_rows):
                if len(batch):
                    rows += len(batch)
                    # A declared number column with only NULLs in a batch comes back as
                    # objects: numbers, as a file's empty column reads.
                    yield batch.astype({c: "float64" for c in numeric if batch[c].dtype == object})
            if rows == 0:
                raise DataError(
                    f"data.source {source.label()} returned no rows: check data.source.table "
                    "or the query's WHERE clause"
                )
    except sa.exc.DBAPIError as error:
        raise _refused(source, error) from None


class DatabaseTable:
    """A database table, or a query's rows, as a table source (data/sources.py)."""

    def __init__(self, source: DatabaseSource) -> None:
        self.source = source

    def label(self) -> str:
        return self.source.label()

    def columns(self) -> list[str]:
        try:
            with engine_for(self.source).connect() as connection:
                return list(_columns(connection, self.source))
        except sa.exc.DBAPIError as error:
            raise _refused(self.source, error) from None

    def batches(
        self, columns: list[str], chunk_rows: int, order_by: Sequence[str] = ()
    ) -> Iterator[pd.DataFrame]:
        return _stream(self.source, columns, chunk_rows, order_by)

    def total_rows(self) -> int | None:
        return None

    def fingerprint(self, columns: list[str], chunk_rows: int) -> dict[str, Any]:
        """With `fingerprint_column`, the row count and its newest value (one query);
        otherwise the row count and an order-independent checksum of `columns` in every
        row."""
        source = self.source
        found: dict[str, Any] = {"schema": FINGERPRINT_SCHEMA, "source": source.label()}
        if column := source.fingerprint_column:
            if column not in self.columns():
                raise DataError(
                    f"data.source.fingerprint_column '{column}' is not a column of {source.label()}"
                )
            subject = _select(source, [column]).subquery()
            try:
                with engine_for(source).connect() as connection:
                    rows, newest = connection.execute(
                        sa.select(sa.func.count(), sa.func.max(subject.c[column]))
                    ).one()
            except sa.exc.DBAPIError as error:
                raise _refused(source, error) from None
            return found | {"rows": int(rows), f"newest {column}": str(newest)}
        rows, checksum = 0, 0
        for batch in self.batches(columns, chunk_rows):
            rows += len(batch)
            hashed = pd.util.hash_pandas_object(batch.astype("string"), index=False).to_numpy()
            # A sum of row hashes modulo 2**64: the order the database returns rows in is free.
            checksum = (checksum + int(hashed.sum(dtype=np.uint64))) % 2**64
        return found | {"rows": rows, "checksum": f"{checksum:016x}"}


def write_table(source: DatabaseSource, frame: pd.DataFrame) -> None:
    """`frame` as the source's table, replacing it (`mlops demo-db`)."""
    assert source.table is not None  # noqa: S101 (the caller builds the source with a table)
    schema, _, name = source.table.rpartition(".")
    try:
        with engine_for(source, create=True).begin() as connection:
            frame.to_sql(
                name,
                connection,
                schema=schema or None,
                if_exists="replace",
                index=False,
                chunksize=10_000,
            )
    except sa.exc.DBAPIError as error:
        raise _refused(source, error) from None
