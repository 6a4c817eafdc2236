"""Reading the log as it arrives: the monitor keeps, in a state folder, how far it has
read each log file and the lines each window holds, so a run reads only the lines
written since the last, and checks again only the windows that new lines or new labels
touched. Its report equals a full read's (tests/monitoring/test_monitoring.py).

The state folder holds:
- `state.json`: how many bytes and lines of each file were read, by the fingerprint of
  its first line (which survives rotation: a rotated Parquet file carries it in its
  metadata, and is read from the line the JSON file was read to), the rotated files
  read to their end, and each window's segments;
- `windows/<start>/<n>.parquet`: the entries read `n` brought to a window (or
  `<n>.jsonl.gz`, their lines, where Arrow could not read them as one table), and
  `<n>.ids` their record ids, which say whether new labels touch the window;
- `results.json`: each window's figures, with a key of what they were computed from.

A read writes its segments first and `state.json` last, in one rename. A crash
between the two leaves segments that `state.json` does not name: they are deleted
and their lines read again, never counted twice.

A state belongs to one set of log globs cut into one window length, in one format:
given others, it starts afresh, so two logs never mix their lines in one state.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_starter.config import MonitorConfig
from mlops_starter.monitoring.inputs import (
    LogText,
    MonitorError,
    Reference,
    answers,
    current_path,
    log_paths,
    open_log,
    parse_entries,
    parse_lines,
    rotated_entries,
)
from mlops_starter.monitoring.timeline import summarize, window_report, window_starts
from mlops_starter.serving.prediction_log import FINGERPRINT_KEY, fingerprint
from mlops_starter.storage import atomic_path, read_json, write_json

STATE_FORMAT = 2  # 2: lines read by file, Parquet segments
BLOCK_BYTES = 64 << 20  # about 150,000 lines of the demo's
BLOCK_ROWS = 150_000  # as many of a rotated Parquet file's rows
FORGET_AFTER_DAYS = 30
SEGMENT_COMPRESS_LEVEL = 1  # state is read back soon: speed over size


class MonitorState:
    """How far the log was read, and each window's lines, in `folder`."""

    def __init__(self, folder: str | Path, window: str, logs: Iterable[str]) -> None:
        self.folder = Path(folder)
        self.window = window
        self.logs = sorted(os.path.abspath(pattern) for pattern in logs)
        saved = read_json(self.state_file) if self.state_file.is_file() else {}
        # A state belongs to one log cut in one way: for another, every line is read anew.
        self.started_afresh = bool(saved) and (
            saved["window"],
            saved["logs"],
            saved.get("format"),
        ) != (window, self.logs, STATE_FORMAT)
        if self.started_afresh:
            shutil.rmtree(self.folder)
            saved = {}
        self.read_to: dict[str, int] = saved.get("read_to", {})  # bytes, by fingerprint
        self.lines_read: dict[str, int] = saved.get("lines_read", {})
        self.last_seen: dict[str, str] = saved.get("last_seen", {})  # by fingerprint: a UTC day
        self.finished: set[str] = set(saved.get("finished", []))
        self.segments: dict[str, list[str]] = saved.get("segments", {})
        self.reads: int = saved.get("reads", 0)
        named = {segment for segments in self.segments.values() for segment in segments}
        for orphan in (self.folder / "windows").glob("*/*"):
            kept = orphan.relative_to(self.folder / "windows").as_posix()
            if orphan.suffix != ".ids" and kept not in named:
                orphan.unlink()  # a read that crashed before state.json named it

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def read_new(self) -> int:
        """Read every line written to the matching files since the last read, a block
        at a time, saving the position after each block (so memory stays one block's,
        whatever the log's size); returns how many lines. Only whole lines are read: a
        line being written waits for the next read. A malformed line stops the read
        with its place; the blocks before it stay read."""
        finished, count = set(), 0
        today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
        for listed in log_paths(self.logs):
            path = current_path(listed)
            if path is None:  # pruned by the service's retention since listed
                continue
            name = Path(path).name
            if name not in self.finished:
                reader = self._read_rotated if path.endswith(".parquet") else self._read_lines
                try:
                    count += reader(path, today)
                except FileNotFoundError:  # rotated or pruned between the two looks
                    continue
            if path.endswith((".parquet", ".gz")):  # rotated: it never grows again
                finished.add(name)
        # A file unseen for FORGET_AFTER_DAYS was deleted by rotation: forget it. (Sooner
        # would read a file again that was renamed between listing and opening.)
        horizon = (pd.Timestamp(today) - pd.Timedelta(days=FORGET_AFTER_DAYS)).strftime("%Y-%m-%d")
        self.last_seen = {key: day for key, day in self.last_seen.items() if day >= horizon}
        self.read_to = {key: at for key, at in self.read_to.items() if key in self.last_seen}
        self.lines_read = {k: n for k, n in self.lines_read.items() if k in self.last_seen}
        self.finished = finished
        write_json(self.state_file, self._saved())
        return count

    def _read_lines(self, path: str, today: str) -> int:
        """The new whole lines of a JSON-lines file, BLOCK_BYTES at a time."""
        count = 0
        with open_log(path) as log:
            first = log.readline()
            if not first.endswith(b"\n"):  # not one whole line yet
                return 0
            key = fingerprint(first)
            self.last_seen[key] = today
            offset = self.read_to.get(key, 0)
            log.seek(offset)
            rest = b""
            while block := log.read(BLOCK_BYTES):
                data = rest + block
                cut = data.rfind(b"\n") + 1
                whole, rest = data[:cut], data[cut:]
                if whole.strip():
                    entries, columnar = parse_lines([LogText(whole, path, offset)], path)
                    self._keep(entries, whole, columnar)
                    self.lines_read[key] = self.lines_read.get(key, 0) + len(entries)
                    count += len(entries)
                offset += len(whole)
                self.read_to[key] = offset
                write_json(self.state_file, self._saved())
        return count

    def _read_rotated(self, path: str, today: str) -> int:
        """The rows of a file rotated to Parquet after the lines read of it while it
        was JSON lines, BLOCK_ROWS at a time."""
        rotated = pq.ParquetFile(path)
        metadata = rotated.schema_arrow.metadata or {}
        key = metadata.get(FINGERPRINT_KEY, path.encode()).decode()
        self.last_seen[key] = today
        done, count = self.lines_read.get(key, 0), 0
        at = 0  # the row the batch begins at
        for batch in rotated.iter_batches(batch_size=BLOCK_ROWS):
            new = batch.slice(max(done - at, 0))
            at += batch.num_rows
            if new.num_rows:
                self._keep(rotated_entries(pa.Table.from_batches([new]), path), None, True)
                count += new.num_rows
                self.lines_read[key] = max(done, at)
                write_json(self.state_file, self._saved())
        return count

    def _keep(self, entries: pd.DataFrame, text: bytes | None, columnar: bool) -> None:
        """New entries, as one segment per window they fall in: as Parquet if Arrow read
        them (`columnar`) and Parquet holds them, else their lines (of `text`) gzipped."""
        starts = window_starts(entries["timestamp"], self.window)
        self.reads += 1
        lines: list[bytes] | None = None  # split only for a segment that needs them
        for start, rows in entries.groupby(starts, sort=True):
            name = self.folder / "windows" / f"{start:%Y-%m-%dT%H-%M-%S}/{self.reads}"
            segment = self._as_parquet(rows, name) if columnar else None
            if segment is None:  # read line by line, or Parquet cannot hold them
                if text is None:
                    raise MonitorError(f"{name}: the rotated entries could not be kept")
                if lines is None:
                    lines = [line for line in text.splitlines(keepends=True) if line.strip()]
                segment = name.with_suffix(".jsonl.gz")
                with atomic_path(segment) as tmp:
                    kept = b"".join(lines[i] for i in rows.index)
                    tmp.write_bytes(gzip.compress(kept, compresslevel=SEGMENT_COMPRESS_LEVEL))
            ids = [str(i) for i in rows["id"].dropna()] if "id" in rows else []
            with atomic_path(name.with_suffix(".ids")) as tmp:
                tmp.write_text("\n".join(ids))
            self.segments.setdefault(start.isoformat(), []).append(
                segment.relative_to(self.folder / "windows").as_posix()
            )

    @staticmethod
    def _as_parquet(rows: pd.DataFrame, name: Path) -> Path | None:
        segment = name.with_suffix(".parquet")
        try:
            with atomic_path(segment) as tmp:
                rows.to_parquet(tmp, index=False)
        except (pa.ArrowException, ValueError):  # e.g. entries without features
            return None
        return segment

    def _saved(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "window": self.window,
            "logs": self.logs,
            "reads": self.reads,
            "read_to": self.read_to,
            "lines_read": self.lines_read,
            "last_seen": self.last_seen,
            "finished": sorted(self.finished),
            "segments": self.segments,
        }

    def rows(self, start: str) -> pd.DataFrame:
        """Every entry the window starting at `start` holds."""
        pieces = []
        for segment in self.segments[start]:
            path = self.folder / "windows" / segment
            if path.suffix == ".parquet":
                pieces.append(pd.read_parquet(path))
            else:
                text = LogText(gzip.decompress(path.read_bytes()), segment)
                pieces.append(parse_entries([text], f"window {start}"))
        return pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]

    def ids(self, start: str) -> set[str]:
        found: set[str] = set()
        for segment in self.segments[start]:
            read = (self.folder / "windows" / segment).name.split(".")[0]
            ids = (self.folder / "windows" / segment).with_name(f"{read}.ids")
            found.update(ids.read_text().split("\n"))
        return found - {""}

    def report(
        self,
        reference: Reference,
        settings: MonitorConfig,
        labels: pd.DataFrame | None = None,
        target: str | None = None,
        metrics_text: str | None = None,
    ) -> dict[str, Any]:
        """The report over every window read so far, as `run_over_time` gives it on the
        whole log; only windows whose lines, labels or reference changed are checked
        again."""
        results_file = self.folder / "results.json"
        cached = read_json(results_file) if results_file.is_file() else {}
        starts = sorted(self.segments, key=pd.Timestamp)
        results, windows = {}, []
        for index, start in enumerate(starts):
            newest = index == len(starts) - 1
            key = self._key(start, reference, settings, labels, metrics_text if newest else None)
            if cached.get(start, {}).get("key") == key:
                found = cached[start]["report"]
            else:
                rows = answers(self.rows(start))
                served = rows[rows["model_version"].astype(str) == reference.version]
                found = None
                if not served.empty:
                    found = window_report(
                        served,
                        pd.Timestamp(start),
                        reference,
                        settings,
                        labels,
                        target,
                        metrics_text if newest else None,
                    )
                    found = json.loads(json.dumps(found, default=str))  # as the cache holds it
            results[start] = {"key": key, "report": found}
            if found is not None:
                windows.append(found)
        write_json(results_file, results)
        return summarize(windows, reference, settings)

    def _key(
        self,
        start: str,
        reference: Reference,
        settings: MonitorConfig,
        labels: pd.DataFrame | None,
        metrics_text: str | None,
    ) -> str:
        """What a window's figures were computed from: its segments, the version and
        settings, the labels of its records, and the service's /metrics if newest."""
        labelled = ""
        id_column = reference.id_column
        if labels is not None and id_column and id_column in labels:
            ids = labels[id_column].astype(str)
            mine = labels[ids.isin(self.ids(start))].sort_values(id_column)
            labelled = str(pd.util.hash_pandas_object(mine, index=False).sum())
        parts = [
            self.segments[start],
            reference.version,
            settings.model_dump(mode="json"),
            labelled,
            metrics_text,
        ]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
