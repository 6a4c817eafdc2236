"""A database as data.source, on SQLite (no server): the same raw table as the file,
only the columns the pipeline uses asked for, a fingerprint that moves with the data,
and one clear line for each way it goes wrong (PostgreSQL: tests/test_database_e2e.py)."""

import re
import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from mlops_starter.config import Config, DatabaseSource
from mlops_starter.data.database import write_table
from mlops_starter.data.demo import generate_demo_table
from mlops_starter.data.ingest import fingerprint, ingest
from mlops_starter.errors import ConfigError, DataError

DEMO = generate_demo_table(3000, seed=3)


@pytest.fixture
def database(tmp_path):
    """The demo table as `customers` in a SQLite file; yields its URL."""
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    write_table(DatabaseSource(url=url, table="customers"), DEMO)
    return url


def data_config(source, **data) -> Config:
    raw = {
        "data": {
            "source": source,
            "recheck_source": [] if isinstance(source, str) else ["table"],
            "target": "churned",
            "positive_label": "yes",
            "id_column": "customer_id",
            "time_column": "signup_date",
            "read_chunk_rows": 700,
            **data,
        }
    }
    return Config.from_dict(raw)


def test_the_database_gives_the_file_s_raw_table_in_id_order(database, tmp_path):
    """The same rows and types as the file; ordered by data.id_column, since a database
    has no row order of its own and the split depends on it."""
    from_file = tmp_path / "file.parquet"
    DEMO.to_parquet(tmp_path / "demo.parquet", index=False)
    ingest(data_config(str(tmp_path / "demo.parquet")).data, from_file)
    from_db = tmp_path / "db.parquet"
    rows = ingest(data_config({"url": database, "table": "customers"}).data, from_db)
    assert rows == len(DEMO)
    in_id_order = pd.read_parquet(from_file).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(from_db), in_id_order)


def test_only_the_columns_the_pipeline_uses_are_asked_for(database, tmp_path):
    asked: list[str] = []

    def record(connection, cursor, statement, *rest):
        asked.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        cfg = data_config({"url": database, "table": "customers"}, drop_columns=["region", "age"])
        ingest(cfg.data, tmp_path / "raw.parquet")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    [select] = [q for q in asked if re.match(r"\s*SELECT .*\sFROM customers\s+ORDER BY", q, re.S)]
    listed = select.split("SELECT", 1)[1].rsplit("FROM", 1)[0]
    assert select.rstrip().endswith("ORDER BY customer_id")
    columns = {c.strip().removeprefix("customers.").strip('"') for c in listed.split(",")}
    assert columns == set(DEMO.columns) - {"region", "age"}
    assert "region" not in pd.read_parquet(tmp_path / "raw.parquet")


def test_a_query_is_a_source_and_one_with_no_rows_stops_naming_it(database, tmp_path):
    source = {"url": database, "query": "SELECT * FROM customers WHERE plan = 'basic'"}
    rows = ingest(data_config(source).data, tmp_path / "raw.parquet")
    assert rows == int((DEMO["plan"] == "basic").sum())
    empty = {"url": database, "query": "SELECT * FROM customers WHERE plan = 'none'"}
    with pytest.raises(DataError, match="returned no rows"):
        ingest(data_config(empty).data, tmp_path / "empty.parquet")
    assert not (tmp_path / "empty.parquet").exists()


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ({"table": "clients"}, "no table 'clients'; the database has ['customers']"),
        ({"query": "SELECT * FROM clients"}, "no such table: clients"),
    ],
)
def test_a_missing_table_stops_naming_it_and_the_setting(database, tmp_path, source, named):
    with pytest.raises(DataError, match=r"data\.source") as stopped:
        ingest(data_config({"url": database, **source}).data, tmp_path / "raw.parquet")
    assert named in str(stopped.value)
    assert not (tmp_path / "raw.parquet").exists()


def test_a_missing_target_column_stops_before_any_row_is_read(database, tmp_path):
    cfg = data_config({"url": database, "table": "customers"}, target="cancelled")
    with pytest.raises(DataError, match=r"\['cancelled'\] named in params.yaml are not in"):
        ingest(cfg.data, tmp_path / "raw.parquet")


def test_a_mistyped_sqlite_path_is_refused_and_not_created(tmp_path):
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(DataError, match="no SQLite file"):
        ingest(data_config({"url": f"sqlite:///{missing}", "table": "t"}).data, tmp_path / "r")
    assert not missing.exists()


def test_a_password_in_the_url_is_refused_naming_the_variable_for_it():
    with pytest.raises(ConfigError, match="MLOPS_DB_PASSWORD") as refused:
        data_config({"url": "postgresql://analyst:" + "hunter2@db/crm", "table": "customers"})
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ConfigError, match="exactly one of table and query"):
        data_config({"url": "sqlite:///x.db", "table": "a", "query": "SELECT 1"})


def test_the_fingerprint_moves_when_a_row_changes_and_not_otherwise(database):
    cfg = data_config({"url": database, "table": "customers"})
    first = fingerprint(cfg.data)
    assert first["rows"] == len(DEMO) and fingerprint(cfg.data) == first
    with sqlite3.connect(database.removeprefix("sqlite:///")) as connection:
        connection.execute("UPDATE customers SET age = age + 1 WHERE customer_id = 'C0000007'")
    assert fingerprint(cfg.data)["checksum"] != first["checksum"]


def test_a_fingerprint_column_gives_count_and_newest_value(database):
    source = {"url": database, "table": "customers", "fingerprint_column": "signup_date"}
    found = fingerprint(data_config(source).data)
    assert found["rows"] == len(DEMO)
    assert found["newest signup_date"].startswith(str(DEMO["signup_date"].max().date()))
    wrong = {**source, "fingerprint_column": "updated_at"}
    with pytest.raises(DataError, match="fingerprint_column 'updated_at' is not a column"):
        fingerprint(data_config(wrong).data)


def test_a_number_column_null_in_the_first_batch_stays_numeric(tmp_path):
    """SQLite hands back an all-NULL batch of a REAL column as objects; read from a file
    the same column is numbers. Ingest keeps the declared type, batch after batch."""
    url = f"sqlite:///{tmp_path / 'lab.sqlite'}"
    ordered = DEMO.head(2000).sort_values("customer_id")  # ingest reads in id order
    table = ordered.assign(lab=[None] * 1000 + [1.5] * 1000)
    with sqlite3.connect(tmp_path / "lab.sqlite") as connection:
        connection.execute("CREATE TABLE results (customer_id TEXT, churned TEXT, lab REAL)")
        connection.executemany(
            "INSERT INTO results VALUES (?, ?, ?)",
            table[["customer_id", "churned", "lab"]].itertuples(index=False),
        )
    cfg = data_config({"url": url, "table": "results"}, time_column=None)
    assert ingest(cfg.data, tmp_path / "raw.parquet") == 2000
    lab = pd.read_parquet(tmp_path / "raw.parquet")["lab"]
    assert lab.dtype == "float64" and lab.isna().sum() == 1000
