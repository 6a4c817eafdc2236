"""`mlops monitor | monitor-demo`: check the prediction log against the served version's
training reference; the demo sends drifted batches through the served champion first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_starter.cli.common import append_to_github_file, registry_from
from mlops_starter.config import Config
from mlops_starter.data.demo import DRIFT_SCENARIOS
from mlops_starter.errors import PipelineError

MONITOR_ALERT_EXIT_CODE = 3  # distinct from a failed gate (1) and a bad input (2)


def _print_alerts(report: dict[str, Any], heading: str) -> None:
    alerts = report["alerts"]
    print(f"{heading}: {len(alerts)} alert(s)" if alerts else f"{heading}: no alerts")
    for alert in alerts:
        print(f"  ALERT {alert['check']}: {alert['message']}")


def monitor(args: argparse.Namespace) -> None:
    """Check the prediction log against the served version's training reference."""
    import httpx

    from mlops_starter.monitoring.checks import run_checks
    from mlops_starter.monitoring.inputs import load_reference, read_prediction_log
    from mlops_starter.monitoring.report import write_report

    cfg = Config.from_yaml(args.params)
    log = read_prediction_log(args.log)
    version = args.version or str(log.sort_values("timestamp")["model_version"].iloc[-1])
    reference = load_reference(registry_from(args), version)
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
    append_to_github_file("GITHUB_STEP_SUMMARY", f"monitoring: {len(report['alerts'])} alert(s)\n")
    if report["alerts"]:
        sys.exit(MONITOR_ALERT_EXIT_CODE)


def monitor_demo(args: argparse.Namespace) -> None:
    """Drifted batches through the served champion, then the monitor on each."""
    from mlops_starter.monitoring.demo import run_demo

    scenarios = list(DRIFT_SCENARIOS) if args.scenario == "all" else [args.scenario]
    reports = run_demo(Config.from_yaml(args.params), scenarios, args.rows, args.seed, args.out)
    for scenario, report in reports.items():
        _print_alerts(report, f"scenario {scenario}")
    print(f"reports: {args.out}/<scenario>/monitoring.html")


def add_commands(commands: Any) -> None:
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

    demo_cmd = commands.add_parser("monitor-demo", help="drifted batches through the service")
    demo_cmd.add_argument("--scenario", choices=[*DRIFT_SCENARIOS, "all"], default="all")
    demo_cmd.add_argument("--rows", type=int, default=3000, help="records per scenario")
    demo_cmd.add_argument("--seed", type=int, default=100)
    demo_cmd.add_argument("--out", default="build/monitor-demo")
    demo_cmd.set_defaults(handler=monitor_demo)
