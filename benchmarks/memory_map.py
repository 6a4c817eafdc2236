"""Would a memory-mapped copy of the training split speed up streaming training?

scale.mode streaming reads data/split/train.parquet once per pass: each CV fold's
booster pulls its rows twice (sketch, then pages) and its out-of-fold block once more,
so 5 folds and the refit make about 17 passes. This measures one pass as train makes
it (batches of scale.batch_rows rows, to pandas, through a fitted preprocessor into
float32) from the Parquet file, and from an Arrow IPC copy of it that is memory-mapped
(uncompressed record batches: no decoding, the page cache serves repeated passes),
side by side in one run, each in a fresh process. Prints the figures and saves
benchmarks/results/memory_map.json.

    .venv/bin/python benchmarks/memory_map.py [--rows 1000000 4000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlops_starter.storage import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "memory_map.json"
PASSES = 3  # per process: the first from a cold process, the others as later folds see it


def batch_rows() -> int:
    from mlops_starter.config import Config

    return Config.from_yaml(ROOT / "params.yaml").scale.batch_rows


def memory_kb() -> dict[str, int]:
    """This process's resident memory now: anonymous (its own) and file-backed (mapped)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return {
        line.split(":")[0]: int(line.split()[1])
        for line in status
        if line.startswith(("RssAnon:", "RssFile:"))
    }


def one_reader(kind: str, folder: Path) -> dict[str, Any]:
    """PASSES passes of `kind` (parquet | mapped_ipc) over the split, in this process."""
    import numpy as np
    import pyarrow as pa

    from mlops_starter.data.batches import iter_parquet
    from mlops_starter.storage import load_model

    preprocessor = load_model(folder / "model.skops")[0]

    def batches():
        if kind == "parquet":
            yield from iter_parquet(folder / "train.parquet", batch_rows())
        else:
            with pa.memory_map(str(folder / "train.arrow")) as source:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i).to_pandas()

    seconds, peak = [], {"RssAnon": 0, "RssFile": 0}
    for _ in range(PASSES):
        started, rows = time.perf_counter(), 0
        for frame in batches():
            rows += len(np.asarray(preprocessor.transform(frame), dtype=np.float32))
            peak = {k: max(peak[k], v) for k, v in memory_kb().items()}
        seconds.append(time.perf_counter() - started)
    return {"rows": rows, "seconds": seconds, "peak_kb": peak}


def prepare(rows: int, folder: Path) -> dict[str, Any]:
    """The demo table's training rows as split writes them, its IPC copy, and a fitted
    preprocessor (the forest's: the one a streaming pass applies)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_starter.data.demo import generate_demo_table
    from mlops_starter.data.schema import FeatureSchema, encode_target
    from mlops_starter.storage import model_bytes
    from mlops_starter.training.candidates import build_pipeline

    table = generate_demo_table(rows, seed=0)
    table.to_parquet(folder / "train.parquet", index=False, row_group_size=batch_rows())
    started = time.perf_counter()
    arrow = pq.read_table(folder / "train.parquet")
    with (
        pa.OSFile(str(folder / "train.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, arrow.schema) as writer,
    ):
        for batch in arrow.to_batches(max_chunksize=batch_rows()):
            writer.write_batch(batch)
    copy_seconds = time.perf_counter() - started
    schema = FeatureSchema.infer(table, ["churned", "customer_id", "signup_date"])
    head = table.head(20_000)
    model = build_pipeline("xgboost", {"n_estimators": 5}, schema).fit(
        head[schema.columns], encode_target(head["churned"], "yes")
    )
    (folder / "model.skops").write_bytes(model_bytes(model))
    return {
        "parquet_bytes": (folder / "train.parquet").stat().st_size,
        "ipc_bytes": (folder / "train.arrow").stat().st_size,
        "ipc_copy_seconds": round(copy_seconds, 2),
    }


def measure(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        result: dict[str, Any] = {"rows": rows, **prepare(rows, folder)}
        runs: dict[str, list[dict[str, Any]]] = {"parquet": [], "mapped_ipc": []}
        for _ in range(2):  # alternate, so neither always reads a warmer page cache
            for kind in runs:
                done = subprocess.run(  # noqa: S603 (this script, run again)
                    [sys.executable, __file__, "--reader", kind, str(folder)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[kind].append(json.loads(done.stdout))
    for kind, found in runs.items():
        passes = [s for run in found for s in run["seconds"]]
        result[kind] = {
            "pass_seconds_median": round(statistics.median(passes), 3),
            "first_pass_seconds": round(statistics.median(r["seconds"][0] for r in found), 3),
            "peak_anon_mb": round(max(r["peak_kb"]["RssAnon"] for r in found) / 1024, 1),
            "peak_file_mb": round(max(r["peak_kb"]["RssFile"] for r in found) / 1024, 1),
        }
    result["mapped_over_parquet_time"] = round(
        result["mapped_ipc"]["pass_seconds_median"] / result["parquet"]["pass_seconds_median"], 3
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    parser.add_argument("folder", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        print(json.dumps(one_reader(args.reader, Path(args.folder))))
        return
    results = [measure(rows) for rows in args.rows]
    write_json(RESULTS, results)
    for r in results:
        print(
            f"{r['rows']:>10,} rows: a pass from Parquet {r['parquet']['pass_seconds_median']} s, "
            f"from the mapped IPC copy {r['mapped_ipc']['pass_seconds_median']} s "
            f"({r['mapped_over_parquet_time']}x); peak own memory "
            f"{r['parquet']['peak_anon_mb']} MB against {r['mapped_ipc']['peak_anon_mb']} MB "
            f"(+{r['mapped_ipc']['peak_file_mb']} MB of mapped file); the copy: "
            f"{r['ipc_bytes'] / 1e6:.0f} MB against {r['parquet_bytes'] / 1e6:.0f} MB, "
            f"{r['ipc_copy_seconds']} s to write"
        )


if __name__ == "__main__":
    main()
