"""Serving benchmark: the same registry version served three ways, same client load.

    (a) this project's BentoML service (a bento built from the version),
    (b) `mlflow models serve --env-manager local` of the same version,
    (c) in-process `predict_proba` (the ceiling: no HTTP, no JSON).

For each: single-row requests from `--clients` concurrent clients for `--seconds`
(requests/s, p50/p99 latency, errors), then 1,000-row requests (rows/s). A figure
counts only with zero failed requests. Prints a table and writes JSON (--out, default benchmarks/results/serving.json).

    make bench-serving            # champion of the local registry
    python benchmarks/serving.py --version 3 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import mlflow
import numpy as np
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.registry.model_registry import Registry
from mlops_starter.serving.packaging import build_bento, import_version
from mlops_starter.serving.process import bentoml_server, free_port, wait_for_http
from mlops_starter.storage import write_json

BATCH_ROWS = 1000


def latency_summary(
    latencies: list[float], seconds: float, errors: int, rows: int
) -> dict[str, Any]:
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "errors": errors,
        "requests_per_s": round(len(ms) / seconds, 1),
        "rows_per_s": round(len(ms) * rows / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


async def drive(
    url: str, bodies: list[bytes], clients: int, seconds: float, rows: int
) -> dict[str, Any]:
    """`clients` concurrent loops posting `bodies` in turn for `seconds` (after a warm-up)."""
    latencies: list[float] = []
    errors = 0
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(index: int, until: float, record: bool) -> None:
            nonlocal errors
            turn = index
            while time.perf_counter() < until:
                body = bodies[turn % len(bodies)]
                turn += clients
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += not ok

        warm_until = time.perf_counter() + min(3.0, seconds / 3)
        await asyncio.gather(*(client(i, warm_until, False) for i in range(clients)))
        until = time.perf_counter() + seconds
        await asyncio.gather(*(client(i, until, True) for i in range(clients)))
    return latency_summary(latencies, seconds, errors, rows)


def http_figures(
    url: str, wrap: str, frame: pd.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    records = json.loads(frame.to_json(orient="records"))
    singles = [json.dumps({wrap: [r]}).encode() for r in records[:500]]
    batches = [
        json.dumps({wrap: records[i : i + BATCH_ROWS]}).encode()
        for i in range(0, len(records) - BATCH_ROWS + 1, BATCH_ROWS)
    ]
    return {
        "single_row": asyncio.run(drive(url, singles, args.clients, args.seconds, 1)),
        "batch_1000": asyncio.run(
            drive(url, batches, args.batch_clients, args.seconds, BATCH_ROWS)
        ),
    }


def in_process_figures(model: Any, frame: pd.DataFrame, seconds: float) -> dict[str, Any]:
    def loop(pieces: list[pd.DataFrame], rows: int) -> dict[str, Any]:
        latencies = []
        until = time.perf_counter() + seconds
        turn = 0
        while time.perf_counter() < until:
            started = time.perf_counter()
            model.predict_proba(pieces[turn % len(pieces)])
            latencies.append(time.perf_counter() - started)
            turn += 1
        return latency_summary(latencies, seconds, 0, rows)

    singles = [frame.iloc[[i]] for i in range(min(500, len(frame)))]
    batches = [
        frame.iloc[i : i + BATCH_ROWS] for i in range(0, len(frame) - BATCH_ROWS + 1, BATCH_ROWS)
    ]
    loop(singles[:20], 1)  # warm-up
    return {"single_row": loop(singles, 1), "batch_1000": loop(batches, BATCH_ROWS)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--version", default="champion", help="registry version (default: champion)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent single-row clients")
    parser.add_argument("--batch-clients", type=int, default=2, help="concurrent 1,000-row clients")
    parser.add_argument("--out", default="benchmarks/results/serving.json")
    args = parser.parse_args()

    cfg = Config.from_yaml()
    registry = Registry.connect(cfg.mlflow.registered_model)
    version = registry.version(args.version)
    uri = f"models:/{registry.name}/{version.version}"
    model = mlflow.sklearn.load_model(uri)
    columns = mlflow.models.get_model_info(uri).signature.inputs.input_names()
    test = pd.read_parquet(cfg.paths.test)[columns]
    if len(test) < BATCH_ROWS:
        raise SystemExit(
            f"{cfg.paths.test} has {len(test)} rows; the batch phase needs {BATCH_ROWS}"
        )

    results: dict[str, Any] = {}
    print(f"in-process: {registry.name} version {version.version}", flush=True)
    results["in_process"] = in_process_figures(model, test, args.seconds)

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as scratch:
        bento = build_bento(import_version(registry, version), cfg.serve)
        print(f"bentoml: bento {bento.tag} ({cfg.serve.workers} workers)", flush=True)
        served_env = env | {"MLOPS_PREDICTION_LOG_DIR": f"{scratch}/predictions"}
        with bentoml_server(
            str(bento.tag), free_port(), f"{scratch}/bentoml.log", served_env
        ) as url:
            results["bentoml_service"] = http_figures(f"{url}/predict", "records", test, args)

        port = free_port()
        print(f"mlflow models serve: {uri} ({cfg.serve.workers} workers)", flush=True)
        with open(f"{scratch}/mlflow.log", "w") as log:
            mlflow_server = subprocess.Popen(
                [
                    str(bin_dir / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    uri,
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(cfg.serve.workers),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            try:
                wait_for_http(f"http://127.0.0.1:{port}/ping", mlflow_server, timeout=180)
                results["mlflow_models_serve"] = http_figures(
                    f"http://127.0.0.1:{port}/invocations", "dataframe_records", test, args
                )
            finally:
                os.killpg(mlflow_server.pid, 15)
                mlflow_server.wait(timeout=30)

    ours, theirs, limit = (
        results[k] for k in ("bentoml_service", "mlflow_models_serve", "in_process")
    )
    goals = {
        "single_row_speedup_vs_mlflow": round(
            ours["single_row"]["requests_per_s"] / theirs["single_row"]["requests_per_s"], 2
        ),
        "p99_below_mlflow_median": ours["single_row"]["p99_ms"] < theirs["single_row"]["p50_ms"],
        "no_failed_requests": ours["single_row"]["errors"] == 0
        and ours["batch_1000"]["errors"] == 0,
        "batch_share_of_in_process": round(
            ours["batch_1000"]["rows_per_s"] / limit["batch_1000"]["rows_per_s"], 2
        ),
    }
    report = {
        "model": registry.name,
        "version": str(version.version),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "load": {
            "seconds": args.seconds,
            "single_row_clients": args.clients,
            "batch_clients": args.batch_clients,
            "batch_rows": BATCH_ROWS,
        },
        "results": results,
        "goals": goals,
    }
    write_json(args.out, report)
    print(f"\n{'':22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'batch rows/s':>14}")
    for name, figures in results.items():
        single, batch = figures["single_row"], figures["batch_1000"]
        print(
            f"{name:22}{single['requests_per_s']:>9}{single['p50_ms']:>9}{single['p99_ms']:>9}{single['errors'] + batch['errors']:>8}{batch['rows_per_s']:>14}"
        )
    print(f"\ngoals: {json.dumps(goals)}\nwritten: {args.out}")


if __name__ == "__main__":
    main()
