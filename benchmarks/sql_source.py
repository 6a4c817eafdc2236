"""Ingest from PostgreSQL against `pandas.read_sql` of the whole table: time and peak RSS
at 1M and 4M rows of the demo table, each reader in its own process.

Ingest streams the columns the pipeline uses through a server-side cursor,
`data.read_chunk_rows` at a time, into the raw Parquet file; `pandas.read_sql` holds the
whole result (and the driver's copy of it) before writing the same file. Both run side by
side in one run on a throw-away PostgreSQL cluster (tests/postgres.py), so the figures
compare as ratios on a shared machine.

    python benchmarks/sql_source.py [--rows 1000000 4000000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from postgres import postgres_server  # noqa: E402 (the test suite's throw-away cluster)

from mlops_starter.data.demo import generate_demo_table  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "sql_source.json"
PASSWORD = "benchmark-only-password"  # noqa: S105  # pragma: allowlist secret (throw-away cluster)
LOAD_CHUNK = 250_000


def sql_type(column: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(column):
        return "timestamp"
    if pd.api.types.is_integer_dtype(column):
        return "bigint"
    return "double precision" if pd.api.types.is_numeric_dtype(column) else "text"


def load(url: str, rows: int) -> float:
    """The demo table, `rows` long, into `customers` with COPY; returns seconds."""
    started = time.perf_counter()
    first = generate_demo_table(10, seed=0)
    columns = ", ".join(f'"{c}" {sql_type(first[c])}' for c in first.columns)
    with psycopg.connect(url.replace("@", f":{PASSWORD}@", 1)) as connection:
        connection.execute("DROP TABLE IF EXISTS customers")
        connection.execute(f"CREATE TABLE customers ({columns})")
        with connection.cursor().copy("COPY customers FROM STDIN WITH (FORMAT csv)") as copy:
            for start in range(0, rows, LOAD_CHUNK):
                chunk = generate_demo_table(min(LOAD_CHUNK, rows - start), seed=start)
                buffer = io.StringIO()
                chunk.to_csv(buffer, index=False, header=False)
                copy.write(buffer.getvalue())
        connection.execute("ANALYZE customers")
    return time.perf_counter() - started


def worker(reader: str, url: str, out: str) -> None:
    """One reader, in this process: prints its seconds and peak RSS (VmHWM, kB)."""
    started = time.perf_counter()
    if reader == "ingest":
        from mlops_starter.config import Config
        from mlops_starter.data.ingest import ingest

        cfg = Config.from_dict(
            {
                "data": {
                    "source": {"url": url, "table": "customers"},
                    "target": "churned",
                    "positive_label": "yes",
                    "id_column": "customer_id",
                    "time_column": "signup_date",
                }
            }
        )
        ingest(cfg.data, out)
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(url.replace("@", f":{PASSWORD}@", 1))
        pd.read_sql("SELECT * FROM customers", engine).to_parquet(out, index=False)
    status = Path("/proc/self/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_kb": peak}))


def measure(reader: str, url: str, scratch: Path) -> dict:
    done = subprocess.run(  # noqa: S603 (this script itself, with our own arguments)
        [sys.executable, __file__, "--worker", reader, url, str(scratch / f"{reader}.parquet")],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"MLOPS_DB_PASSWORD": PASSWORD},
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": round(figures["seconds"], 1), "peak_rss_mb": round(figures["peak_kb"] / 1e3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--worker", nargs=3, metavar=("READER", "URL", "OUT"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    results: dict = {"runs": []}
    with postgres_server("analyst", PASSWORD) as url, tempfile.TemporaryDirectory() as scratch:
        for rows in args.rows:
            loaded = load(url, rows)
            run = {"rows": rows, "load_seconds": round(loaded, 1)}
            for reader in ("ingest", "read_sql"):
                run[reader] = measure(reader, url, Path(scratch))
            run["rss_ratio_read_sql_to_ingest"] = round(
                run["read_sql"]["peak_rss_mb"] / run["ingest"]["peak_rss_mb"], 2
            )
            run["time_ratio_read_sql_to_ingest"] = round(
                run["read_sql"]["seconds"] / run["ingest"]["seconds"], 2
            )
            print(json.dumps(run))
            results["runs"].append(run)
    first, last = results["runs"][0], results["runs"][-1]
    results["ingest_rss_growth"] = round(
        last["ingest"]["peak_rss_mb"] / first["ingest"]["peak_rss_mb"], 2
    )
    results["read_sql_rss_growth"] = round(
        last["read_sql"]["peak_rss_mb"] / first["read_sql"]["peak_rss_mb"], 2
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
