"""`mlops`: the commands that live outside the DAG."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from mlops_starter.config import DEFAULT_PARAMS, Config
from mlops_starter.errors import PipelineError
from mlops_starter.registry import CHAMPION, AliasMove, Registry
from mlops_starter.runner import EXPECTED_FAILURE_EXIT_CODE
from mlops_starter.storage import read_json, write_json
from mlops_starter.validation import profile_suite

GATE_FAILED_EXIT_CODE = 1
MONITOR_ALERT_EXIT_CODE = 3  # distinct from a failed gate (1) and a bad input (2)


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
        _append_to_github_file("GITHUB_STEP_SUMMARY", markdown.read_text())
    _append_to_github_file(
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


def _append_to_github_file(variable: str, text: str) -> None:
    """In GitHub Actions, hand the gate's result to later steps and to the job summary."""
    if target := os.environ.get(variable):
        with open(target, "a") as handle:
            handle.write(text)


def _registry(args: argparse.Namespace) -> Registry:
    return Registry.connect(Config.from_yaml(args.params).mlflow.registered_model)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def _describe(move: AliasMove) -> str:
    return (
        f"#{move.seq} {move.at} {move.action}: champion {move.from_version or '-'} -> {move.to_version} "
        f"by {move.actor}: {move.reason}"
    )


def promote(args: argparse.Namespace) -> None:
    registry = _registry(args)
    move = registry.promote(args.version, _actor(args), args.reason or "", force=args.force)
    print(
        _describe(move)
        if move
        else f"nothing to do: version {registry.version(args.version).version} is champion"
    )


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """DataFrame rows as JSON records, missing values as null."""
    return json.loads(frame.to_json(orient="records"))


def _check_probabilities(proba: np.ndarray, rows: int, what: str) -> None:
    if proba.shape != (rows,) or not ((proba >= 0) & (proba <= 1)).all():
        raise PipelineError(f"{what} returned malformed probabilities: {proba!r}")


def smoke(args: argparse.Namespace) -> None:
    """Score the champion's logged input example: loaded from the registry, or with
    --served, through a freshly built bento of it served over HTTP."""
    import mlflow  # imported here: the other commands start faster without it

    registry = _registry(args)
    champion = registry.champion()
    if champion is None:
        raise PipelineError(f"'{registry.name}' has no champion to test")
    model = mlflow.pyfunc.load_model(f"models:/{registry.name}/{champion.version}")
    example = model.input_example
    if example is None:
        raise PipelineError(f"version {champion.version} was logged without an input example")
    expected = model.predict(example)[:, 1]
    _check_probabilities(expected, len(example), f"champion version {champion.version}")
    if not args.served:
        print(f"smoke test passed: champion version {champion.version} scored {len(example)} rows")
        return
    served = _served_probabilities(args, registry, champion, example)
    if not np.allclose(served, expected, atol=1e-6):
        raise PipelineError(
            f"the served champion disagrees with the registry model: {served} vs {expected}"
        )
    print(
        f"served smoke test passed: bento of champion version {champion.version} answered "
        f"/readyz, /metadata and /metrics and scored {len(example)} rows as the registry model"
    )


def _served_probabilities(
    args: argparse.Namespace, registry: Registry, champion: ModelVersion, example: pd.DataFrame
) -> np.ndarray:
    """Build the champion's bento, serve it on a free port, check its endpoints."""
    import httpx

    from mlops_starter.packaging import build_bento, import_version
    from mlops_starter.served import bentoml_server, free_port

    cfg = Config.from_yaml(args.params)
    bento = build_bento(import_version(registry, champion), cfg.serve)
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "MLOPS_PREDICTION_LOG_DIR": f"{scratch}/predictions"}
        with bentoml_server(str(bento.tag), free_port(), f"{scratch}/serve.log", env) as url:
            served_version = httpx.get(f"{url}/metadata").json()["version"]
            if served_version != str(champion.version):
                raise PipelineError(
                    f"bento serves version {served_version}, not {champion.version}"
                )
            answer = httpx.post(f"{url}/predict", json={"records": _records(example)})
            if answer.status_code != 200:
                raise PipelineError(f"/predict answered {answer.status_code}: {answer.text}")
            if f'version="{champion.version}"' not in httpx.get(f"{url}/metrics").text:
                raise PipelineError("/metrics does not report the served model version")
    print(f"bento {bento.tag} is the champion's; containerize it with `make containerize`")
    return np.array([p["probability"] for p in answer.json()])


def package(args: argparse.Namespace) -> None:
    """Import a registry version into the BentoML store and build its bento."""
    from mlops_starter.packaging import build_bento, import_version

    registry = _registry(args)
    version = registry.version(args.version)
    bento = build_bento(import_version(registry, version), Config.from_yaml(args.params).serve)
    _append_to_github_file("GITHUB_OUTPUT", f"bento={bento.tag}\n")
    print(f"built bento {bento.tag} of {registry.name} version {version.version}")


def serve(args: argparse.Namespace) -> None:
    """Serve a registry version (default: the champion) from this checkout's code."""
    from mlops_starter.packaging import SERVICE, import_version, serve_arguments
    from mlops_starter.served import write_arguments

    cfg = Config.from_yaml(args.params)
    registry = _registry(args)
    version = registry.version(args.version)
    model_tag = import_version(registry, version)
    arguments = write_arguments(serve_arguments(model_tag, cfg.serve), "build/serve-args.json")
    port = str(args.port or cfg.serve.port)
    print(f"serving {registry.name} version {version.version} on http://127.0.0.1:{port}")
    bentoml = str(Path(sys.executable).parent / "bentoml")
    os.execv(bentoml, [bentoml, "serve", SERVICE, "--port", port, "--arg-file", str(arguments)])


def rollback(args: argparse.Namespace) -> None:
    registry = _registry(args)
    target = None if args.to in (None, "", "previous") else args.to
    move = registry.rollback(_actor(args), to_version=target, reason=args.reason or "")
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
        print(
            f"note: champion was moved outside this CLI (e.g. in the MLflow UI) after #{moves[-1].seq}"
        )


def _print_alerts(report: dict[str, Any], heading: str) -> None:
    alerts = report["alerts"]
    print(f"{heading}: {len(alerts)} alert(s)" if alerts else f"{heading}: no alerts")
    for alert in alerts:
        print(f"  ALERT {alert['check']}: {alert['message']}")


def monitor(args: argparse.Namespace) -> None:
    """Check the prediction log against the served version's training reference."""
    import httpx

    from mlops_starter.monitoring import load_reference, read_prediction_log, run_checks
    from mlops_starter.monitoring_report import write_report

    cfg = Config.from_yaml(args.params)
    log = read_prediction_log(args.log)
    version = args.version or str(log.sort_values("timestamp")["model_version"].iloc[-1])
    reference = load_reference(_registry(args), version)
    labels = None
    if args.labels:
        path = Path(args.labels)
        if not path.is_file():
            raise PipelineError(f"labels file {path} not found")
        labels = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    metrics_text = httpx.get(f"{args.metrics_url}/metrics").text if args.metrics_url else None
    report = run_checks(log, reference, cfg.monitor, labels, cfg.data.target, metrics_text)
    page = write_report(report, log, reference, args.out)
    _print_alerts(
        report, f"{reference.model} version {reference.version}, {report['records']} records"
    )
    print(f"report: {page} (figures: {page.with_suffix('.json')})")
    _append_to_github_file("GITHUB_STEP_SUMMARY", f"monitoring: {len(report['alerts'])} alert(s)\n")
    if report["alerts"]:
        sys.exit(MONITOR_ALERT_EXIT_CODE)


def monitor_demo(args: argparse.Namespace) -> None:
    """Drifted batches through the served champion, then the monitor on each."""
    from mlops_starter.data import DRIFT_SCENARIOS
    from mlops_starter.monitor_demo import run_demo

    scenarios = list(DRIFT_SCENARIOS) if args.scenario == "all" else [args.scenario]
    reports = run_demo(Config.from_yaml(args.params), scenarios, args.rows, args.seed, args.out)
    for scenario, report in reports.items():
        _print_alerts(report, f"scenario {scenario}")
    print(f"reports: {args.out}/<scenario>/monitoring.html")


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
        command.add_argument("--reason", help="recorded in the registry (required with --force)")
        command.add_argument(
            "--actor", help="who is acting (default: $GITHUB_ACTOR or the login name)"
        )

    commands.add_parser(
        "history", help="every champion move recorded in the registry"
    ).set_defaults(handler=history)
    smoke_cmd = commands.add_parser("smoke", help="score the champion's logged input example")
    smoke_cmd.add_argument(
        "--served", action="store_true", help="through a bento of it, served over HTTP"
    )
    smoke_cmd.set_defaults(handler=smoke)

    package_cmd = commands.add_parser("package", help="build a bento of a registry version")
    package_cmd.add_argument("--version", default=CHAMPION, help="number, champion or challenger")
    package_cmd.set_defaults(handler=package)

    serve_cmd = commands.add_parser("serve", help="serve a registry version with BentoML")
    serve_cmd.add_argument("--version", default=CHAMPION, help="number, champion or challenger")
    serve_cmd.add_argument("--port", type=int, help="default: serve.port in params.yaml")
    serve_cmd.set_defaults(handler=serve)

    monitor_cmd = commands.add_parser(
        "monitor", help=f"check the prediction log; exit {MONITOR_ALERT_EXIT_CODE} on an alert"
    )
    monitor_cmd.add_argument(
        "--log", nargs="+", default=["predictions/predictions-*.jsonl*"], help="log file globs"
    )
    monitor_cmd.add_argument("--labels", help="CSV/Parquet with the id and target columns")
    monitor_cmd.add_argument("--metrics-url", help="the service's base URL, for /metrics")
    monitor_cmd.add_argument("--version", help="model version (default: the newest in the log)")
    monitor_cmd.add_argument("--out", default="build/monitoring", help="report folder")
    monitor_cmd.set_defaults(handler=monitor)

    from mlops_starter.data import DRIFT_SCENARIOS

    demo_cmd = commands.add_parser("monitor-demo", help="drifted batches through the service")
    demo_cmd.add_argument("--scenario", choices=[*DRIFT_SCENARIOS, "all"], default="all")
    demo_cmd.add_argument("--rows", type=int, default=3000, help="records per scenario")
    demo_cmd.add_argument("--seed", type=int, default=100)
    demo_cmd.add_argument("--out", default="build/monitor-demo")
    demo_cmd.set_defaults(handler=monitor_demo)

    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except PipelineError as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        sys.exit(EXPECTED_FAILURE_EXIT_CODE)


if __name__ == "__main__":
    main()
