"""`mlops monitor | monitor-demo | experiment report | experiment conclude`: check the
prediction log against the served version's training reference (the demo sends drifted
batches through the served champion first); decide a live experiment on its matured
labels, and act on the verdict."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_starter.cli.common import actor, append_to_github_file, registry_from
from mlops_starter.config import Config
from mlops_starter.data.demo import DRIFT_SCENARIOS
from mlops_starter.errors import PipelineError

if TYPE_CHECKING:
    from mlops_starter.monitoring.exported import ReportMetrics
    from mlops_starter.monitoring.incremental import MonitorState

MONITOR_ALERT_EXIT_CODE = 3  # distinct from a failed gate (1) and a bad input (2)


def _print_alerts(report: dict[str, Any], heading: str) -> None:
    alerts = report["alerts"]
    print(f"{heading}: {len(alerts)} alert(s)" if alerts else f"{heading}: no alerts")
    for alert in alerts:
        began = alert["began"][:16].replace("T", " ")
        print(f"  ALERT {alert['check']} since {began}: {alert['message']}")


def monitor(args: argparse.Namespace) -> None:
    """Check the prediction log against the served version's training reference: read
    the lines written since the last run (the state in `--state`), check again the
    windows they touched, and write the page; with --follow, keep doing so."""
    from mlops_starter.monitoring.exported import ReportMetrics, serve_metrics
    from mlops_starter.monitoring.incremental import MonitorState
    from mlops_starter.monitoring.notify import post_alerts

    cfg = Config.from_yaml(args.params)
    if args.experiment and not Path(args.experiment).is_file():
        raise PipelineError(f"--experiment {args.experiment} not found")
    if args.export_metrics and args.follow is None:
        raise PipelineError("--export-metrics serves figures that --follow keeps fresh: add it")
    registry = registry_from(args)
    state = MonitorState(args.state or Path(args.out) / "state", cfg.monitor.window, args.log)
    if state.started_afresh:
        print(f"{state.folder} was kept for another log or window: reading the log anew")
    posted: set[tuple[str, str, str]] = set()
    exported = ReportMetrics(cfg.monitor)
    if args.export_metrics:
        serve_metrics(args.export_metrics, exported)
        print(f"metrics for Prometheus: http://{args.export_metrics}/metrics", flush=True)
    stop = threading.Event()
    if args.follow is not None:  # Ctrl-C (or a TERM) stops it after the pass under way
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, lambda *_: stop.set())
    while True:
        report, page = _monitor_once(args, cfg, registry, state, exported)
        alerts = {(a["check"], a["subject"], a["began"]) for a in report["alerts"]}
        if alerts - posted and post_alerts(
            report, cfg.monitor.notify, str(page.resolve()), os.environ
        ):
            print(f"alerts posted to ${cfg.monitor.notify.webhook_env}", flush=True)
        posted = alerts  # --follow posts again only when an alert is new
        if args.follow is None:
            break
        if stop.wait(args.follow) or stop.is_set():
            print("stopped following the log", flush=True)
            return
    retrain = report["retrain"]
    append_to_github_file("GITHUB_OUTPUT", f"retrain={str(retrain['due']).lower()}\n")
    append_to_github_file("GITHUB_STEP_SUMMARY", f"monitoring: {len(report['alerts'])} alert(s)\n")
    if report["alerts"]:
        sys.exit(MONITOR_ALERT_EXIT_CODE)


def _monitor_once(
    args: argparse.Namespace,
    cfg: Config,
    registry: Any,
    state: MonitorState,
    exported: ReportMetrics,
) -> tuple[dict[str, Any], Path]:
    """One pass: the new lines read, the report over every window, its figures exported,
    the page written."""
    import httpx

    from mlops_starter.monitoring.inputs import MonitorError, load_reference, served_version
    from mlops_starter.monitoring.report import write_report
    from mlops_starter.storage import read_json

    new_lines = state.read_new()
    if not state.segments:
        raise MonitorError(f"the prediction log {args.log} holds no entries")
    newest = max(state.segments, key=pd.Timestamp)
    reference = load_reference(registry, args.version or served_version(state.rows(newest)))
    labels = _read_labels(args.labels) if args.labels else None
    metrics_text = httpx.get(f"{args.metrics_url}/metrics").text if args.metrics_url else None
    report = state.report(reference, cfg.monitor, labels, cfg.data.target, metrics_text)
    if args.experiment:  # the verdict `mlops experiment report` wrote, as a section
        report["experiment"] = read_json(args.experiment)
    exported.update(report)  # before the page: whoever sees the page finds these figures
    current = report["windows"][report["current"]]
    page = write_report(report, state.rows(current["start"]), reference, args.out)
    _print_alerts(
        report,
        f"{reference.model} version {reference.version}: {new_lines} new records read, "
        f"{report['records']} in {len(report['windows'])} window(s) of {report['window']}; "
        f"the current window, from {current['start'][:16].replace('T', ' ')}, has "
        f"{current['records']}",
    )
    retrain = report["retrain"]
    if retrain["due"]:
        print(f"RETRAIN due: {retrain['rule']} holds ({len(retrain['alerting_windows'])} windows)")
    print(f"report: {page} (figures: {page.with_suffix('.json')})", flush=True)
    return report, page


def _listen_address(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT, like 127.0.0.1:9108")
    return value


def monitor_demo(args: argparse.Namespace) -> None:
    """Drifted batches through the served champion, then the monitor on each."""
    from mlops_starter.monitoring.demo import run_demo

    scenarios = list(DRIFT_SCENARIOS) if args.scenario == "all" else [args.scenario]
    reports = run_demo(
        Config.from_yaml(args.params),
        scenarios,
        args.rows,
        args.seed,
        args.out,
        args.days,
        args.drift_day,
    )
    for scenario, report in reports.items():
        _print_alerts(report, f"scenario {scenario}")
    print(f"reports: {args.out}/<scenario>/monitoring.html")


def _read_labels(path_text: str) -> pd.DataFrame:
    path = Path(path_text)
    if not path.is_file():
        raise PipelineError(f"labels file {path} not found")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def experiment_report(args: argparse.Namespace) -> None:
    """The experiment's verdict on the labels that have matured: better, worse or not
    yet decided (monitoring/experiment.py). Exit 0 whatever the verdict."""
    from mlops_starter.monitoring.experiment import decide, matured
    from mlops_starter.monitoring.inputs import answers_in_log, read_prediction_log
    from mlops_starter.storage import write_json
    from mlops_starter.tasks import TASKS

    cfg = Config.from_yaml(args.params)
    settings = cfg.serve.experiment
    if not cfg.data.id_column:
        raise PipelineError("an experiment joins labels by data.id_column: set it in params.yaml")
    champion, challenger = args.champion, args.challenger
    if champion is None or challenger is None:
        registry = registry_from(args)
        champion = champion or str(registry.version("champion").version)
        challenger = challenger or str(registry.version("challenger").version)
    labels = _read_labels(args.labels).rename(columns={cfg.data.id_column: "id"})
    as_of = pd.Timestamp(args.as_of, tz="UTC") if args.as_of else pd.Timestamp.now(tz="UTC")
    log = read_prediction_log(args.log)
    mode = args.mode or _experiment_mode(settings.mode, log)
    answers = answers_in_log(log, cfg.data.positive_label)
    rows = matured(log, labels, cfg.data.target, settings, as_of)
    found = decide(
        rows,
        mode,
        champion,
        challenger,
        settings,
        TASKS[answers.task].compared(cfg.gate.compare_metric),
        answers,
    )
    found["as_of"] = as_of.isoformat()
    write_json(Path(args.out) / "experiment.json", found)
    effect = found["effect"]
    still = found["rows_still_needed"]
    after = ""
    if found["verdict"] == "undecided" and found["within_min_detectable_effect"]:
        after = (
            f"; the interval lies within +-{settings.min_detectable_effect} "
            "(min_detectable_effect): any difference is smaller than the gain worth finding"
        )
    elif found["verdict"] == "undecided" and still is not None:
        after = f"; about {still} more rows needed"
    print(
        f"experiment {found['experiment']} ({found['mode']}): challenger {found['challenger']} vs "
        f"champion {found['champion']}: {found['verdict'].upper()} on {found['matured_rows']} "
        f"matured rows; gain per row {effect['estimate']:.4g} "
        f"[{effect['low']:.4g}, {effect['high']:.4g}] at alpha {effect['alpha']}{after}"
    )
    append_to_github_file("GITHUB_OUTPUT", f"verdict={found['verdict']}\n")


def _experiment_mode(configured: str, log: pd.DataFrame) -> str:
    """serve.experiment.mode, else the mode the log's arms show: a bento built with
    `mlops package --mode` (retrain.yml's shadow experiment) ran one params.yaml leaves off."""
    from mlops_starter.serving.routing import CHALLENGER_ARM, SHADOW_ARM

    if configured != "off":
        return configured
    arms = set(log["arm"].dropna()) if "arm" in log else set()
    for arm, mode in ((SHADOW_ARM, "shadow"), (CHALLENGER_ARM, "split")):
        if arm in arms:
            return mode
    raise PipelineError(
        "serve.experiment.mode is off and the log holds no experiment's rows: name the "
        "experiment's mode with --mode shadow|split"
    )


def experiment_conclude(args: argparse.Namespace) -> None:
    """Act on a verdict `mlops experiment report` wrote: better promotes the challenger,
    worse ends the experiment with the champion kept, undecided moves nothing. Each move
    goes into the alias log with the verdict (`mlops history`)."""
    from mlops_starter.cli.registry import describe
    from mlops_starter.storage import read_json

    if not Path(args.report).is_file():
        raise PipelineError(f"{args.report} not found: run `mlops experiment report` first")
    found = read_json(args.report)
    verdict = found["verdict"]
    if verdict == "undecided":
        print(f"experiment {found['experiment']}: not yet decided; nothing moves")
        return
    registry = registry_from(args)
    effect = found["effect"]
    reason = (
        f"experiment {found['experiment']} ({found['mode']}, as of {found['as_of']}): "
        f"challenger {found['challenger']} {verdict} on {found['matured_rows']} matured rows, "
        f"gain per row {effect['estimate']:.4g} [{effect['low']:.4g}, {effect['high']:.4g}] "
        f"at alpha {effect['alpha']}"
    )
    # The report compared against one champion: act only if it still is champion when the
    # move is made (checked under the registry's alias lock).
    expected = str(found["champion"])
    if verdict == "better":
        move = registry.promote(
            found["challenger"], actor(args), reason, by_experiment=True, expect_champion=expected
        )
    else:
        move = registry.end_experiment(
            found["experiment"], found["challenger"], actor(args), reason, expect_champion=expected
        )
    print(
        describe(move)
        if move
        else f"nothing to do: experiment {found['experiment']} was already acted on"
    )
    append_to_github_file("GITHUB_OUTPUT", f"moved={str(move is not None).lower()}\n")


def add_commands(commands: Any) -> None:
    experiment_cmd = commands.add_parser(
        "experiment", help="the live experiment's verdict (serve.experiment in params.yaml)"
    )
    actions = experiment_cmd.add_subparsers(dest="action", required=True)
    report_cmd = actions.add_parser("report", help="better, worse or undecided, on matured labels")
    report_cmd.add_argument(
        "--mode",
        choices=["shadow", "split"],
        help="shadow: both versions scored every row; split: each row went to one version "
        "(default: serve.experiment.mode)",
    )
    report_cmd.add_argument(
        "--log", nargs="+", default=["predictions/predictions-*.jsonl*"], help="log file globs"
    )
    report_cmd.add_argument(
        "--labels", required=True, help="CSV/Parquet: the id and target columns"
    )
    report_cmd.add_argument("--champion", help="version (default: the registry's champion alias)")
    report_cmd.add_argument("--challenger", help="version (default: the challenger alias)")
    report_cmd.add_argument("--as-of", help="the report's time (default: now), e.g. 2026-06-01")
    report_cmd.add_argument("--out", default="build/experiment", help="where experiment.json goes")
    report_cmd.set_defaults(handler=experiment_report)
    conclude_cmd = actions.add_parser(
        "conclude", help="better: promote the challenger; worse: end, champion kept"
    )
    conclude_cmd.add_argument(
        "--report", default="build/experiment/experiment.json", help="the verdict to act on"
    )
    conclude_cmd.add_argument(
        "--actor", help="who is acting (default: $GITHUB_ACTOR or the login name)"
    )
    conclude_cmd.set_defaults(handler=experiment_conclude)

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
    monitor_cmd.add_argument(
        "--state",
        help="what was read so far, default OUT/state; a run reads only newer lines "
        "(delete it to read all again)",
    )
    monitor_cmd.add_argument(
        "--follow",
        type=float,
        metavar="SECONDS",
        help="keep watching: read new lines every SECONDS, rewrite the page, post new alerts",
    )
    monitor_cmd.add_argument(
        "--export-metrics",
        type=_listen_address,
        metavar="HOST:PORT",
        help="with --follow: serve the current figures to Prometheus at /metrics "
        "(the Grafana dashboard's monitoring panels)",
    )
    monitor_cmd.add_argument(
        "--experiment", help="experiment.json from `mlops experiment report`, as a section"
    )
    monitor_cmd.set_defaults(handler=monitor)

    demo_cmd = commands.add_parser(
        "monitor-demo", help="days of traffic through the service, drifting part-way"
    )
    demo_cmd.add_argument(
        "--scenario", choices=[*DRIFT_SCENARIOS, "all"], default="all", help="which drift to send"
    )
    demo_cmd.add_argument("--rows", type=int, default=500, help="records per day")
    demo_cmd.add_argument("--days", type=int, default=10, help="days of traffic, ending yesterday")
    demo_cmd.add_argument(
        "--drift-day", type=int, default=7, help="the first drifted day, counted from 0"
    )
    demo_cmd.add_argument("--seed", type=int, default=100, help="seeds the drifted batches")
    demo_cmd.add_argument("--out", default="build/monitor-demo", help="report folder")
    demo_cmd.set_defaults(handler=monitor_demo)
