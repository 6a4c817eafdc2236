"""`mlops smoke | package | score | serve`: the serving commands, each on a registry version
(the champion by default)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from pydantic import ValidationError

from mlops_starter.cli.common import append_to_github_file, registry_from
from mlops_starter.config import Config, DatabaseSource
from mlops_starter.errors import PipelineError
from mlops_starter.registry.model_registry import CHAMPION, Registry, same_version
from mlops_starter.storage import LoggedModel, json_records


def _expected_answer(
    registry: Registry, champion: ModelVersion, model: LoggedModel, example: pd.DataFrame
) -> dict[str, list[Any]]:
    """The champion's answer to its input example, as the service answers (its task's
    fields), refused when malformed: a row short, a number not finite, a probability
    outside [0, 1]."""
    answers = registry.answers(champion, registry.serving_metadata(champion))
    raw = answers.pipeline_raw(model.pipeline, example)
    malformed = len(raw) != len(example) or not np.isfinite(raw).all()
    if answers.task != "regression":
        malformed = malformed or not ((raw >= 0) & (raw <= 1)).all()
    if malformed:
        raise PipelineError(
            f"champion version {champion.version} returned a malformed answer: {raw!r}"
        )
    return answers.per_row(answers.decide(raw))


def _same(served: Any, expected: Any) -> bool:
    """One answer field alike: numbers within 1e-6, classes' probabilities each so."""
    if isinstance(expected, dict):
        return served.keys() == expected.keys() and all(
            _same(served[key], value) for key, value in expected.items()
        )
    if isinstance(expected, float):
        return bool(np.isclose(served, expected, rtol=1e-9, atol=1e-6))
    return bool(served == expected)


def smoke(args: argparse.Namespace) -> None:
    """Score the champion's logged input example: loaded from the registry, or with
    --served, through a freshly built bento of it served over HTTP."""

    registry = registry_from(args)
    champion = registry.champion()
    if champion is None:
        raise PipelineError(f"'{registry.name}' has no champion to test")
    model = LoggedModel.load(f"models:/{registry.name}/{champion.version}")
    example = model.input_example()
    if example is None:
        raise PipelineError(f"version {champion.version} was logged without an input example")
    expected = _expected_answer(registry, champion, model, example)
    if not args.served:
        print(f"smoke test passed: champion version {champion.version} scored {len(example)} rows")
        return
    served = _served_answer(args, registry, champion, example)
    if not all(
        _same(row[name], values[i])
        for name, values in expected.items()
        for i, row in enumerate(served)
    ):
        raise PipelineError(
            f"the served champion disagrees with the registry model: {served} vs {expected}"
        )
    print(
        f"served smoke test passed: bento of champion version {champion.version} answered "
        f"/readyz, /metadata and /metrics and scored {len(example)} rows as the registry model"
    )


def _served_answer(
    args: argparse.Namespace, registry: Registry, champion: ModelVersion, example: pd.DataFrame
) -> list[dict[str, Any]]:
    """Build the champion's bento, serve it on a free port, check its endpoints."""
    import httpx

    from mlops_starter.serving.auth import api_key, authorization
    from mlops_starter.serving.packaging import build_bento, import_version
    from mlops_starter.serving.process import bentoml_server, free_port

    cfg = Config.from_yaml(args.params)
    bento = build_bento(import_version(registry, champion), cfg.serve, extensions=cfg.extensions)
    headers = authorization(api_key(cfg.serve.auth, os.environ))
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "MLOPS_PREDICTION_LOG_DIR": f"{scratch}/predictions"}
        with bentoml_server(str(bento.tag), free_port(), f"{scratch}/serve.log", env) as url:
            served_version = httpx.get(f"{url}/metadata", headers=headers).json()["version"]
            if not same_version(served_version, champion.version):
                raise PipelineError(
                    f"bento serves version {served_version}, not {champion.version}"
                )
            answer = httpx.post(
                f"{url}/predict", json={"records": json_records(example)}, headers=headers
            )
            if answer.status_code != 200:
                raise PipelineError(f"/predict answered {answer.status_code}: {answer.text}")
            if f'version="{champion.version}"' not in httpx.get(f"{url}/metrics").text:
                raise PipelineError("/metrics does not report the served model version")
    print(f"bento {bento.tag} is the champion's; containerize it with `make containerize`")
    served: list[dict[str, Any]] = answer.json()
    return served


def containerize(args: argparse.Namespace) -> None:
    """This clone's bento as an image (or, with --version, a registry version's bento, or
    with --bento, one in the store such as an experiment's)."""
    from mlops_starter.serving.container import clone_bento, find_engine
    from mlops_starter.serving.container import containerize as build_image
    from mlops_starter.serving.packaging import build_bento, import_version

    if args.bento:
        bento = args.bento
    elif args.version:
        registry = registry_from(args)
        version = registry.version(args.version)
        cfg = Config.from_yaml(args.params)
        bento = str(
            build_bento(import_version(registry, version), cfg.serve, extensions=cfg.extensions).tag
        )
    else:
        bento = clone_bento()
    engine = find_engine()
    image = build_image(bento, engine, build_base_locally=args.local_base)
    append_to_github_file("GITHUB_OUTPUT", f"image={image}\n")
    setting = "".join(f"{k}={v} " for k, v in engine.env.items())
    print(
        f"built image {image} with {engine.name}; run it: "
        f"{setting}{engine.name} run --rm -p 3000:3000 {image}"
    )


def package(args: argparse.Namespace) -> None:
    """Import a registry version into the BentoML store and build its bento; with
    --challenger, a bento of the experiment that serve.experiment describes."""
    from mlops_starter.serving.packaging import build_bento, import_challenger, import_version

    cfg = Config.from_yaml(args.params)
    settings = cfg.serve
    if args.mode:  # this bento's experiment, params.yaml unchanged (retrain.yml's shadow)
        if not args.challenger:
            raise PipelineError("--mode is the experiment's with --challenger: add it")
        experiment = settings.experiment.model_copy(update={"mode": args.mode})
        settings = settings.model_copy(update={"experiment": experiment})
    registry = registry_from(args)
    version = registry.version(args.version)
    challenger_tag, beside = None, ""
    if args.challenger:
        challenger = registry.version(args.challenger)
        challenger_tag = import_challenger(registry, version, challenger, settings)
        beside = f" with challenger version {challenger.version} ({settings.experiment.mode})"
    bento = build_bento(
        import_version(registry, version),
        settings,
        challenger_tag=challenger_tag,
        extensions=cfg.extensions,
    )
    append_to_github_file("GITHUB_OUTPUT", f"bento={bento.tag}\n")
    print(f"built bento {bento.tag} of {registry.name} version {version.version}{beside}")


def serve(args: argparse.Namespace) -> None:
    """Serve a registry version (default: the champion) from this checkout's code."""
    from mlops_starter.serving.auth import api_key
    from mlops_starter.serving.packaging import SERVICE, import_version, serve_arguments
    from mlops_starter.serving.process import write_arguments

    cfg = Config.from_yaml(args.params)
    key = api_key(cfg.serve.auth, os.environ)  # a key that cannot work stops here, in one line
    registry = registry_from(args)
    version = registry.version(args.version)
    model_tag = import_version(registry, version)
    arguments = write_arguments(
        serve_arguments(model_tag, cfg.serve, extensions=cfg.extensions), "build/serve-args.json"
    )
    port = str(args.port or cfg.serve.port)
    print(
        f"serving {registry.name} version {version.version} on http://127.0.0.1:{port}"
        + (" (API key required)" if key else "")
    )
    bentoml = str(Path(sys.executable).parent / "bentoml")
    os.execv(bentoml, [bentoml, "serve", SERVICE, "--port", port, "--arg-file", str(arguments)])  # noqa: S606 (replaces this process with bentoml serve; argument list)


def score(args: argparse.Namespace) -> None:
    """Score a table (a file or a database's rows) with a registry version into Parquet,
    reading it as ingest would: data.csv's dialect and data.na_values from params.yaml."""
    from mlops_starter.data.sources import open_table
    from mlops_starter.serving.batch import score_file

    source: Any = args.input
    if args.query or args.table:
        if not args.db_url:
            raise PipelineError("--query and --table read the database --db-url names: give it")
        try:
            source = DatabaseSource(
                url=args.db_url, query=args.query, table=args.table, password_env=args.password_env
            )
        except ValidationError as invalid:
            raise PipelineError(f"--db-url: {invalid.errors()[0]['msg']}") from None
    data = Config.from_yaml(args.params).data
    summary = score_file(
        registry_from(args),
        args.version,
        open_table(source, data),
        args.output,
        args.chunk_rows,
        data.na_values,
    )
    print(
        f"scored {summary['rows']} rows with {summary['model']} version {summary['version']} "
        f"({summary['scorer']['kind']} scorer) into {summary['output']}"
    )
    for column, kinds in summary["issues"].items():
        print(f"  {column}: " + ", ".join(f"{kind} {count}" for kind, count in kinds.items()))
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n")


def add_commands(commands: Any) -> None:
    smoke_cmd = commands.add_parser("smoke", help="score the champion's logged input example")
    smoke_cmd.add_argument(
        "--served", action="store_true", help="through a bento of it, served over HTTP"
    )
    smoke_cmd.set_defaults(handler=smoke)

    package_cmd = commands.add_parser("package", help="build a bento of a registry version")
    package_cmd.add_argument("--version", default=CHAMPION, help="number, champion or challenger")
    package_cmd.add_argument(
        "--challenger", help="a second version (number or alias) for serve.experiment.mode"
    )
    package_cmd.add_argument(
        "--mode",
        choices=["shadow", "split"],
        help="with --challenger: this bento's experiment mode instead of serve.experiment.mode",
    )
    package_cmd.set_defaults(handler=package)

    image_cmd = commands.add_parser(
        "containerize",
        help="build an image of this clone's bento (models/bento.json) with Docker or podman",
    )
    source = image_cmd.add_mutually_exclusive_group()
    source.add_argument(
        "--version", help="instead, a registry version's bento: number, champion or challenger"
    )
    source.add_argument(
        "--bento", help="instead, a bento in the store by tag (`make bento-experiment` prints it)"
    )
    image_cmd.add_argument(
        "--local-base",
        action="store_true",
        help="if the base image cannot be pulled, build it from Debian's packages (root, debootstrap)",
    )
    image_cmd.set_defaults(handler=containerize)

    score_cmd = commands.add_parser(
        "score",
        help="batch-score a CSV or Parquet table into Parquet: id, the answer as /predict gives it, version",
    )
    scored = score_cmd.add_mutually_exclusive_group(required=True)
    scored.add_argument("--input", help="the table to score (.csv or .parquet)")
    scored.add_argument("--query", help="or a SELECT on the database at --db-url")
    scored.add_argument("--table", help="or a table of the database at --db-url")
    score_cmd.add_argument("--db-url", help="the database (its password: --password-env)")
    score_cmd.add_argument(
        "--password-env",
        default="MLOPS_DB_PASSWORD",
        help="environment variable holding the database's password",
    )
    score_cmd.add_argument("--output", required=True, help="the Parquet file to write")
    score_cmd.add_argument("--version", default=CHAMPION, help="number, champion or challenger")
    score_cmd.add_argument("--chunk-rows", type=int, default=100_000, help="rows held at once")
    score_cmd.add_argument("--summary", help="also write the run's summary here (JSON)")
    score_cmd.set_defaults(handler=score)

    serve_cmd = commands.add_parser("serve", help="serve a registry version with BentoML")
    serve_cmd.add_argument("--version", default=CHAMPION, help="number, champion or challenger")
    serve_cmd.add_argument("--port", type=int, help="default: serve.port in params.yaml")
    serve_cmd.set_defaults(handler=serve)
