"""`mlops clean-tree`: after `make run`, no committed file may have changed. When one has,
say which, and by how much, so a user can tell float noise from a real difference."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
from ruamel.yaml import YAML

NUMBER = (int, float)


def changed_files() -> list[str]:
    """Files git sees as changed, added or deleted against HEAD (git-ignored ones aside)."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],  # noqa: S607 (a tool found on PATH by design)
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line[3:].split(" -> ")[-1] for line in status.splitlines()]


def committed_text(path: str) -> str | None:
    shown = subprocess.run(  # noqa: S603 (argument list, no shell)
        ["git", "show", f"HEAD:{path}"],  # noqa: S607 (a tool found on PATH by design)
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    return shown.stdout if shown.returncode == 0 else None


def leaves(value: Any, where: str = "") -> dict[str, Any]:
    """Every scalar in nested JSON, by its path (`candidates.xgboost.cv_pr_auc`)."""
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in leaves(item, f"{where}.{key}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in leaves(item, f"{where}[{i}]").items()
        }
    return {where.lstrip("."): value}


def largest_difference(pairs: list[tuple[str, Any, Any]]) -> str:
    """'largest absolute difference X at WHERE (OLD -> NEW)', plus how many values moved."""
    numeric = [
        (abs(new - old), where, old, new)
        for where, old, new in pairs
        if isinstance(old, NUMBER) and isinstance(new, NUMBER) and not isinstance(old, bool)
    ]
    parts = []
    if numeric:
        size, where, old, new = max(numeric, key=lambda item: item[0])
        parts.append(f"largest absolute difference {size:.3g} at {where} ({old!r} -> {new!r})")
    if others := len(pairs) - len(numeric):
        parts.append(f"{others} non-numeric value(s) changed")
    return f"{len(pairs)} value(s) changed; " + "; ".join(parts)


def json_difference(old: str, new: str) -> str:
    before, after = leaves(json.loads(old)), leaves(json.loads(new))
    moved = [(k, before.get(k), after.get(k)) for k in before.keys() | after.keys()]
    return largest_difference(sorted(p for p in moved if p[1] != p[2]))


def csv_difference(old: str, new: str) -> str:
    before, after = pd.read_csv(io.StringIO(old)), pd.read_csv(io.StringIO(new))
    if before.shape != after.shape or list(before.columns) != list(after.columns):
        return f"shape {before.shape} -> {after.shape}, columns {list(after.columns)}"
    old_values, new_values = before.to_numpy(dtype=object), after.to_numpy(dtype=object)
    moved = (old_values != new_values) & ~(before.isna().to_numpy() & after.isna().to_numpy())
    return largest_difference(
        [
            (
                f"row {row + 2} {before.columns[c]}",
                _plain(old_values[row, c]),
                _plain(new_values[row, c]),
            )
            for row, c in zip(*np.nonzero(moved), strict=True)
        ]
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def lock_difference(old: str, new: str) -> str:
    """Which stage's outputs (or inputs) got another hash in dvc.lock."""
    yaml = YAML(typ="safe")
    before, after = yaml.load(old)["stages"], yaml.load(new)["stages"]
    lines = []
    for stage in sorted(before.keys() | after.keys()):
        hashes = [
            {
                f"{kind} {entry['path']}": entry.get("md5")
                for kind in ("deps", "outs")
                for entry in side.get(stage, {}).get(kind, [])
            }
            for side in (before, after)
        ]
        for entry in sorted(hashes[0].keys() | hashes[1].keys()):
            if hashes[0].get(entry) != hashes[1].get(entry):
                lines.append(
                    f"stage {stage}: {entry} {hashes[0].get(entry)} -> {hashes[1].get(entry)}"
                )
        if before.get(stage, {}).get("params") != after.get(stage, {}).get("params"):
            lines.append(f"stage {stage}: params changed")
    return "".join(f"\n    {line}" for line in lines) or " formatting only"


def describe_change(path: str, old: str | None, new: str | None) -> str:
    """One line saying how `path` changed between its committed text and the working tree."""
    if old is None:
        return f"{path}: new, not committed"
    if new is None:
        return f"{path}: deleted"
    try:
        if path.endswith("dvc.lock"):
            return f"{path}:{lock_difference(old, new)}"
        if path.endswith(".json"):
            return f"{path}: {json_difference(old, new)}"
        if path.endswith(".csv"):
            return f"{path}: {csv_difference(old, new)}"
    except (ValueError, KeyError, TypeError) as exc:
        return f"{path}: changed (could not compare values: {exc})"
    return f"{path}: changed"


def clean_tree(_: argparse.Namespace) -> None:
    changed = changed_files()
    if not changed:
        return
    print("committed files changed: outputs are not reproducible here", file=sys.stderr)
    for path in changed:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                new: str | None = handle.read()
        except FileNotFoundError:
            new = None
        print(f"  {describe_change(path, committed_text(path), new)}", file=sys.stderr)
    print(
        "Differences at the 6th significant digit are float noise that escaped the rounding "
        "(docs/explanation/reproducibility.md); larger ones are a real change.",
        file=sys.stderr,
    )
    sys.exit(1)


def add_commands(commands: Any) -> None:
    check = commands.add_parser(
        "clean-tree", help="fail, naming each changed committed file and by how much"
    )
    check.set_defaults(handler=clean_tree)
