"""`mlops`: the commands that live outside the DAG, one module per area."""

from __future__ import annotations

import argparse
import sys

from mlops_starter.cli import data, monitoring, registry, serving, tree
from mlops_starter.config import DEFAULT_PARAMS
from mlops_starter.errors import PipelineError
from mlops_starter.runner import EXPECTED_FAILURE_EXIT_CODE

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the docs' CLI reference is generated from it."""
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="path to params.yaml")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (data, registry, serving, monitoring, tree):
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except PipelineError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        sys.exit(EXPECTED_FAILURE_EXIT_CODE)
    except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's exit code for it
        print(f"mlops {args.command}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)


if __name__ == "__main__":
    main()
