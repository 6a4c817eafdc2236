"""What every command group shares: the registry named in params.yaml, who is acting,
and handing results to GitHub Actions."""

from __future__ import annotations

import argparse
import getpass
import os

from mlops_starter.config import Config
from mlops_starter.registry.model_registry import Registry


def registry_from(args: argparse.Namespace) -> Registry:
    return Registry.connect(Config.from_yaml(args.params).mlflow.registered_model)


def actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def append_to_github_file(variable: str, text: str) -> None:
    """In GitHub Actions, hand results to later steps ($GITHUB_OUTPUT) and the job summary."""
    if target := os.environ.get(variable):
        with open(target, "a") as handle:
            handle.write(text)
