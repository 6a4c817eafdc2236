"""The demo table in a database, trained from by params.yaml alone: on a real PostgreSQL
(password from the environment, never shown) and on SQLite, `dvc repro` gives the
raw table a file of the same rows gives; an unchanged table reruns nothing, a changed one
reruns ingest; a wrong password or an unreachable server stops with one line; and
`mlops score` scores a query's rows."""

import json
import re

import pandas as pd
import psycopg
import pytest
from conftest import ONLY_LOGISTIC
from postgres import postgres_server

from mlops_starter.data.demo import generate_demo_table

pytestmark = pytest.mark.e2e

PASSWORD = "db-pw-for-this-test-only-7x"  # pragma: allowlist secret (throw-away cluster)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@-]+)'", output))


def table_source(source: dict[str, str]) -> dict[str, object]:
    """data params for a database source: DVC cannot hash a table, so a fingerprint
    stage (fingerprint@table) rechecks it on every repro."""
    return {"source": source, "recheck_source": ["table"]}


def with_password(url: str) -> str:
    return url.replace("analyst@", f"analyst:{PASSWORD}@")


@pytest.fixture(scope="module")
def database():
    with postgres_server("analyst", PASSWORD) as url:
        yield url


def test_the_demo_from_postgresql_sqlite_and_a_file_gives_the_same_table(database, repo_copy):
    """The demo table in PostgreSQL, in SQLite, and as a Parquet file (in id order, the
    order ingest reads a database in): one `dvc repro` from PostgreSQL, then ingest from
    the two others gives the very raw table it trained on, so the same metrics."""
    copy = repo_copy(ONLY_LOGISTIC)
    copy.env["MLOPS_DB_PASSWORD"] = PASSWORD
    copy.run("mlops", "demo-db", "--url", database, "--table", "customers")
    copy.run("mlops", "demo-db")  # sqlite:///data/demo.sqlite
    demo = copy.params()["data"]["demo"]
    table = generate_demo_table(demo["n_rows"], demo["seed"], demo["positive_rate"])
    table.sort_values("customer_id").to_parquet(copy.root / "data/source/customers.parquet")
    postgres = {"url": database, "table": "customers"}

    copy.set_params({"data": table_source(postgres)})
    first = copy.run("dvc", "repro", timeout=900)
    said = first.stdout + first.stderr
    assert "Traceback" not in said and PASSWORD not in said
    from_postgres = pd.read_parquet(copy.root / "data/raw/table.parquet")
    fingerprint = copy.read_json("data/source.fingerprint.json")
    assert fingerprint["rows"] == demo["n_rows"] and PASSWORD not in json.dumps(fingerprint)
    card = (copy.root / "reports/model_card.md").read_text()
    assert database in card and PASSWORD not in card
    # Unchanged table: only the fingerprint runs.
    assert ran_stages(copy.run("dvc", "repro").stdout) == {"fingerprint@table"}

    sqlite = {"url": "sqlite:///data/demo.sqlite", "table": "customers"}
    for source in (
        {"source": "data/source/customers.parquet", "recheck_source": []},
        table_source(sqlite),
    ):
        copy.set_params({"data": source})
        copy.run("dvc", "repro", "ingest", timeout=900)
        pd.testing.assert_frame_equal(
            pd.read_parquet(copy.root / "data/raw/table.parquet"), from_postgres
        )

    # Back on PostgreSQL: the same raw table (ingest may come from DVC's run cache), so
    # nothing downstream reruns; then one row changed: ingest and what follows rerun.
    copy.set_params({"data": table_source(postgres)})
    back = copy.run("dvc", "repro", timeout=900).stdout
    assert ran_stages(back) <= {"fingerprint@table", "ingest"}, back
    with psycopg.connect(with_password(database)) as connection:
        connection.execute("UPDATE customers SET age = age + 1 WHERE customer_id = 'C0000042'")
    changed = copy.run("dvc", "repro", timeout=900)
    assert {"fingerprint@table", "ingest", "split", "train"} <= ran_stages(changed.stdout)


def test_streaming_from_postgresql_a_query_scored_and_bad_credentials_or_hosts_in_one_line(
    database, repo_copy, tmp_path
):
    """Trained in scale.mode streaming, which reads the database as in memory does."""
    copy = repo_copy({"scale": {"mode": "streaming"}})
    copy.env["MLOPS_DB_PASSWORD"] = PASSWORD
    copy.run("mlops", "demo-db", "--url", database, "--table", "customers")
    copy.set_params({"data": table_source({"url": database, "table": "customers"})})
    copy.run("dvc", "repro", timeout=900)
    assert 540 <= copy.read_json("metrics/test.json")["rows"] <= 660  # rows placed by hash

    query = "SELECT * FROM customers WHERE plan = 'basic'"
    copy.run(
        "mlops", "score", "--db-url", database, "--query", query, "--output", "build/s.parquet"
    )
    scored = pd.read_parquet(copy.root / "build/s.parquet")
    with psycopg.connect(with_password(database)) as connection:
        basic = connection.execute("SELECT count(*) FROM customers WHERE plan = 'basic'").fetchone()
    assert len(scored) == basic[0] and scored["probability"].between(0, 1).all()

    raw_before = (copy.root / "data/raw/table.parquet").read_bytes()
    copy.env["MLOPS_DB_PASSWORD"] = "not-the-password"  # pragma: allowlist secret
    wrong = copy.run("dvc", "repro", check=False)
    assert wrong.returncode != 0
    assert "stage 'fingerprint' failed: data.source " + database in wrong.stderr
    assert 'password authentication failed for user "analyst"' in wrong.stderr
    assert "$MLOPS_DB_PASSWORD" in wrong.stderr
    assert "Traceback" not in wrong.stderr and "not-the-password" not in wrong.stderr

    closed = re.sub(r":\d+/", ":1/", database)
    copy.env["MLOPS_DB_PASSWORD"] = PASSWORD
    copy.set_params({"data": table_source({"url": closed, "table": "customers"})})
    unreachable = copy.run("dvc", "repro", check=False)
    assert "stage 'fingerprint' failed: data.source " + closed in unreachable.stderr
    assert "check the host, port and database in data.source.url" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    assert (copy.root / "data/raw/table.parquet").read_bytes() == raw_before
