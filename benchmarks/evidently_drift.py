"""Evidently's data-drift report on the rows `benchmarks/monitoring.py` gives the monitor,
window by window as the monitor checks them: run by that script in a virtual environment
of its own (Evidently is a benchmark-only extra, never a dependency of the template).

    python benchmarks/evidently_drift.py LOG REFERENCE_CSV OUT_FOLDER

Prints one JSON line: seconds, rows per second, peak RSS and the HTML reports' size."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
from stage_peak import peak_kb  # its own peak, not the spawning process's

DAY_CHARACTERS = 10  # a line's timestamp starts with its day: 2026-01-01


def main(log: str, reference_csv: str, out: str) -> None:
    started = time.perf_counter()
    reference = pd.read_csv(reference_csv)
    days: dict[str, list[dict]] = {}
    with open(log, "rb") as lines:
        for line in lines:
            entry = orjson.loads(line)
            days.setdefault(entry["timestamp"][:DAY_CHARACTERS], []).append(entry["features"])
    read_s = time.perf_counter() - started
    html_bytes, rows_read = 0, 0
    for day, rows in days.items():
        current = pd.DataFrame(rows)[list(reference.columns)]
        rows_read += len(current)
        snapshot = Report([DataDriftPreset()]).run(current, reference)
        page = Path(out) / f"evidently-{day}.html"
        snapshot.save_html(str(page))
        html_bytes += page.stat().st_size
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": rows_read,
                "windows": len(days),
                "seconds": round(seconds, 2),
                "read_seconds": round(read_s, 2),
                "lines_per_s": round(rows_read / seconds),
                "peak_rss_mb": round(peak_kb() / 1024),
                "html_mb_per_window": round(html_bytes / len(days) / 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
