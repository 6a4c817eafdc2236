"""Serving benchmark: the same registry version served several ways, same client load.

    (a) this project's BentoML service (a bento built from the version): single
        records, 1,000 records, and 1,000 rows as columns; then single records in
        alternating rounds without and with a challenger scoring every row in shadow
        (the newest other gated version, or --challenger): the shadow's p50 must stay
        within 10%,
    (b) `mlflow models serve --env-manager local` of the same version,
    (b') the ceiling of HTTP here: a bare ASGI app under uvicorn that parses the records
        and calls the compiled scorer, nothing else (benchmarks/minimal_server.py),
    (c) in-process, no HTTP, no JSON: the sklearn pipeline's `predict_proba`, and the
        compiled scorer the service uses (the ceiling).

For each: single-row requests from `--clients` concurrent clients for `--seconds`
(requests/s, p50/p99 latency, errors), then 1,000-row requests (rows/s). A figure
counts only with zero failed requests (a 503 is a failure). Then each load runs on the
service again, shorter, while py-spy samples its workers (apart from the figures: the
sampler's CPU would count against the service alone): the collapsed stacks go to
benchmarks/results/profiles/, and the functions and libraries that took the most time
go into the JSON, so the next bottleneck is named. Prints a table and writes JSON
(--out, default benchmarks/results/serving.json).

    make bench-serving            # champion of the local registry
    python benchmarks/serving.py --version 3 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import mlflow
import numpy as np
import pandas as pd
import psutil

from mlops_starter.config import Config
from mlops_starter.registry.model_registry import GATE_TAG, REGISTRATION_TAG, Registry
from mlops_starter.serving.packaging import build_bento, import_challenger, import_version
from mlops_starter.serving.process import bentoml_server, free_port, wait_for_http
from mlops_starter.serving.scorer import build_scorer, frame_to_columns
from mlops_starter.storage import json_records, write_json

BATCH_ROWS = 1000
WARM_UP_SECONDS = 3.0
PROFILES = Path("benchmarks/results/profiles")
# Rounds of single rows without and with the shadow: round to round the same server
# moves by up to 15% here, so the median of five, not three.
SHADOW_ROUNDS = 5


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
    # 1,000-row requests open a connection each, as behind a load balancer: kept-alive
    # connections all stick to the worker that accepted them first.
    connector = aiohttp.TCPConnector(limit=clients, force_close=rows > 1)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(index: int, until: float, record: bool) -> None:
            nonlocal errors
            turn = index
            if not record:  # connections opened one by one, so each worker accepts some
                await asyncio.sleep(index * 0.005)
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

        warm_until = time.perf_counter() + WARM_UP_SECONDS
        await asyncio.gather(*(client(i, warm_until, False) for i in range(clients)))
        until = time.perf_counter() + seconds
        await asyncio.gather(*(client(i, until, True) for i in range(clients)))
    return latency_summary(latencies, seconds, errors, rows)


def post_bodies(frame: pd.DataFrame, wrap: str) -> tuple[list[bytes], list[bytes]]:
    """Single-row and 1,000-row request bodies: `wrap` is the records key, or `columns`."""
    if wrap == "columns":
        return [], [
            json.dumps(
                {
                    "columns": {
                        c: json.loads(frame[c].iloc[i : i + BATCH_ROWS].to_json(orient="values"))
                        for c in frame.columns
                    }
                }
            ).encode()
            for i in range(0, len(frame) - BATCH_ROWS + 1, BATCH_ROWS)
        ]
    records = json_records(frame)
    singles = [json.dumps({wrap: [r]}).encode() for r in records[:500]]
    batches = [
        json.dumps({wrap: records[i : i + BATCH_ROWS]}).encode()
        for i in range(0, len(records) - BATCH_ROWS + 1, BATCH_ROWS)
    ]
    return singles, batches


def profile_summary(path: Path, top: int = 12) -> dict[str, Any]:
    """Own time per function and per library, from py-spy's (gzipped) collapsed stacks."""
    functions: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        functions[leaf] += int(count)
        file = leaf[leaf.rfind("(") + 1 :].split(":")[0]
        top_level = file.split("/")[0].removesuffix(".py")  # py-spy names files from their package
        library = (
            "python"
            if top_level in sys.stdlib_module_names
            or ("/" not in file and top_level.startswith("<"))
            else top_level
        )
        libraries[library] += int(count)
    total = sum(functions.values()) or 1
    return {
        "samples": total,
        "by_library": {k: round(v / total, 3) for k, v in libraries.most_common(top)},
        "by_function": {k: round(v / total, 3) for k, v in functions.most_common(top)},
    }


def served_figures(
    url: str,
    frame: pd.DataFrame,
    args: argparse.Namespace,
    server_pid: int | None,
) -> dict[str, Any]:
    """Each load on the service; then, when `server_pid` is given, each load again for a
    third of the time under py-spy, whose profile names where the time goes. Measured
    apart: the sampler takes CPU from the same two cores, and no peer runs under it."""
    singles, record_batches = post_bodies(frame, "records")
    _, column_batches = post_bodies(frame, "columns")
    loads = {
        "single_row": (singles, args.clients, 1),
        "batch_1000": (record_batches, args.batch_clients, BATCH_ROWS),
        "batch_1000_columns": (column_batches, args.batch_clients, BATCH_ROWS),
    }
    figures = {
        name: asyncio.run(drive(f"{url}/predict", bodies, clients, args.seconds, rows))
        for name, (bodies, clients, rows) in loads.items()
    }
    if server_pid is None:
        return figures
    seconds = max(5.0, args.seconds / 3)
    for name, (bodies, clients, rows) in loads.items():
        profile = PROFILES / f"bentoml-{name}.txt"
        profile.parent.mkdir(parents=True, exist_ok=True)
        sampler = subprocess.Popen(  # noqa: S603 (argument list, no shell)
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--subprocesses",
                "--nonblocking",
                "--format",
                "raw",
                "--rate",
                "250",
                "--duration",
                str(int(seconds + WARM_UP_SECONDS)),
                "--output",
                str(profile),
                "--pid",
                str(server_pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        asyncio.run(drive(f"{url}/predict", bodies, clients, seconds, rows))
        if sampler.wait(timeout=60) == 0 and profile.exists():
            packed = profile.with_suffix(".txt.gz")
            packed.write_bytes(gzip.compress(profile.read_bytes()))
            profile.unlink()
            figures[name]["profile"] = {"file": str(packed), **profile_summary(packed)}
    return figures


def http_figures(
    url: str, wrap: str, frame: pd.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    singles, batches = post_bodies(frame, wrap)
    return {
        "single_row": asyncio.run(drive(url, singles, args.clients, args.seconds, 1)),
        "batch_1000": asyncio.run(
            drive(url, batches, args.batch_clients, args.seconds, BATCH_ROWS)
        ),
    }


def in_process_figures(
    score: Callable[[Any], Any], singles: list[Any], batches: list[Any], seconds: float
) -> dict[str, Any]:
    """`score` called in a loop on one row, then on 1,000 rows: the ceiling for HTTP."""

    def loop(pieces: list[Any], rows: int) -> dict[str, Any]:
        latencies = []
        until = time.perf_counter() + seconds
        turn = 0
        while time.perf_counter() < until:
            started = time.perf_counter()
            score(pieces[turn % len(pieces)])
            latencies.append(time.perf_counter() - started)
            turn += 1
        return latency_summary(latencies, seconds, 0, rows)

    loop(singles[:20], 1)  # warm-up
    return {"single_row": loop(singles, 1), "batch_1000": loop(batches, BATCH_ROWS)}


def server_pid_on(port: int) -> int | None:
    """The `bentoml serve` process listening on `port` (its workers are its children)."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "serve" in cmdline and str(port) in cmdline and any("bentoml" in c for c in cmdline):
            return int(process.pid)
    return None


@contextlib.contextmanager
def peer_server(
    command: list[str], env: dict[str, str], ready_path: str, scratch: str
) -> Iterator[str]:
    """A server to compare with, on a free loopback port (`--host`/`--port` appended),
    from when `ready_path` answers until the block ends; yields its base URL."""
    port = free_port()
    with open(f"{scratch}/{Path(command[0]).name}.log", "w") as log:
        process = subprocess.Popen(  # noqa: S603 (argument list, no shell)
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}{ready_path}", process, timeout=180)
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)


@contextlib.contextmanager
def shadow_server(
    registry: Registry,
    version: Any,
    challenger: Any,
    cfg: Config,
    scratch: str,
    env: dict[str, str],
) -> Iterator[str]:
    """The same service with `challenger` in shadow, served while the block runs."""
    shadow = cfg.serve.model_copy(
        update={"experiment": cfg.serve.experiment.model_copy(update={"mode": "shadow"})}
    )
    challenger_tag = import_challenger(registry, version, challenger, shadow)
    bento = build_bento(import_version(registry, version), shadow, challenger_tag=challenger_tag)
    print(f"bentoml: version {challenger.version} in shadow: bento {bento.tag}", flush=True)
    with bentoml_server(str(bento.tag), free_port(), f"{scratch}/shadow.log", env) as url:
        yield url


def shadow_figures(
    plain_url: str, shadow_url: str, frame: pd.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    """Single rows on the service without and with a shadow, in alternating rounds (the
    idle one waits): the machine's drift then falls on both alike. The overhead compares
    the medians of the rounds' p50s."""
    singles, _ = post_bodies(frame, "records")
    seconds = args.seconds / 3
    rounds: dict[str, list[dict[str, Any]]] = {"without": [], "with_shadow": []}
    for _ in range(SHADOW_ROUNDS):
        for name, url in (("without", plain_url), ("with_shadow", shadow_url)):
            rounds[name].append(
                asyncio.run(drive(f"{url}/predict", singles, args.clients, seconds, 1))
            )
    time.sleep(1)  # the last rows' shadow scores
    p50 = {name: float(np.median([r["p50_ms"] for r in done])) for name, done in rounds.items()}
    return {
        "rounds": rounds,
        "median_p50_ms": p50,
        "p50_overhead": round(p50["with_shadow"] / p50["without"] - 1, 3),
        "shadow": shadow_counts(shadow_url),
    }


def shadow_counts(url: str) -> dict[str, float]:
    """What the shadow did during its phase, from /metrics: rows scored and rows dropped
    (a shadow that keeps up drops none; one that drops is cheaper than it should be)."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics") as answer:  # noqa: S310 (loopback URL)
        lines = answer.read().decode().splitlines()

    def total(prefix: str, *having: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith(prefix) and all(h in line for h in having)
        )

    return {
        "rows_scored": total("mlops_predictions_total{", 'arm="shadow"'),
        "rows_answered": total("mlops_predictions_total{", 'arm="champion"'),
        "rows_dropped": total("mlops_shadow_dropped_total"),
    }


def shadow_challenger(registry: Registry, version: Any, chosen: str | None) -> Any:
    """The challenger of the shadow phase: --challenger, else the newest other version
    that passed the gate; None when the registry holds no other."""
    if chosen:
        return registry.version(chosen)
    others = [
        v
        for v in registry.client.search_model_versions(f"name = '{registry.name}'")
        if str(v.version) != str(version.version)
        and v.tags.get(GATE_TAG) == "true"
        and v.tags.get(REGISTRATION_TAG) == "complete"
    ]
    return max(others, key=lambda v: int(v.version), default=None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--version", default="champion", help="registry version (default: champion)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent single-row clients")
    parser.add_argument("--batch-clients", type=int, default=4, help="concurrent 1,000-row clients")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument(
        "--challenger", help="shadow phase's challenger (default: newest other gated version)"
    )
    parser.add_argument("--out", default="benchmarks/results/serving.json")
    args = parser.parse_args()

    cfg = Config.from_yaml()
    registry = Registry.connect(cfg.mlflow.registered_model)
    version = registry.version(args.version)
    uri = f"models:/{registry.name}/{version.version}"
    model = mlflow.sklearn.load_model(uri)
    info = mlflow.models.get_model_info(uri)
    columns = info.signature.inputs.input_names()
    profile = info.metadata["feature_profile"]
    id_column = info.metadata.get("id_column")
    test = pd.read_parquet(cfg.paths.test)
    if len(test) < BATCH_ROWS:
        raise SystemExit(
            f"{cfg.paths.test} has {len(test)} rows; the batch phase needs {BATCH_ROWS}"
        )
    features = test[columns]
    sent = test[[c for c in [id_column, *columns] if c]]

    results: dict[str, Any] = {}
    print(f"in-process: {registry.name} version {version.version}", flush=True)
    row_frames = [features.iloc[[i]] for i in range(min(500, len(features)))]
    batch_frames = [
        features.iloc[i : i + BATCH_ROWS]
        for i in range(0, len(features) - BATCH_ROWS + 1, BATCH_ROWS)
    ]
    results["in_process_pipeline"] = in_process_figures(
        lambda frame: model.predict_proba(frame), row_frames, batch_frames, args.seconds
    )
    scorer, check = build_scorer(model, profile, features)
    print(f"compiled scorer: {scorer.kind} ({scorer.detail}); check {check}", flush=True)
    results["in_process_compiled"] = in_process_figures(
        scorer.predict_proba,
        [frame_to_columns(f) for f in row_frames],
        [frame_to_columns(f) for f in batch_frames],
        args.seconds,
    )

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as scratch:
        bento = build_bento(import_version(registry, version, test), cfg.serve)
        print(f"bentoml: bento {bento.tag} ({cfg.serve.workers} workers)", flush=True)
        served_env = env | {"MLOPS_PREDICTION_LOG_DIR": f"{scratch}/predictions"}
        port = free_port()
        with contextlib.ExitStack() as servers:
            url = servers.enter_context(
                bentoml_server(str(bento.tag), port, f"{scratch}/bentoml.log", served_env)
            )
            pid = None if args.no_profile else server_pid_on(port)
            results["bentoml_service"] = served_figures(url, sent, args, pid)
            challenger = shadow_challenger(registry, version, args.challenger)
            if challenger is None:
                print("shadow: skipped, the registry holds no other gated version", flush=True)
            else:
                shadow_url = servers.enter_context(
                    shadow_server(registry, version, challenger, cfg, scratch, served_env)
                )
                results["bentoml_service_shadow"] = shadow_figures(url, shadow_url, sent, args)

        print(f"minimal ASGI app: {uri} ({cfg.serve.workers} workers)", flush=True)
        minimal = [
            str(bin_dir / "uvicorn"),
            *("--app-dir", str(Path(__file__).parent), "minimal_server:create_app", "--factory"),
            *("--workers", str(cfg.serve.workers), "--no-access-log"),
        ]
        with peer_server(minimal, env | {"MINIMAL_MODEL_URI": uri}, "/", scratch) as url:
            results["minimal_asgi"] = http_figures(f"{url}/predict", "records", sent, args)

        print(f"mlflow models serve: {uri} ({cfg.serve.workers} workers)", flush=True)
        mlflow_serve = [
            *(str(bin_dir / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"),
            *("--workers", str(cfg.serve.workers)),
        ]
        with peer_server(mlflow_serve, env, "/ping", scratch) as url:
            results["mlflow_models_serve"] = http_figures(
                f"{url}/invocations", "dataframe_records", features, args
            )

    ours, theirs = results["bentoml_service"], results["mlflow_models_serve"]
    minimal = results["minimal_asgi"]
    ceiling = results["in_process_compiled"]["batch_1000"]["rows_per_s"]
    speedup = ours["single_row"]["requests_per_s"] / theirs["single_row"]["requests_per_s"]
    columnar_share = ours["batch_1000_columns"]["rows_per_s"] / ceiling
    records_vs_mlflow = ours["batch_1000"]["rows_per_s"] / theirs["batch_1000"]["rows_per_s"]
    records_share = ours["batch_1000"]["rows_per_s"] / ours["batch_1000_columns"]["rows_per_s"]
    single_share = ours["single_row"]["requests_per_s"] / minimal["single_row"]["requests_per_s"]
    goals = {
        "single_row_speedup_vs_mlflow": round(speedup, 2),
        "single_row_speedup_met (>= 5)": speedup >= 5,
        "p99_below_mlflow_median": ours["single_row"]["p99_ms"] < theirs["single_row"]["p50_ms"],
        "no_failed_requests": all(phase["errors"] == 0 for phase in ours.values()),
        "columnar_share_of_compiled_in_process": round(columnar_share, 2),
        "columnar_share_met (>= 0.5)": columnar_share >= 0.5,
        "records_rows_vs_mlflow": round(records_vs_mlflow, 2),
        "records_vs_mlflow_met (>= 1.5)": records_vs_mlflow >= 1.5,
        "records_share_of_columns": round(records_share, 2),
        "records_share_met (>= 0.5)": records_share >= 0.5,
        "single_row_share_of_minimal_asgi": round(single_share, 2),
        "single_row_share_met (>= 0.5)": single_share >= 0.5,
    }
    if "bentoml_service_shadow" in results:
        overhead = results["bentoml_service_shadow"]["p50_overhead"]
        counts = results["bentoml_service_shadow"]["shadow"]
        goals["shadow_single_row_p50_overhead"] = round(overhead, 3)
        goals["shadow_overhead_met (<= 0.10)"] = overhead <= 0.10
        goals["shadow_scored_every_answered_row"] = (
            counts["rows_scored"] == counts["rows_answered"] and counts["rows_dropped"] == 0
        )
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
        "compiled_scorer": {"kind": scorer.kind, "detail": scorer.detail, "check": check},
        "results": results,
        "goals": goals,
    }
    write_json(args.out, report)
    print(f"\n{'':34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'rows/s':>11}")
    for name, phases in results.items():
        if name == "bentoml_service_shadow":
            middle = SHADOW_ROUNDS // 2
            phases = {f"single {k} (middle round)": r[middle] for k, r in phases["rounds"].items()}
        for phase, f in phases.items():
            print(
                f"{name + ' ' + phase:34}{f['requests_per_s']:>9}{f['p50_ms']:>9}"
                f"{f['p99_ms']:>9}{f['errors']:>8}{f['rows_per_s']:>11}"
            )
    print(f"\ngoals: {json.dumps(goals)}\nwritten: {args.out}")


if __name__ == "__main__":
    main()
