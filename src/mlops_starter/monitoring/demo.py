"""The monitoring demo: production batches with a chosen drift scenario sent through
the real service (a bento of the champion), then the monitor run on what it logged.

Each scenario's requests carry request ids `<scenario>-<n>`, so one server serves
them all and each report reads only its own entries from the shared log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.demo import generate_production_batch
from mlops_starter.monitoring.checks import run_checks
from mlops_starter.monitoring.inputs import load_reference, read_prediction_log
from mlops_starter.monitoring.report import write_report
from mlops_starter.registry.model_registry import Registry
from mlops_starter.serving.auth import api_key, authorization
from mlops_starter.serving.packaging import build_bento, import_version
from mlops_starter.serving.process import bentoml_server, free_port
from mlops_starter.storage import json_records, write_csv

REQUEST_ROWS = 100


def send_batch(
    url: str, batch: pd.DataFrame, columns: list[str], scenario: str, headers: dict[str, str]
) -> int:
    """POST the batch in requests of REQUEST_ROWS records; returns how many were refused."""
    records = json_records(batch[columns])
    refused = 0
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        for start in range(0, len(records), REQUEST_ROWS):
            answer = client.post(
                "/predict",
                json={"records": records[start : start + REQUEST_ROWS]},
                headers={"X-Request-ID": f"{scenario}-{start // REQUEST_ROWS}"},
            )
            refused += answer.status_code != 200
    return refused


def run_demo(
    cfg: Config, scenarios: list[str], rows: int, seed: int, out_dir: str | Path
) -> dict[str, dict[str, Any]]:
    """Serve the champion, send one batch per scenario, and write a report per scenario
    (`<out_dir>/<scenario>/monitoring.{json,html}` and the labels that arrived)."""
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
    batches = {
        scenario: generate_production_batch(
            rows, seed + index, scenario, positive_rate=cfg.data.demo.positive_rate
        )
        for index, scenario in enumerate(scenarios)
    }
    with bentoml_server(str(bento.tag), free_port(), out / "serve.log", env) as url:
        headers = authorization(api_key(cfg.serve.auth, env))
        refused = {s: send_batch(url, batch, columns, s, headers) for s, batch in batches.items()}
        metrics_text = httpx.get(f"{url}/metrics").text
    log = read_prediction_log([str(log_dir / "predictions-*.jsonl*")])
    reports = {}
    for scenario, batch in batches.items():
        served = log[log["request_id"].str.startswith(f"{scenario}-")]
        labels = batch[[reference.id_column, cfg.data.target]] if reference.id_column else None
        report = run_checks(served, reference, cfg.monitor, labels, cfg.data.target, metrics_text)
        report["refused_requests"] = refused[scenario]
        write_report(report, served, reference, out / scenario)
        if labels is not None:
            write_csv(out / scenario / "labels.csv", labels)
        reports[scenario] = report
    return reports
