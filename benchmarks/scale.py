"""Peak memory and wall time of each DAG stage against table size, per scale.mode.

For each size it writes a demo-like table (in chunks, never whole) as the data source,
then runs ingest, validate, split, train and evaluate as separate processes, exactly as
`dvc repro` runs them, in a scratch copy of the pipeline. Each stage's peak RSS comes from
the kernel (`os.wait4`), its wall time from the clock. Then one more pair of runs under a
memory cap (a cgroup v1 memory limit, else RLIMIT_AS) on a table whose pandas size is at
least 4x the cap: in-memory should fail there and streaming finish.

Only the xgboost candidate runs in every mode, with the same settings, so the modes'
test ROC-AUC compare like for like.

    .venv/bin/python benchmarks/scale.py                      # 1M, 4M, 16M rows
    .venv/bin/python benchmarks/scale.py --rows 200000 400000 # a quick look

Writes benchmarks/results/scale.json and benchmarks/results/scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mlops_starter.data.demo import generate_demo_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
STAGES = ["ingest", "validate", "split", "train", "evaluate"]
CHUNK = 500_000
CGROUP = Path("/sys/fs/cgroup/memory/mlops-scale-bench")


def write_table(path: Path, rows: int) -> float:
    """A demo-like table of `rows` rows, written chunk by chunk; returns its pandas size in GB."""
    writer, in_memory = None, 0
    for start in range(0, rows, CHUNK):
        chunk = generate_demo_table(min(CHUNK, rows - start), seed=start // CHUNK)
        chunk["customer_id"] = f"{start // CHUNK}-" + chunk["customer_id"]
        in_memory += chunk.memory_usage(deep=True).sum()
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema))
    assert writer is not None
    writer.close()
    return in_memory / 1e9


def workdir_for(source: Path, mode: str, root: Path) -> Path:
    """A scratch copy of what the stages read: pipelines, params and the suite."""
    work = root / mode
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(REPO / "pipelines", work / "pipelines")
    shutil.copytree(REPO / "expectations", work / "expectations")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(source)
    # The profiled suite's value ranges come from the 20,000-row demo; a million rows of the
    # same generator reach past them in the tails. The checks from params.yaml still run.
    params["validate"]["suite"] = None
    params["train"]["cv_folds"] = 2
    params["train"]["calibration"] = "none"
    for name in ("logistic_regression", "random_forest"):
        params["train"]["candidates"][name]["enabled"] = False
    params["train"]["candidates"]["xgboost"]["n_estimators"] = 100
    params["scale"]["mode"] = mode
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def capped(limit_bytes: int | None):
    """A preexec function that puts the stage under the memory cap, and how it does so."""
    if limit_bytes is None:
        return None, None
    try:
        CGROUP.mkdir(exist_ok=True)
        (CGROUP / "memory.limit_in_bytes").write_text(str(limit_bytes))

        def join() -> None:
            (CGROUP / "cgroup.procs").write_text(str(os.getpid()))

        return join, "cgroup v1 memory.limit_in_bytes"
    except OSError:

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

        return limit, "RLIMIT_AS"


def run_stage(work: Path, stage: str, limit_bytes: int | None = None) -> dict:
    """One stage as its own process: exit code, wall seconds and peak RSS in GB."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
    env["PYTHONPATH"] = str(REPO / "src")
    preexec, how = capped(limit_bytes)
    started = time.perf_counter()
    with open(work / f"{stage}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, f"pipelines/{stage}.py"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=preexec,
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    result = {
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(wall, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1e6, 3),  # ru_maxrss is in kB on Linux
    }
    if how:
        result["cap"] = how
    return result


def run_mode(source: Path, mode: str, root: Path, limit_bytes: int | None = None) -> dict:
    work = workdir_for(source, mode, root)
    stages = {}
    for stage in STAGES:
        stages[stage] = run_stage(work, stage, limit_bytes)
        print(f"  {mode:10s} {stage:9s} {stages[stage]}", flush=True)
        if stages[stage]["exit"] != 0:
            break
    outcome = {"stages": stages, "finished": all(s["exit"] == 0 for s in stages.values())}
    if outcome["finished"]:
        outcome["peak_rss_gb"] = max(s["peak_rss_gb"] for s in stages.values())
        outcome["seconds"] = round(sum(s["seconds"] for s in stages.values()), 1)
        outcome["test_roc_auc"] = json.loads((work / "metrics" / "test.json").read_text())[
            "roc_auc"
        ]
    shutil.rmtree(work / "data", ignore_errors=True)
    return outcome


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares GB (or seconds) per million rows."""
    if len(points) < 2:
        return None
    rows, values = np.array([p[0] for p in points]) / 1e6, np.array([p[1] for p in points])
    return round(float(np.polyfit(rows, values, 1)[0]), 4)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, seconds) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, runs in results["modes"].items():
        done = [(int(n), r) for n, r in runs.items() if r["finished"]]
        if done:
            rows = [n / 1e6 for n, _ in done]
            memory.plot(rows, [r["peak_rss_gb"] for _, r in done], "o-", label=mode)
            seconds.plot(rows, [r["seconds"] for _, r in done], "o-", label=mode)
    memory.set(xlabel="rows (millions)", ylabel="peak RSS of the largest stage (GB)")
    seconds.set(xlabel="rows (millions)", ylabel="wall time, all stages (s)")
    memory.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def capped_run(cap_gb: float, root: Path) -> dict:
    """In-memory and streaming under a memory cap, on a table at least 4x the cap in pandas."""
    rows = CHUNK
    source = root / "table_capped.parquet"
    while (gb := write_table(source, rows)) < 4 * cap_gb:
        rows *= 2
    print(f"capped run: {rows:,} rows, {gb:.2f} GB in pandas, cap {cap_gb} GB")
    outcome = {
        "cap_gb": cap_gb,
        "rows": rows,
        "pandas_gb": round(gb, 2),
        **{
            mode: run_mode(source, mode, root, int(cap_gb * 1e9))
            for mode in ("in_memory", "streaming")
        },
    }
    source.unlink()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000, 16_000_000])
    parser.add_argument("--modes", nargs="+", default=["in_memory", "streaming", "dask"])
    parser.add_argument(
        "--largest",
        nargs="*",
        default=["in_memory=4000000", "dask=4000000"],
        help="MODE=ROWS: larger tables skip that mode (in memory: ~1.1 GB per million rows)",
    )
    parser.add_argument(
        "--cap-gb", type=float, default=1.0, help="the memory cap of the capped run"
    )
    parser.add_argument("--scratch", default=None, help="where tables go (default: a temp dir)")
    args = parser.parse_args()

    largest = {mode: int(rows) for mode, rows in (item.split("=") for item in args.largest)}
    root = Path(args.scratch or tempfile.mkdtemp(prefix="scale-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "rows": args.rows,
        "modes": {m: {} for m in args.modes},
        "machine": {"cpus": os.cpu_count()},
    }
    for rows in args.rows:
        source = root / f"table_{rows}.parquet"
        gb = write_table(source, rows)
        print(
            f"{rows:,} rows: {source.stat().st_size / 1e6:.0f} MB of Parquet, {gb:.2f} GB in pandas"
        )
        for mode in args.modes:
            if rows > largest.get(mode, rows):
                results["modes"][mode][str(rows)] = {"finished": False, "skipped": "past --largest"}
                continue
            results["modes"][mode][str(rows)] = run_mode(source, mode, root)
        source.unlink()
    for mode, runs in results["modes"].items():
        done = [(int(n), r) for n, r in runs.items() if r["finished"]]
        results.setdefault("slopes", {})[mode] = {
            "peak_rss_gb_per_million_rows": slope([(n, r["peak_rss_gb"]) for n, r in done]),
            "seconds_per_million_rows": slope([(n, r["seconds"]) for n, r in done]),
        }
    smallest = str(min(args.rows))
    aucs = {
        m: r[smallest].get("test_roc_auc") for m, r in results["modes"].items() if smallest in r
    }
    if aucs.get("in_memory") is not None:
        results["roc_auc_vs_in_memory_at_smallest"] = {
            m: round(a - aucs["in_memory"], 5) for m, a in aucs.items() if a is not None
        }

    if args.cap_gb > 0:
        results["capped"] = capped_run(args.cap_gb, root)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / "scale.png")
    print(json.dumps({k: v for k, v in results.items() if k != "modes"}, indent=2))


if __name__ == "__main__":
    main()
