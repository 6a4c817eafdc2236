"""The prediction log's size on disk, raw, rotated to Parquet as the service rotates it,
and gzipped as rotation leaves a file whose lines do not fit one table; how fast
rotation rewrites it and the monitor reads it back, and how many days of logs a disk
holds at a given load; beside it, the columnar log it might be as it is served (Arrow
IPC batches, zstd-compressed, one per flush), on bytes per record, the monitor's read,
and the flush's cost on the event loop.

Demo production records are written by the service's own writer (PredictionLog) and
rotated by its own rotation, so each file is what `mlops serve` leaves. The docs'
tables (docs/how-to/monitoring.md, "The log's size") come from this run's figures.

    python benchmarks/prediction_log.py [--records 200000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.json as pa_json

from mlops_starter.data.demo import generate_production_batch
from mlops_starter.monitoring.inputs import read_prediction_log
from mlops_starter.serving.prediction_log import (
    LogBatch,
    PredictionLog,
    rotated_as_parquet,
    rotated_gzipped,
)
from mlops_starter.storage import json_records

RESULTS = Path(__file__).resolve().parent / "results" / "prediction_log.json"
REQUEST_RECORDS = 10
LOADS = (10, 100, 1_000)  # records per second, served around the clock
DISK_GB = 100
# Records per flush: a quiet service flushes each request alone; a busy one gathers
# hundreds of records in its linger. Arrow pays a message header per flush.
FLUSH_RECORDS = (REQUEST_RECORDS, 1_000)


def write_log(folder: Path, records: int) -> Path:
    """`records` demo records through the service's writer, REQUEST_RECORDS per request."""
    batch = generate_production_batch(records, seed=7)
    features = [c for c in batch.columns if c not in ("customer_id", "churned")]
    rows = json_records(batch[features])
    probabilities = np.random.default_rng(7).random(records)
    dropped: list[int] = []
    # No event loop here, so each request is a flush: let them all queue.
    log = PredictionLog(
        folder, on_drop=dropped.append, max_queued_flushes=records, max_bytes=1 << 40
    ).start()
    for start in range(0, records, REQUEST_RECORDS):
        part = slice(start, start + REQUEST_RECORDS)
        chunk = rows[part]
        log.write(
            LogBatch(
                {
                    "timestamp": "2026-12-04T08:00:00.123456+00:00",
                    "request_id": f"request-{start}",
                    "model": "churn-classifier",
                    "model_version": "3",
                },
                batch["customer_id"].iloc[part].tolist(),
                {c: [r[c] for r in chunk] for c in features},
                {
                    "probability": probabilities[part].tolist(),
                    "label": (probabilities[part] >= 0.5).astype(int).tolist(),
                },
            )
        )
    log.close()
    if dropped:
        raise SystemExit(f"the writer dropped {sum(dropped)} records")
    return log.path


def columnar(content: bytes, records: int) -> dict:
    """The same records as an Arrow IPC stream, one zstd-compressed batch per flush: its
    bytes per record and the monitor's read of it (to the frame the JSONL read gives),
    for each flush size; and a flush's encoding, Arrow's against the service's JSONL."""
    table = pa_json.read_json(pa.BufferReader(content))
    options = ipc.IpcWriteOptions(compression="zstd")
    found: dict = {}
    for flush in FLUSH_RECORDS:
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, table.schema, options=options) as stream:
            for batch in table.to_batches(max_chunksize=flush):
                stream.write_batch(batch)
        stream_bytes = sink.getvalue()
        started = time.perf_counter()
        as_frame(ipc.open_stream(stream_bytes).read_all())
        found[f"flush_{flush}"] = {
            "records_per_flush": flush,
            "bytes_per_record": round(stream_bytes.size / records, 1),
            "monitor_read_lines_per_s": round(records / (time.perf_counter() - started)),
        }
    found["flush_encode_us_per_record"] = flush_encoding(table.slice(0, 1_000))
    return found


def as_frame(read: pa.Table) -> pd.DataFrame:
    """The frame the monitor reads, a column per feature, from a columnar log's table."""
    features = read.column("features").combine_chunks()
    frame = pa.Table.from_arrays(features.flatten(), names=[f.name for f in features.type])
    return read.drop_columns(["features"]).to_pandas().join(frame.to_pandas())


def flush_encoding(table: pa.Table) -> dict:
    """Microseconds per record to turn one flush's columns into bytes: the service's
    JSONL encoding (LogBatch.encode) against an Arrow batch built from the same columns
    and written to a zstd IPC stream. Best of five, one flush of the table's rows."""
    rows = table.to_pylist()
    features = {name: [r["features"][name] for r in rows] for name in rows[0]["features"]}
    keys = {k: rows[0][k] for k in ("timestamp", "request_id", "model", "model_version")}
    answer = {k: [r[k] for r in rows] for k in ("probability", "label")}
    ids = [r["id"] for r in rows]

    def as_jsonl() -> bytes:
        return LogBatch(keys, ids, features, answer).encode()

    def as_arrow() -> bytes:
        columns = {k: pa.array([v] * len(ids)) for k, v in keys.items()}
        columns |= {
            "id": pa.array(ids),
            "features": pa.StructArray.from_arrays(
                [pa.array(v) for v in features.values()], names=list(features)
            ),
        }
        columns |= {k: pa.array(v) for k, v in answer.items()}
        batch = pa.record_batch(columns)
        sink = pa.BufferOutputStream()
        with ipc.new_stream(
            sink, batch.schema, options=ipc.IpcWriteOptions(compression="zstd")
        ) as out:
            out.write_batch(batch)
        return sink.getvalue().to_pybytes()

    timing = {}
    for name, encode in (("jsonl", as_jsonl), ("arrow_ipc_zstd", as_arrow)):
        best = min(_seconds(encode) for _ in range(5))
        timing[name] = round(best / len(rows) * 1e6, 2)
    return timing


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def rotated(raw: Path, records: int) -> dict[str, dict]:
    """The open file rotated both ways the service rotates (to Parquet, or gzipped where
    the lines do not fit one table): bytes per record, the rewrite's speed in MB of
    JSON lines a second, and the monitor's read, lines a second."""
    found = {}
    for name, rewrite in (("parquet", rotated_as_parquet), ("gzipped", rotated_gzipped)):
        copy = raw.with_name(f"{raw.name}.2026-12-04T08-00-00-00000{len(found)}")
        shutil.copyfile(raw, copy)
        started = time.perf_counter()
        target = rewrite(copy)
        rewrite_s = time.perf_counter() - started
        if target is None:
            raise SystemExit(f"rotation did not rewrite {copy.name} as {name}")
        started = time.perf_counter()
        if len(read_prediction_log([str(target)])) != records:
            raise SystemExit(f"the monitor did not read {records} records from {target}")
        found[name] = {
            "bytes_per_record": round(target.stat().st_size / records, 1),
            "rewrite_mb_per_s": round(raw.stat().st_size / rewrite_s / 1e6, 1),
            "monitor_read_lines_per_s": round(records / (time.perf_counter() - started)),
        }
    return found


REWRITE_RSS = """
import sys
from pathlib import Path
from mlops_starter.serving.prediction_log import rotated_as_parquet
from stage_peak import peak_kb
before = peak_kb()
rotated_as_parquet(Path(sys.argv[1]))
print((peak_kb() - before) / 1024)
"""


def rewrite_memory(raw: Path) -> float:
    """MB of memory the rewrite to Parquet takes per MB of the rotated file, measured in
    a process of its own: the server's worker holds that much while it rotates."""
    copy = raw.with_name(f"{raw.name}.2026-12-04T08-00-00-000009")
    shutil.copyfile(raw, copy)
    done = subprocess.run(  # noqa: S603 (our own snippet, our own file)
        [sys.executable, "-c", REWRITE_RSS, str(copy)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent,  # where stage_peak.py is
    )
    return float(done.stdout.strip()) / (raw.stat().st_size / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        raw = write_log(Path(folder), args.records)
        content = raw.read_bytes()
        started = time.perf_counter()
        if len(read_prediction_log([str(raw)])) != args.records:
            raise SystemExit(f"the monitor did not read {args.records} records from {raw}")
        raw_read = args.records / (time.perf_counter() - started)
        kept = rotated(raw, args.records)
        kept["parquet"]["rewrite_rss_mb_per_file_mb"] = round(rewrite_memory(raw), 2)
        arrow = columnar(content, args.records)
    raw_line = len(content) / args.records
    parquet_line = kept["parquet"]["bytes_per_record"]
    days = {
        load: {
            "raw_gb_per_day": load * 86_400 * raw_line / 1e9,
            "rotated_gb_per_day": load * 86_400 * parquet_line / 1e9,
            f"days_on_{DISK_GB}_gb_rotated": DISK_GB * 1e9 / (load * 86_400 * parquet_line),
        }
        for load in LOADS
    }
    figures = {
        "records": args.records,
        "raw": {
            "bytes_per_record": round(raw_line, 1),
            "monitor_read_lines_per_s": round(raw_read),
        },
        "rotated": kept,
        "parquet_smaller_than_raw": round(raw_line / parquet_line, 1),
        "by_load_records_per_s": days,
        "arrow_ipc": arrow,
    }
    print(json.dumps(figures, indent=2))
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
