"""`mlops suite | demo-db`: the data commands."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.errors import PipelineError
from mlops_starter.storage import write_json
from mlops_starter.validation.suite import profile_suite


def make_suite(args: argparse.Namespace) -> None:
    """Profile a trusted table into the expectation suite that `validate` enforces."""
    cfg = Config.from_yaml(args.params)
    table = (
        pd.read_parquet(args.table) if args.table.endswith(".parquet") else pd.read_csv(args.table)
    )
    skip = [c for c in (cfg.data.target, cfg.data.id_column, cfg.data.time_column) if c]
    suite = profile_suite(table, name="raw_table", skip=skip)
    out = args.out or cfg.validate_.suite
    if not out:
        raise PipelineError("validate.suite is null: pass --out PATH (and name it in params.yaml)")
    write_json(out, suite)
    print(
        f"wrote {len(suite['expectations'])} expectations profiled from {len(table)} rows of {args.table} to {out}"
    )


def demo_db(args: argparse.Namespace) -> None:
    """The demo table (data.demo in params.yaml) written to a database, to train from it."""
    from mlops_starter.config import DatabaseSource
    from mlops_starter.data.database import write_table
    from mlops_starter.data.demo import generate_demo_table

    demo = Config.from_yaml(args.params).data.demo
    source = DatabaseSource(url=args.url, table=args.table, password_env=args.password_env)
    write_table(source, generate_demo_table(demo.n_rows, demo.seed, demo.positive_rate))
    print(f"wrote {demo.n_rows} demo rows to {source.label()}")


def add_commands(commands: Any) -> None:
    database = commands.add_parser("demo-db", help="write the demo table to a database")
    database.add_argument(
        "--url", default="sqlite:///data/demo.sqlite", help="SQLAlchemy URL of the database"
    )
    database.add_argument("--table", default="customers", help="table to (re)create")
    database.add_argument(
        "--password-env",
        default="MLOPS_DB_PASSWORD",
        help="environment variable holding the password, if the URL needs one",
    )
    database.set_defaults(handler=demo_db)

    suite = commands.add_parser(
        "suite", help="regenerate the validation suite from a trusted table"
    )
    suite.add_argument(
        "--table", required=True, help="trusted CSV or Parquet table (e.g. data/raw/table.parquet)"
    )
    suite.add_argument(
        "--out", help="where to write the suite (default: validate.suite in params.yaml)"
    )
    suite.set_defaults(handler=make_suite)
