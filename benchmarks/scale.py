"""Peak memory and wall time of each DAG stage against table size, per scale.mode.

For each size it writes a demo-like table (in chunks, never whole) as the data source,
then runs ingest, validate, split, train and evaluate as separate processes, exactly as
`dvc repro` runs them, in a scratch copy of the pipeline. Each stage's peak RSS is the
kernel's high-water mark of that process (and its workers), recorded by
benchmarks/stage_peak.py; its wall time comes from the clock. Then one more pair of runs under a
memory cap (a cgroup v1 memory limit, else RLIMIT_AS) on a table whose pandas size is at
least 4x the cap: in-memory should fail there and streaming finish. That table is the demo
plus `--capped-extra-columns` numeric columns: a wide table is what grows a table's pandas
size per row, while the streaming stages keep a fixed number of bytes per row
(XGBoost's own labels, gradients and predictions among them) whatever the width.

Only the xgboost candidate runs in every mode, with the same settings, so the modes'
test ROC-AUC compare like for like.

    .venv/bin/python benchmarks/scale.py --cap-gb 0           # 1M, 4M, 16M rows
    .venv/bin/python benchmarks/scale.py --rows --cap-gb 1    # the capped run alone
    .venv/bin/python benchmarks/scale.py --rows 200000 400000 # a quick look

Updates benchmarks/results/scale.json (each entry replaced by the run that measured it,
with that run's commit) and benchmarks/results/scale.png.
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
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mlops_starter.data.demo import generate_demo_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
STAGES = ["ingest", "validate", "split", "train", "evaluate"]
CHUNK = 500_000
RECORDER = REPO / "benchmarks" / "stage_peak.py"
CGROUP = Path("/sys/fs/cgroup/memory/mlops-scale-bench")
COMMIT = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 (a tool found on PATH by design)
    cwd=REPO,
    capture_output=True,
    text=True,
).stdout.strip()


def demo_chunk(rows: int, seed: int, extra_columns: int) -> pd.DataFrame:
    """Demo rows with unique ids across chunks, and `extra_columns` sensor-like readings
    (two decimals, so Parquet's dictionary encoding keeps the file small)."""
    chunk = generate_demo_table(rows, seed=seed)
    chunk["customer_id"] = f"{seed}-" + chunk["customer_id"]
    if extra_columns:
        readings = np.random.default_rng(seed).normal(size=(rows, extra_columns)).round(2)
        names = [f"reading_{i:03d}" for i in range(extra_columns)]
        chunk = pd.concat([chunk, pd.DataFrame(readings, columns=names)], axis=1)
    return chunk


def write_table(path: Path, rows: int, extra_columns: int = 0) -> float:
    """A demo-like table of `rows` rows, written chunk by chunk; returns its pandas size in GB."""
    writer, in_memory = None, 0
    for start in range(0, rows, CHUNK):
        chunk = demo_chunk(min(CHUNK, rows - start), start // CHUNK, extra_columns)
        in_memory += chunk.memory_usage(deep=True).sum()
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema))
    if writer is None:
        raise SystemExit(f"{path}: no rows were written")
    writer.close()
    return in_memory / 1e9


def workdir_for(source: Path, mode: str, root: Path, scale: dict | None = None) -> Path:
    """A scratch copy of what the stages read: pipelines, params (with `scale` settings
    over params.yaml's) and the suite."""
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
    params["scale"] |= {"mode": mode, **(scale or {})}
    if scale and "batch_rows" in scale:  # ingest reads the source in batches of this size too
        params["data"]["read_chunk_rows"] = scale["batch_rows"]
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
    """One stage as its own process: exit code, wall seconds and peak RSS in GB (none when
    the process was killed before it could record it)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
    env["PYTHONPATH"] = str(REPO / "src")
    preexec, how = capped(limit_bytes)
    peak_file = work / f"{stage}.peak_kb"
    peak_file.unlink(missing_ok=True)
    started = time.perf_counter()
    with open(work / f"{stage}.log", "w") as log:
        process = subprocess.run(  # noqa: S603 (argument list, no shell)
            [sys.executable, str(RECORDER), f"pipelines/{stage}.py", str(peak_file)],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=preexec,
        )
    wall = time.perf_counter() - started
    result = {
        "exit": process.returncode,
        "seconds": round(wall, 1),
        "peak_rss_gb": int(peak_file.read_text()) / 1e6 if peak_file.exists() else None,
    }
    if result["peak_rss_gb"] is not None:
        result["peak_rss_gb"] = round(result["peak_rss_gb"], 3)
    if how:
        result["cap"] = how
    return result


def run_mode(
    source: Path, mode: str, root: Path, limit_bytes: int | None = None, scale: dict | None = None
) -> dict:
    work = workdir_for(source, mode, root, scale)
    stages = {}
    for stage in STAGES:
        stages[stage] = run_stage(work, stage, limit_bytes)
        print(f"  {mode:10s} {stage:9s} {stages[stage]}", flush=True)
        if stages[stage]["exit"] != 0:
            break
    outcome = {
        "stages": stages,
        "finished": all(s["exit"] == 0 for s in stages.values()),
        "commit": COMMIT,
    }
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


def capped_run(cap_gb: float, extra_columns: int, scale: dict, root: Path) -> dict:
    """In-memory and streaming under a memory cap, on a wide table at least 4x the cap in
    pandas (its rows a multiple of CHUNK)."""
    bytes_per_row = demo_chunk(10_000, 0, extra_columns).memory_usage(deep=True).sum() / 10_000
    rows = int(np.ceil(4 * cap_gb * 1e9 / bytes_per_row / CHUNK)) * CHUNK
    source = root / "table_capped.parquet"
    gb = write_table(source, rows, extra_columns)
    print(
        f"capped run: {rows:,} rows x {extra_columns} extra columns, {gb:.2f} GB in pandas, "
        f"{source.stat().st_size / 1e9:.2f} GB of Parquet, cap {cap_gb} GB"
    )
    outcome = {
        "cap_gb": cap_gb,
        "rows": rows,
        "extra_columns": extra_columns,
        "pandas_gb": round(gb, 2),
        "scale_settings": scale,
        **{
            mode: run_mode(source, mode, root, int(cap_gb * 1e9), scale)
            for mode in ("in_memory", "streaming")
        },
    }
    source.unlink()
    return outcome


def summarize(results: dict) -> None:
    """Slopes over every finished size, and ROC-AUC against in-memory at the smallest size."""
    for mode, runs in results["modes"].items():
        done = [(int(n), r) for n, r in runs.items() if r["finished"]]
        results.setdefault("slopes", {})[mode] = {
            "peak_rss_gb_per_million_rows": slope([(n, r["peak_rss_gb"]) for n, r in done]),
            "seconds_per_million_rows": slope([(n, r["seconds"]) for n, r in done]),
        }
    smallest = str(min(results["rows"]))
    aucs = {
        m: r[smallest].get("test_roc_auc") for m, r in results["modes"].items() if smallest in r
    }
    if aucs.get("in_memory") is not None:
        results["roc_auc_vs_in_memory_at_smallest"] = {
            m: round(a - aucs["in_memory"], 5) for m, a in aucs.items() if a is not None
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="*",
        default=[1_000_000, 4_000_000, 16_000_000],
        help="table sizes to run (none: only the capped run)",
    )
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
    parser.add_argument("--capped-extra-columns", type=int, default=120)
    parser.add_argument(
        "--capped-batch-rows",
        type=int,
        default=25_000,
        help="scale.batch_rows of the capped run: batches of a wide table are large",
    )
    parser.add_argument("--capped-sample-rows", type=int, default=50_000)
    parser.add_argument("--scratch", default=None, help="where tables go (default: a temp dir)")
    args = parser.parse_args()

    largest = {mode: int(rows) for mode, rows in (item.split("=") for item in args.largest)}
    root = Path(args.scratch or tempfile.mkdtemp(prefix="scale-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    saved = RESULTS / "scale.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() else {"rows": [], "modes": {}}
    results["machine"] = {"cpus": os.cpu_count()}
    for rows in args.rows:
        source = root / f"table_{rows}.parquet"
        gb = write_table(source, rows)
        print(
            f"{rows:,} rows: {source.stat().st_size / 1e6:.0f} MB of Parquet, {gb:.2f} GB in pandas"
        )
        results["rows"] = sorted({*results["rows"], rows})
        for mode in args.modes:
            runs = results["modes"].setdefault(mode, {})
            if rows > largest.get(mode, rows):
                runs[str(rows)] = {"finished": False, "skipped": "past --largest"}
                continue
            runs[str(rows)] = run_mode(source, mode, root)
        source.unlink()
    summarize(results)
    if args.cap_gb > 0:
        scale = {"batch_rows": args.capped_batch_rows, "sample_rows": args.capped_sample_rows}
        results["capped"] = capped_run(args.cap_gb, args.capped_extra_columns, scale, root)
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / "scale.png")
    print(json.dumps({k: v for k, v in results.items() if k != "modes"}, indent=2))


if __name__ == "__main__":
    main()
