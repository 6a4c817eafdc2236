"""The prediction log's size on disk, raw and gzipped as rotation leaves it, how fast
rotation compresses it and the monitor reads it back, and how many days of logs a disk
holds at a given load.

Demo production records are written by the service's own writer (PredictionLog), so
each line is what `mlops serve` writes; the gzip level is rotation's. The docs' table
(docs/how-to/monitoring.md, "The log's size") comes from this run's figures.

    python benchmarks/prediction_log.py [--records 200000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from mlops_starter.data.demo import generate_production_batch
from mlops_starter.monitoring.inputs import read_prediction_log
from mlops_starter.serving.prediction_log import COMPRESS_LEVEL, LogBatch, PredictionLog
from mlops_starter.storage import json_records

RESULTS = Path(__file__).resolve().parent / "results" / "prediction_log.json"
REQUEST_RECORDS = 10
LOADS = (10, 100, 1_000)  # records per second, served around the clock
DISK_GB = 100


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        raw = write_log(Path(folder), args.records)
        content = raw.read_bytes()
        started = time.perf_counter()
        packed = gzip.compress(content, COMPRESS_LEVEL)
        compress_s = time.perf_counter() - started
        gzipped = raw.with_name(raw.name + ".2026-12-04T08-00-00-000000.gz")
        gzipped.write_bytes(packed)
        reads = {}
        for name, path in (("raw", raw), ("gzipped", gzipped)):
            started = time.perf_counter()
            if len(read_prediction_log([str(path)])) != args.records:
                raise SystemExit(f"the monitor did not read {args.records} records from {path}")
            reads[name] = args.records / (time.perf_counter() - started)
    raw_line, gz_line = len(content) / args.records, len(packed) / args.records
    days = {
        load: {
            "raw_gb_per_day": load * 86_400 * raw_line / 1e9,
            "gzipped_gb_per_day": load * 86_400 * gz_line / 1e9,
            f"days_on_{DISK_GB}_gb_gzipped": DISK_GB * 1e9 / (load * 86_400 * gz_line),
        }
        for load in LOADS
    }
    figures = {
        "records": args.records,
        "bytes_per_line_raw": round(raw_line, 1),
        "bytes_per_line_gzipped": round(gz_line, 1),
        "compression_ratio": round(raw_line / gz_line, 2),
        "gzip_mb_per_s": round(len(content) / compress_s / 1e6, 1),
        "monitor_read_lines_per_s": {k: round(v) for k, v in reads.items()},
        "by_load_records_per_s": days,
    }
    print(json.dumps(figures, indent=2))
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
