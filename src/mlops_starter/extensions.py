"""A team's own modules (params.yaml `extensions`), imported before any stage or command
looks in a registry: each registers its table sources, monitoring checks or candidates
there as it is imported, so adding one never means editing this package."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from mlops_starter.errors import ConfigError


def import_extensions(modules: list[str], root: Path) -> None:
    """Import each of `modules` (dotted names), found on PYTHONPATH or under `root`, the
    folder params.yaml is in; a module that is missing or fails to import stops with its
    name and what went wrong."""
    if modules and str(root) not in sys.path:
        sys.path.append(str(root))
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name and name.startswith(error.name):
                raise ConfigError(
                    f"extensions: no module '{name}' at {root} or on PYTHONPATH"
                ) from None
            raise ConfigError(f"extensions: importing '{name}' failed: {error}") from None
        except Exception as error:
            raise ConfigError(
                f"extensions: importing '{name}' failed: {type(error).__name__}: {error}"
            ) from None
