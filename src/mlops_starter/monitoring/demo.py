"""The monitoring demo: days of production traffic sent through the real service (a
bento of the champion), clean at first and drifted from a chosen day on, then the
monitor run on what it logged.

The days pass in a minute: each request id names its scenario and day
(`<scenario>-<day>-<n>`), and each day's entries are restamped onto that day, ending
yesterday, before the monitor reads them. Labels arrive LABEL_LAG_DAYS late, as they
do in production, so the newest days have only the estimate.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.demo import DEMO_ID, generate_production_batch
from mlops_starter.errors import PipelineError
from mlops_starter.monitoring.inputs import load_reference, log_lines, read_prediction_log
from mlops_starter.monitoring.report import write_report
from mlops_starter.monitoring.timeline import run_over_time
from mlops_starter.registry.model_registry import Registry
from mlops_starter.serving.auth import api_key, authorization
from mlops_starter.serving.packaging import build_bento, import_version
from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.storage import json_records, write_csv, write_text

REQUEST_ROWS = 100
LABEL_LAG_DAYS = 2


def send_batch(
    url: str, batch: pd.DataFrame, columns: list[str], prefix: str, headers: dict[str, str]
) -> int:
    """POST the batch in requests of REQUEST_ROWS records; returns how many were refused."""
    records = json_records(batch[columns])
    refused = 0
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        for start in range(0, len(records), REQUEST_ROWS):
            answer = client.post(
                "/predict",
                json={"records": records[start : start + REQUEST_ROWS]},
                headers={"X-Request-ID": f"{prefix}-{start // REQUEST_ROWS}"},
            )
            refused += answer.status_code != 200
    return refused


def daily_batches(
    scenario: str, days: int, drift_day: int, rows: int, seed: int, positive_rate: float
) -> list[pd.DataFrame]:
    """One batch per day: clean traffic, then `scenario` from `drift_day` (counted from
    0) on. Ids are made unique across days, so labels join to one answer each."""
    batches = []
    for day in range(days):
        kind = scenario if day >= drift_day else "none"
        batch = generate_production_batch(rows, seed + day, kind, positive_rate=positive_rate)
        batch[DEMO_ID] = f"d{day}-" + batch[DEMO_ID]
        batches.append(batch)
    return batches


def restamped(log: pd.DataFrame, prefix: str, days: int) -> pd.DataFrame:
    """The entries of requests `<prefix>-<day>-<n>`, moved onto their day: day 0 is
    `days` days before today (UTC), keeping each entry's time since the first."""
    entries = log[log["request_id"].str.startswith(f"{prefix}-")].copy()
    day = entries["request_id"].str.split("-").str[1].astype(int)
    first_day = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=days)
    since = entries["timestamp"] - entries["timestamp"].min()
    entries["timestamp"] = first_day + pd.to_timedelta(day, unit="D") + since
    return entries


def run_demo(
    cfg: Config,
    scenarios: list[str],
    rows: int,
    seed: int,
    out_dir: str | Path,
    days: int = 10,
    drift_day: int = 7,
) -> dict[str, dict[str, Any]]:
    """Serve the champion, send `days` days of `rows` records per scenario, drifted from
    `drift_day` on, and monitor each scenario's days in daily windows. Writes
    `<out_dir>/<scenario>/`: the page and figures, the restamped log, and the labels
    that have arrived."""
    if not 0 <= drift_day < days:
        raise PipelineError(
            f"the drift day {drift_day} must be one of the {days} days (0 to {days - 1})"
        )
    out = Path(out_dir)
    registry = Registry.connect(cfg.mlflow.registered_model)
    champion = registry.version("champion")
    reference = load_reference(registry, str(champion.version))
    columns = [c for c in [reference.id_column, *reference.feature_profile] if c]
    bento = build_bento(import_version(registry, champion), cfg.serve, extensions=cfg.extensions)
    log_dir = out / "predictions"
    for old in log_dir.glob("predictions-*"):
        old.unlink()
    env = {
        **os.environ,
        "MLOPS_PREDICTION_LOG_DIR": str(log_dir.resolve()),
    }  # the server runs elsewhere
    traffic = {
        scenario: daily_batches(
            scenario, days, drift_day, rows, seed + 1000 * index, cfg.data.demo.positive_rate
        )
        for index, scenario in enumerate(scenarios)
    }
    with bentoml_server(str(bento.tag), free_port(), out / "serve.log", env) as url:
        headers = authorization(api_key(cfg.serve.auth, env))
        refused = {
            scenario: sum(
                send_batch(url, batch, columns, f"{scenario}-{day}", headers)
                for day, batch in enumerate(batches)
            )
            for scenario, batches in traffic.items()
        }
        metrics_text = httpx.get(f"{url}/metrics").text
    log = read_prediction_log([str(log_dir / "predictions-*.jsonl*")])
    settings = cfg.monitor.model_copy(update={"window": "1D"})
    reports = {}
    for scenario, batches in traffic.items():
        folder = out / scenario
        served = restamped(log, scenario, days)
        # The restamped log, which `mlops monitor --log` reads as it reads the service's.
        write_text(folder / "predictions.jsonl", log_lines(served).decode())
        arrived = pd.concat(batches[: days - LABEL_LAG_DAYS])
        labels = arrived[[reference.id_column, cfg.data.target]] if reference.id_column else None
        report = run_over_time(served, reference, settings, labels, cfg.data.target, metrics_text)
        report["refused_requests"] = refused[scenario]
        write_report(report, served, reference, folder)
        if labels is not None:
            write_csv(folder / "labels.csv", labels)
        reports[scenario] = report
    return reports
