"""`mlops gate | promote | rollback | history`: the registry commands. The champion
alias is the deployment contract; these move it and read back its history."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mlops_starter.cli.common import actor, append_to_github_file, registry_from
from mlops_starter.config import Config
from mlops_starter.errors import PipelineError
from mlops_starter.registry.model_registry import (
    CHAMPION,
    AliasMove,
    Registry,
    RegistryError,
    chain_breaks,
    moved_outside_cli,
    same_version,
)
from mlops_starter.serving.schema import UnknownFields, breaking_changes
from mlops_starter.storage import read_json

GATE_FAILED_EXIT_CODE = 1


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
        append_to_github_file("GITHUB_STEP_SUMMARY", markdown.read_text())
    append_to_github_file(
        "GITHUB_OUTPUT", f"version={report['version']}\npassed={str(report['passed']).lower()}\n"
    )
    if not report["passed"]:
        failed = [c for c in report["checks"] if not c["passed"]]
        for check in failed:
            print(
                f"gate check failed: {check['name']}: {check['value']} (bar: {check['bar']}) {check['detail']}",
                file=sys.stderr,
            )
        sys.exit(GATE_FAILED_EXIT_CODE)


def describe(move: AliasMove) -> str:
    return (
        f"#{move.seq} {move.at} {move.action}: champion {move.from_version or '-'} -> {move.to_version} "
        f"by {move.actor}: {move.reason}"
    )


def warn_of_breaking_changes(
    registry: Registry, target: str, unknown_fields: UnknownFields
) -> list[str]:
    """Before the champion moves: say, naming the fields, what requests that today's
    champion answers the new one would refuse (stderr, and a GitHub Actions warning).
    Returns the changes; the move goes ahead, since a team may mean them, and so it
    does when a model cannot be read to compare (the warning says so)."""
    champion = registry.champion()
    candidate = registry.version(target)
    if champion is None or same_version(champion.version, candidate.version):
        return []
    try:
        changes = breaking_changes(
            registry.serving_metadata(champion),
            registry.serving_metadata(candidate),
            unknown_fields,
        )
    except RegistryError as unread:
        warn(
            f"the contracts of versions {champion.version} and {candidate.version} "
            f"were not compared: {unread}"
        )
        return []
    for change in changes:
        warn(
            f"version {candidate.version} would refuse requests that champion version "
            f"{champion.version} answers: {change} (docs/reference/http-api.md)"
        )
    return changes


def warn(message: str) -> None:
    """On stderr, and as a GitHub Actions warning when CD runs the command."""
    print(f"warning: {message}", file=sys.stderr)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::warning title=Clients may break::{message}")


def promote(args: argparse.Namespace) -> None:
    registry = registry_from(args)
    unknown_fields = Config.from_yaml(args.params).serve.unknown_fields
    warn_of_breaking_changes(registry, args.version, unknown_fields)
    move = registry.promote(args.version, actor(args), args.reason or "", force=args.force)
    print(
        describe(move)
        if move
        else f"nothing to do: version {registry.version(args.version).version} is champion"
    )


def rollback(args: argparse.Namespace) -> None:
    registry = registry_from(args)
    target = None if args.to in (None, "", "previous") else args.to
    move = registry.rollback(actor(args), to_version=target, reason=args.reason or "")
    if move is None:
        champion = registry.champion()
        print(f"nothing to do: champion is already version {champion.version if champion else '-'}")
    else:
        print(describe(move))


def history(args: argparse.Namespace) -> None:
    registry = registry_from(args)
    moves = registry.history()
    breaks = {move.seq for move in chain_breaks(moves)}
    for number, move in enumerate(moves):
        print(describe(move))
        if move.seq in breaks:
            print(
                f"  note: champion was moved outside this CLI (e.g. in the MLflow UI) between "
                f"#{moves[number - 1].seq} (to {moves[number - 1].to_version}) and #{move.seq} "
                f"(from {move.from_version})"
            )
    champion = registry.champion()
    print(f"{CHAMPION}: version {champion.version if champion else '-'}")
    if moved_outside_cli(moves, champion.version if champion else None):
        print(
            f"note: champion was moved outside this CLI (e.g. in the MLflow UI) after #{moves[-1].seq}"
        )


def add_commands(commands: Any) -> None:
    gate = commands.add_parser("gate", help="print the gate report; exit 1 if the gate failed")
    gate.add_argument("--report", help="gate.json to read (default: reports/gate.json)")
    gate.set_defaults(handler=check_gate)

    promote_cmd = commands.add_parser("promote", help="point the champion alias at a version")
    promote_cmd.add_argument("version", help="a version number, or 'challenger'")
    promote_cmd.add_argument(
        "--force", action="store_true", help="promote although the gate failed"
    )
    promote_cmd.set_defaults(handler=promote)

    rollback_cmd = commands.add_parser(
        "rollback", help="champion back to the one before the last promotion"
    )
    rollback_cmd.add_argument("--to", help="version to restore instead ('previous' is the default)")
    rollback_cmd.set_defaults(handler=rollback)

    for command in (promote_cmd, rollback_cmd):
        command.add_argument(
            "--reason", help="recorded in the registry (promote: required with --force)"
        )
        command.add_argument(
            "--actor", help="who is acting (default: $GITHUB_ACTOR or the login name)"
        )

    commands.add_parser(
        "history", help="every champion move recorded in the registry"
    ).set_defaults(handler=history)
