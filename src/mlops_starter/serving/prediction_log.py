"""The prediction log: one JSON line per scored record, for monitoring to read.

A request puts its batch of entries on a bounded in-memory queue as one item; a
background thread (the standard library's QueueListener) serialises and writes them.
A full queue or a failing disk drops entries and counts them; it never slows or
fails a request.

Each server process writes its own file, `predictions-<host>-<pid>.jsonl`, rotated
at midnight UTC, so processes never interleave lines. A line looks like:

    {"schema": 1, "timestamp": "2026-11-24T08:00:00.123+00:00", "request_id": "...",
     "model": "churn-classifier", "model_version": "3", "id": "C-0042",
     "features": {...}, "probability": 0.071, "label": 1, "issues": ["plan:unseen_category"]}
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import socket
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlops_starter.serving.schema import RecordBase

SCHEMA_VERSION = 1


def sampled(request_id: str, sample_rate: float) -> bool:
    """Keep all or none of a request's records, the same way on every process."""
    if sample_rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) % 10_000 < sample_rate * 10_000


class RowsOfColumns:
    """A columnar request's entries, expanded to one dict per row only when iterated:
    on the writer thread, off the request path."""

    def __init__(
        self,
        common: dict[str, Any],
        features: dict[str, list[Any]],
        id_field: str | None,
        probabilities: np.ndarray,
        labels: np.ndarray,
        issues: dict[str, np.ndarray],
        per_row: dict[str, list[Any]] | None = None,
    ) -> None:
        """`per_row`: keys whose value differs by row (which version answered it)."""
        self.common, self.features, self.id_field = common, features, id_field
        self.probabilities, self.labels, self.issues = probabilities, labels, issues
        self.per_row = per_row or {}

    def __len__(self) -> int:
        return len(self.probabilities)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = list(self.features)
        rows = len(self)
        ids = self.features.get(self.id_field) if self.id_field else None
        issues: list[list[str]] = [[] for _ in range(rows)]
        for issue, mask in self.issues.items():
            for row in np.flatnonzero(mask).tolist():
                issues[row].append(issue)
        varying = [
            dict(zip(self.per_row, row, strict=True))
            for row in zip(*self.per_row.values(), strict=True)
        ]
        for identity, values, probability, label, row_issues, own in zip(
            ids if ids is not None else [None] * rows,
            zip(*self.features.values(), strict=True),  # rows, transposed in C
            self.probabilities.tolist(),
            self.labels.tolist(),
            issues,
            varying or [{}] * rows,
            strict=True,
        ):
            yield {
                **self.common,
                **own,
                "id": identity,
                "features": dict(zip(names, values, strict=True)),
                "probability": probability,
                "label": label,
                "issues": row_issues,
            }


def _fields(record: RecordBase) -> dict[str, Any]:
    """A validated record's values by column name: its fields hold them under names of
    our own (serving.schema.record_model), so any column name can be a field."""
    return {column: getattr(record, field) for column, field in record.attribute_of.items()}


class _JsonLinesFormatter(logging.Formatter):
    """A batch of entries as JSON lines, serialised by orjson (a validated record as its
    fields), joined as bytes and decoded once."""

    def format(self, record: logging.LogRecord) -> str:
        entries: Iterable[dict[str, Any]] = record.msg  # type: ignore[assignment]
        return b"\n".join(
            orjson.dumps({"schema": SCHEMA_VERSION, **entry}, default=_fields) for entry in entries
        ).decode()


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Never blocks: a full queue drops the entry and reports it."""

    def __init__(self, entries: queue.Queue[Any], on_drop: Callable[[int], None]) -> None:
        super().__init__(entries)
        self.on_drop = on_drop

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatting happens on the writer thread, not in the request

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.on_drop(len(record.msg))


class _CountingFileHandler(logging.handlers.TimedRotatingFileHandler):
    """A failed write (disk full, permissions) counts as a drop instead of printing."""

    def __init__(self, path: Path, on_drop: Callable[[int], None]) -> None:
        super().__init__(path, when="midnight", utc=True, encoding="utf-8", delay=True)
        self.on_drop = on_drop

    def handleError(self, record: logging.LogRecord) -> None:
        self.on_drop(len(record.msg))


class PredictionLog:
    """Non-blocking writer of prediction-log lines. `start()` before use, `close()` to flush."""

    def __init__(
        self,
        directory: str | Path,
        on_drop: Callable[[int], None] = lambda _: None,
        max_queued_batches: int = 1_000,
    ) -> None:
        self.path = Path(directory) / f"predictions-{socket.gethostname()}-{os.getpid()}.jsonl"
        self._entries: queue.Queue[Any] = queue.Queue(maxsize=max_queued_batches)
        self._logger = logging.getLogger(f"mlops_starter.prediction_log.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(_DroppingQueueHandler(self._entries, on_drop))
        self._file_handler = _CountingFileHandler(self.path, on_drop)
        self._file_handler.setFormatter(_JsonLinesFormatter())
        self._listener = logging.handlers.QueueListener(self._entries, self._file_handler)

    def start(self) -> PredictionLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._listener.start()
        return self

    def write(self, entries: list[dict[str, Any]] | RowsOfColumns) -> None:
        """Queue one request batch of entries; returns at once."""
        if entries:
            self._logger.info(entries)

    def close(self) -> None:
        """Write out what is queued, then stop the writer thread."""
        self._listener.stop()
        self._file_handler.close()
