"""The prediction log: one JSON line per scored record, for monitoring to read.

A request hands its rows over as one `LogBatch`, still column-wise, and returns. The
batches gather on the event loop for `linger_seconds`; then one call encodes them all
into lines and hands the bytes to a writer thread, which only writes them. So a
request never waits on the disk, and the event loop and the writer meet once per flush
rather than once per request (a hand-off per request took a fifth of a single-row
request's time: benchmarks/serving.py). More than `max_pending_rows` waiting, a full
queue or a failing disk drops entries and counts them; it never slows or fails a
request.

Each server process writes its own file, `predictions-<host>-<pid>.jsonl`, so
processes never interleave lines. It is rotated at midnight UTC and at
`serve.prediction_log_max_mb`; once rotated it is rewritten as Parquet (a twentieth of
its bytes, read six times faster than JSON: benchmarks/prediction_log.py), or gzipped
if its lines do not fit one table, and the directory keeps the newest
`serve.prediction_log_keep` rotated files. A line looks like:

    {"schema": 1, "timestamp": "2026-11-24T08:00:00.123+00:00", "request_id": "...",
     "model": "churn-classifier", "model_version": "3", "id": "C-0042",
     "features": {...}, "probability": 0.071, "label": 1, "issues": ["plan:unseen_category"]}

where `probability` and `label` are a binary model's answer; a multi-class model's is
`label` and `probabilities` (by class), a regression's `value`, `lower` and `upper`.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import logging
import os
import queue
import re
import shutil
import socket
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
LOG_KEYS = ("timestamp", "request_id", "model", "model_version", "features")
# Each task's answer holds one of these (Answers.fields): binary's, multi-class's, regression's.
ANSWER_KEYS = ("probability", "probabilities", "value")
FINGERPRINT_CHARS = 32
# A rotated Parquet file's metadata key for the fingerprint of the line it began with.
FINGERPRINT_KEY = b"mlops.first_line"


def fingerprint(first_line: bytes) -> str:
    """What names a log file through rotation: its first line's hash."""
    return hashlib.sha256(first_line).hexdigest()[:FINGERPRINT_CHARS]


def holds_every_key(table: pa.Table) -> bool:
    """Whether no null in `table` (lines as Arrow's JSON reader reads them) can be a
    key absent from a line: the log's keys are never null, an answer's key is there on
    every line, and features are null only on a shadow challenger's line."""
    names = set(table.column_names)
    if not table.num_rows or not set(LOG_KEYS) <= names or names.isdisjoint(ANSWER_KEYS):
        return False
    if any(table.column(key).null_count for key in LOG_KEYS if key != "features"):
        return False
    answered = functools.reduce(
        pc.or_, [table.column(key).is_valid() for key in ANSWER_KEYS if key in names]
    )
    features = table.column("features")
    if not pa.types.is_struct(features.type) or not pc.all(answered).as_py():
        return False
    if not features.null_count:
        return True
    shadow = pc.equal(table.column("arm"), "shadow") if "arm" in names else None
    return shadow is not None and pc.all(pc.or_kleene(features.is_valid(), shadow)).as_py()


def sampled(request_id: str, sample_rate: float) -> bool:
    """Keep all or none of a request's records, the same way on every process."""
    if sample_rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) % 10_000 < sample_rate * 10_000


@dataclass
class LogBatch:
    """One scored batch's log lines, held column-wise until the flush encodes them.

    `keys` come first in each line, in their order: a list holds one value per line (the
    request a row came in, the version that answered it), anything else is the same on
    every line. `features` holds the rows as sent, a list per column (None: the line
    says `"features": null`, as a shadow's line does); `answer` the model's answer, a
    list per field (Answers.per_row); `issues` maps `field:kind` to the rows that have it.
    """

    keys: Mapping[str, Any]
    ids: Sequence[Any] | None
    features: Mapping[str, Sequence[Any]] | None
    answer: Mapping[str, list[Any]]
    issues: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.answer.values())))

    def encode(self) -> bytes:
        """The lines, each ending in a newline, built a column at a time: each column is
        encoded in one orjson call where it can be, and each line is one `%` of a bytes
        template, so no dict is built per line."""
        template = [b'{"schema":%d' % SCHEMA_VERSION]
        per_line: list[Sequence[bytes]] = []

        def add(key: str, values: list[bytes] | None, constant: Any = None) -> None:
            name = orjson.dumps(key).replace(b"%", b"%%")
            if values is None:
                template.append(b",%b:%b" % (name, orjson.dumps(constant).replace(b"%", b"%%")))
            else:
                template.append(b",%b:%%b" % name)
                per_line.append(values)

        for key, value in self.keys.items():
            if isinstance(value, list):
                add(key, _encoded(value))
            else:
                add(key, None, value)
        add("id", None if self.ids is None else _encoded(self.ids))
        if self.features is None:
            add("features", None)
        else:
            encoded = {name: _encoded(values) for name, values in self.features.items()}
            template.append(b',"features":{')
            template.append(
                b",".join(orjson.dumps(name).replace(b"%", b"%%") + b":%b" for name in encoded)
            )
            template.append(b"}")
            per_line.extend(encoded.values())
        for name, values in self.answer.items():
            add(name, _encoded(values))
        add("issues", self._issues())
        line = b"".join(template) + b"}\n"
        return b"".join(map(line.__mod__, zip(*per_line, strict=True)))

    def _issues(self) -> list[bytes]:
        """Per line, its issues as a JSON list (`[]` for most)."""
        found: dict[int, list[str]] = {}
        for issue, mask in self.issues.items():
            for row in np.flatnonzero(mask).tolist():
                found.setdefault(row, []).append(issue)
        encoded = [b"[]"] * len(self)
        for row, issues in found.items():
            encoded[row] = orjson.dumps(issues)
        return encoded


# One JSON value of an array of scalars: a string (escapes and all), or a run without a
# comma (a number, null, true, false).
_JSON_SCALAR = re.compile(rb'"(?:[^"\\]|\\.)*"|[^,]+')


def _encoded(values: Sequence[Any]) -> list[bytes]:
    """Each value as JSON (NaN as null, as orjson writes it), from one orjson call for
    the column: split at its commas when it holds no text, else cut into its values by
    `_JSON_SCALAR`; a column of repeating text (a category) is encoded once per distinct
    value, and one that may hold lists or objects a value at a time. Not one orjson call per value: keeping a thousand of its results costs
    about 2.5 ms (each result is a fresh allocation), fifty times the whole column's."""
    whole = orjson.dumps(values)
    if b"[" in whole[1:-1] or b"{" in whole[1:-1]:
        # Perhaps a list or an object (an ignored field holds whatever was sent): its
        # commas are not the column's, so each value is encoded alone.
        return [orjson.dumps(value) for value in values]
    if b'"' not in whole:
        return whole[1:-1].split(b",")
    distinct = set(values)
    if len(distinct) * 4 <= len(values) and all(v is None or type(v) is str for v in distinct):
        code = {value: orjson.dumps(value) for value in distinct}  # text and None never collide
        return list(map(code.__getitem__, values))
    return _JSON_SCALAR.findall(whole[1:-1])


class PredictionLog:
    """Non-blocking writer of prediction-log lines. `start()` before use, `close()` to
    flush. `write` and `flush` run on the event loop (or on one thread without a loop)."""

    def __init__(
        self,
        directory: str | Path,
        on_drop: Callable[[int], None] = lambda _: None,
        max_queued_flushes: int = 1_000,
        max_pending_rows: int = 100_000,
        linger_seconds: float = 0.05,
        max_bytes: int = 64 << 20,
        keep: int = 100,
    ) -> None:
        self.path = Path(directory) / f"predictions-{socket.gethostname()}-{os.getpid()}.jsonl"
        self.on_drop = on_drop
        self.max_pending_rows, self.linger_seconds = max_pending_rows, linger_seconds
        self._pending: list[LogBatch] = []
        self._pending_rows = 0
        self._flush: asyncio.TimerHandle | None = None
        self._chunks: queue.Queue[tuple[bytes, int] | None] = queue.Queue(max_queued_flushes)
        self._file = _RotatingFile(self.path, max_bytes, keep)
        self._writer = threading.Thread(
            target=self._write_chunks, name="prediction-log", daemon=True
        )

    def start(self) -> PredictionLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.start()
        return self

    def write(self, batch: LogBatch) -> None:
        """Keep one batch for the next flush; returns at once. Without a running event
        loop (a script, a test) the batch is flushed at once."""
        rows = len(batch)
        if not rows:
            return
        if self._pending_rows + rows > self.max_pending_rows:
            self.on_drop(rows)
            return
        self._pending.append(batch)
        self._pending_rows += rows
        if self._flush is not None:
            return
        try:
            self._flush = asyncio.get_running_loop().call_later(self.linger_seconds, self.flush)
        except RuntimeError:
            self.flush()

    def flush(self) -> None:
        """Encode every batch kept so far and queue the bytes for the writer thread."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        taken, self._pending, self._pending_rows = self._pending, [], 0
        chunks, rows = [], 0
        for batch in taken:
            try:
                chunks.append(batch.encode())
                rows += len(batch)
            except (TypeError, ValueError):  # a value JSON cannot hold: count it, go on
                logging.getLogger(__name__).exception("a prediction-log batch did not encode")
                self.on_drop(len(batch))
        if not chunks:
            return
        try:
            self._chunks.put_nowait((b"".join(chunks), rows))
        except queue.Full:
            self.on_drop(rows)

    def close(self) -> None:
        """Write out what is kept and queued, then stop the writer thread."""
        self.flush()
        if self._writer.is_alive():
            self._chunks.put(None)
            self._writer.join()
        else:  # never started: what was queued is lost, and counted
            while not self._chunks.empty():
                chunk = self._chunks.get_nowait()
                if chunk is not None:
                    self.on_drop(chunk[1])
        self._file.close()

    def _write_chunks(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            lines, rows = chunk
            try:
                self._file.write(lines)
            except OSError:  # disk full, permissions: count, never raise into the server
                self.on_drop(rows)


COMPRESS_LEVEL = 6  # gzip's default, for a file whose lines do not fit one table
REWRITES = (".parquet", ".gz")  # what a rotated file becomes


class _RotatingFile:
    """The log file in binary append mode, opened on the first write. At midnight UTC,
    or once it holds `max_bytes`, it is renamed `<name>.<UTC time>` and a new one begun;
    a background thread rewrites the renamed file as Parquet (or gzips it) and then keeps
    the directory's newest `keep` rotated files, of every process, deleting older ones."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._stream: BinaryIO | None = None
        self._day: date | None = None  # the UTC day the file's lines belong to
        self._compressing: threading.Thread | None = None

    def write(self, lines: bytes) -> None:
        now = datetime.now(UTC)
        stream = self._stream or self._open(now)
        if stream.tell() and (now.date() != self._day or stream.tell() >= self.max_bytes):
            stream.close()
            self._rename(now)
            stream = self._open(now)
        stream.write(lines)
        stream.flush()

    def _open(self, now: datetime) -> BinaryIO:
        stream = open(self.path, "ab")  # noqa: SIM115  (kept open across writes)
        # A file left by an earlier process of this pid keeps the day it was written on.
        modified = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        self._day = modified.date() if stream.tell() else now.date()
        self._stream = stream
        return stream

    def _rename(self, now: datetime) -> None:
        rotated = self.path.with_name(f"{self.path.name}.{now:%Y-%m-%dT%H-%M-%S-%f}")
        os.replace(self.path, rotated)
        if self._compressing is not None:  # one at a time, so files are pruned in order
            self._compressing.join()
        self._compressing = threading.Thread(
            target=rewrite_rotated, args=(rotated, self.keep), daemon=True
        )
        self._compressing.start()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._compressing is not None:
            self._compressing.join()


def rewrite_rotated(rotated: Path, keep: int) -> None:
    """`rotated` rewritten beside itself, through a hidden file so a reader never sees a
    part: as Parquet where Arrow keeps its lines as one table, else gzipped. Then the
    directory's rotated files beyond the newest `keep` are deleted. A reader that finds
    a file beside its rewrite reads the rewrite (monitoring/inputs.py)."""
    try:
        if rotated_as_parquet(rotated) is None:
            rotated_gzipped(rotated)
        rotated.unlink()
        kept = sorted(  # by the UTC time in the name, whichever process wrote it
            (p for p in rotated.parent.glob("predictions-*.jsonl.*.*") if p.suffix in REWRITES),
            key=lambda p: p.name.split(".")[-2],
        )
        for old in kept[: max(len(kept) - keep, 0)]:
            old.unlink(missing_ok=True)  # another process may have pruned it first
    except OSError:  # a full disk, a file another process pruned: the log goes on
        logging.getLogger(__name__).exception("a rotated prediction log was not rewritten")


def rotated_as_parquet(rotated: Path) -> Path | None:
    """`rotated` as `<name>.parquet`, its first line's fingerprint in the metadata; None
    where Arrow cannot keep every line with its keys in one table (a key whose type
    changed, a line that is no entry, entries without features)."""
    target = rotated.with_name(rotated.name + ".parquet")
    partial = rotated.with_name(f".{target.name}.partial")
    with open(rotated, "rb") as source:
        first = source.readline()
    options = pa_json.ReadOptions(use_threads=False)  # the server's cores are for requests
    try:
        table = pa_json.read_json(str(rotated), read_options=options)
        if not holds_every_key(table):
            return None
        table = table.replace_schema_metadata({FINGERPRINT_KEY: fingerprint(first)})
        pq.write_table(table, partial, compression="zstd")
    except pa.ArrowException:
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, target)
    return target


def rotated_gzipped(rotated: Path) -> Path:
    target = rotated.with_name(rotated.name + ".gz")
    partial = rotated.with_name(f".{target.name}.partial")
    with (
        open(rotated, "rb") as source,
        gzip.open(partial, "wb", compresslevel=COMPRESS_LEVEL) as gzipped,
    ):
        shutil.copyfileobj(source, gzipped, 1 << 20)
    os.replace(partial, target)
    return target
