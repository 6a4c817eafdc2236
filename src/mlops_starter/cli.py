"""`mlops`: the commands that live outside the DAG."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

import pandas as pd

from mlops_starter.config import DEFAULT_PARAMS, Config
from mlops_starter.errors import PipelineError
from mlops_starter.registry import CHAMPION, AliasMove, Registry
from mlops_starter.runner import EXPECTED_FAILURE_EXIT_CODE
from mlops_starter.storage import read_json, write_json
from mlops_starter.validation import profile_suite

GATE_FAILED_EXIT_CODE = 1


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


def check_gate(args: argparse.Namespace) -> None:
    """Print the gate report and exit non-zero, naming each failed check, if it failed."""
    cfg = Config.from_yaml(args.params)
    path = Path(args.report or Path(cfg.paths.reports) / "gate.json")
    if not path.is_file():
        raise PipelineError(f"{path} not found: run `dvc repro` (the register stage writes it)")
    report = read_json(path)
    markdown = path.with_suffix(".md")
    if markdown.is_file():
        print(markdown.read_text())
    if not report["passed"]:
        failed = [c for c in report["checks"] if not c["passed"]]
        for check in failed:
            print(f"gate check failed: {check['name']}: {check['value']} (bar: {check['bar']}) {check['detail']}",
                  file=sys.stderr)
        sys.exit(GATE_FAILED_EXIT_CODE)


def _registry(args: argparse.Namespace) -> Registry:
    return Registry.connect(Config.from_yaml(args.params).mlflow.registered_model)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def _describe(move: AliasMove) -> str:
    return (f"#{move.seq} {move.at} {move.action}: champion {move.from_version or '-'} -> {move.to_version} "
            f"by {move.actor}: {move.reason}")


def promote(args: argparse.Namespace) -> None:
    move = _registry(args).promote(args.version, _actor(args), args.reason or "", force=args.force)
    print(_describe(move))


def rollback(args: argparse.Namespace) -> None:
    registry = _registry(args)
    move = registry.rollback(_actor(args), to_version=args.to, reason=args.reason or "")
    if move is None:
        champion = registry.champion()
        print(f"nothing to do: champion is already version {champion.version if champion else '-'}")
    else:
        print(_describe(move))


def history(args: argparse.Namespace) -> None:
    registry = _registry(args)
    moves = registry.history()
    for move in moves:
        print(_describe(move))
    champion = registry.champion()
    print(f"{CHAMPION}: version {champion.version if champion else '-'}")
    if moves and champion and champion.version != moves[-1].to_version:
        print(f"note: champion was moved outside this CLI (e.g. in the MLflow UI) after #{moves[-1].seq}")


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

    gate = commands.add_parser("gate", help="print the gate report; exit 1 if the gate failed")
    gate.add_argument("--report", help="gate.json to read (default: reports/gate.json)")
    gate.set_defaults(handler=check_gate)

    for name, handler, text in (
        ("promote", promote, "point the champion alias at a version"),
        ("rollback", rollback, "move champion back to the previous champion, or to --to VERSION"),
        ("history", history, "every champion move recorded in the registry"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--actor", help="who is acting (default: $GITHUB_ACTOR or the login name)")
        command.set_defaults(handler=handler)
        if name == "promote":
            command.add_argument("version", help="a version number, or 'challenger'")
            command.add_argument("--force", action="store_true", help="promote although the gate failed")
        if name == "rollback":
            command.add_argument("--to", help="version to restore (default: the champion before the last promotion)")
        if name != "history":
            command.add_argument("--reason", help="recorded in the registry (required with --force)")

    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except PipelineError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        sys.exit(EXPECTED_FAILURE_EXIT_CODE)


if __name__ == "__main__":
    main()
