"""`mlops`: the commands that live outside the DAG."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from mlops_starter.config import DEFAULT_PARAMS, Config
from mlops_starter.errors import PipelineError
from mlops_starter.runner import EXPECTED_FAILURE_EXIT_CODE
from mlops_starter.storage import write_json
from mlops_starter.validation import profile_suite


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="path to params.yaml")
    commands = parser.add_subparsers(dest="command", required=True)

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

    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except PipelineError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        sys.exit(EXPECTED_FAILURE_EXIT_CODE)


if __name__ == "__main__":
    main()
