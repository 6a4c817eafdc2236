"""What the monitor reads: the prediction log the service writes, and the served
version's reference from the registry (training profile, test scores and metrics)."""

from __future__ import annotations

import glob
import gzip
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from mlops_starter.errors import PipelineError
from mlops_starter.registry.model_registry import Registry
from mlops_starter.serving.prediction_log import (
    ANSWER_KEYS,
    LOG_KEYS,
    REWRITES,
    holds_every_key,
)
from mlops_starter.tasks import Answers, answers_of
from mlops_starter.tasks.binary import BinaryAnswers
from mlops_starter.tasks.multiclass import MulticlassAnswers
from mlops_starter.tasks.regression import RegressionAnswers

FEATURE_PREFIX = "features."  # a parsed entry's feature `x` is its column `features.x`


class MonitorError(PipelineError):
    """The monitor's input is missing or malformed."""


def log_paths(patterns: Iterable[str]) -> list[str]:
    """The log files matching `patterns` (globs), in name order. A rotated file is
    briefly there twice while it is rewritten: only its rewrite is taken."""
    found = {p for pattern in patterns for p in glob.glob(pattern)}
    paths = sorted(p for p in found if not any(p + suffix in found for suffix in REWRITES))
    if not paths:
        raise MonitorError(f"no prediction log files match {list(patterns)}")
    return paths


def _places(listed: str) -> tuple[str, ...]:
    """Where a listed log file may be now: itself, or its rewrite if it was rotated
    since it was listed (rotation writes the rewrite before it deletes the file)."""
    return (listed, *(listed + suffix for suffix in REWRITES))


def current_path(listed: str) -> str | None:
    """The first of `_places` that exists, or None if the service's retention pruned it."""
    return next((path for path in _places(listed) if os.path.exists(path)), None)


def open_log(path: str) -> BinaryIO:
    """A JSON-lines log file's bytes, gzipped or not."""
    if path.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return open(path, "rb")


@dataclass(frozen=True)
class LogText:
    """Whole log lines read from one place (`where`: a file, or a state's segment),
    from byte `after_byte` of it if that is not its start; it names a line at fault."""

    data: bytes
    where: str
    after_byte: int | None = None

    def place(self, line: int) -> str:
        if self.after_byte is None:
            return f"{self.where}:{line}"
        return f"{self.where}, line {line} after byte {self.after_byte}"


def read_prediction_log(patterns: Iterable[str]) -> pd.DataFrame:
    """All entries of the log files matching `patterns` (globs), JSON lines (gzipped or
    not) or rotated to Parquet, one row per scored record, in file order; a bad line is
    named by file and line number."""
    paths = log_paths(patterns)
    source = f"the prediction log ({len(paths)} files)"
    pieces: list[pd.DataFrame] = []
    texts: list[LogText] = []
    for listed in paths:
        found = _read_now(listed)
        if isinstance(found, LogText):
            texts.append(found)
        elif found is not None:
            if texts:
                pieces.append(parse_entries(texts, source))
                texts = []
            pieces.append(rotated_entries(*found))
    if texts or not pieces:
        pieces.append(parse_entries(texts, source))
    return pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]


def _read_now(listed: str) -> LogText | tuple[pa.Table, str] | None:
    """A listed file's content from the first of `_places` it is still at, or None if
    the service's retention pruned it."""
    for path in _places(listed):
        try:
            if path.endswith(".parquet"):
                return pq.read_table(path), path
            with open_log(path) as log:
                return LogText(log.read(), path)
        except FileNotFoundError:
            continue
    return None


def parse_entries(texts: list[LogText], source: str) -> pd.DataFrame:
    """Log lines as one row per entry, each feature in a column `features.<name>`
    (feature_frame). A key may hold null (a shadow row's features), but not be absent."""
    return parse_lines(texts, source)[0]


def parse_lines(texts: list[LogText], source: str) -> tuple[pd.DataFrame, bool]:
    """parse_entries's entries, and whether Arrow read them all (a table Parquet keeps).

    Arrow's JSON reader parses them column by column (three times orjson's speed, and
    no dict per line); lines it cannot take, or that it reads as a key absent, are
    parsed one at a time, which names the line at fault or reads them alike."""
    data = b"".join(text.data for text in texts)
    options = pa_json.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20))
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=options)
    except pa.ArrowInvalid:  # not JSON, not an object, or a key's type changing
        table = None
    if table is not None and holds_every_key(table):
        log, columnar = _entries_of(table), True
    else:  # only a line-by-line read tells an absent key from a null one, and names it
        log, columnar = _parsed_line_by_line(texts, source), False
    return _timed(log, lambda bad: _place_of(texts, bad)), columnar


def rotated_entries(table: pa.Table, where: str) -> pd.DataFrame:
    """The entries of a log file rotated to Parquet (serving/prediction_log.py), as
    parse_entries gives its lines."""
    if not holds_every_key(table):
        raise MonitorError(f"{where}: not a rotated prediction log (a key is missing)")
    return _timed(_entries_of(table), lambda bad: f"{where}, entry {bad + 1}")


def _timed(log: pd.DataFrame, place_of: Callable[[int], str]) -> pd.DataFrame:
    # ISO 8601 with or without a fraction of a second: isoformat() drops a zero one.
    stamps = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().any():
        bad = int(np.flatnonzero(stamps.isna())[0])
        raise MonitorError(
            f"{place_of(bad)}: timestamp {log['timestamp'].iloc[bad]!r} is not an ISO 8601 time"
        )
    log["timestamp"] = stamps
    return log


def _entries_of(table: pa.Table) -> pd.DataFrame:
    """Arrow's entries as a frame, the features struct flattened into columns."""
    features = table.column("features").combine_chunks()
    names = [features.type.field(i).name for i in range(features.type.num_fields)]
    flat = pa.table(dict(zip(names, features.flatten(), strict=True)))  # a null: all null
    return pd.concat(
        [table.drop_columns(["features"]).to_pandas(), flat.to_pandas().add_prefix(FEATURE_PREFIX)],
        axis=1,
    )


def _parsed_line_by_line(texts: list[LogText], source: str) -> pd.DataFrame:
    lines = [
        (text.place(n), line)
        for text in texts
        for n, line in enumerate(text.data.splitlines(), 1)
        if line.strip()
    ]
    entries = []
    for place, line in lines:
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise MonitorError(f"{place}: not JSON ({exc})") from None
    if not entries:
        raise MonitorError(f"{source} holds no entries")
    required = frozenset(LOG_KEYS)
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            raise MonitorError(f"{lines[index][0]}: not a prediction-log entry (not an object)")
        if not required <= entry.keys() or entry.keys().isdisjoint(ANSWER_KEYS):
            missing = [k for k in LOG_KEYS if k not in entry]
            missing = missing or [" or ".join(ANSWER_KEYS)]
            raise MonitorError(f"{lines[index][0]}: not a prediction-log entry (missing {missing})")
    features = pd.DataFrame([entry.pop("features") or {} for entry in entries])
    return pd.concat([pd.DataFrame(entries), features.add_prefix(FEATURE_PREFIX)], axis=1)


def log_lines(log: pd.DataFrame) -> bytes:
    """Parsed entries (parse_entries) as log lines again, features and issues as the
    service writes them: what `mlops monitor --log` reads of a log rewritten in pandas."""
    features = feature_frame(log)
    entries = log.drop(columns=[FEATURE_PREFIX + name for name in features.columns]).assign(
        timestamp=[t.isoformat() for t in log["timestamp"]],
        features=pd.Series(features.to_dict(orient="records"), index=log.index),
    )
    if "issues" in entries:  # Arrow reads a list as an array
        entries["issues"] = [list(found) for found in entries["issues"]]
    return b"".join(
        orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        for entry in entries.to_dict(orient="records")
    )


def _place_of(texts: list[LogText], entry: int) -> str:
    """Where the `entry`th entry (counting no blank line) was read."""
    for text in texts:
        lines = [n for n, line in enumerate(text.data.splitlines(), 1) if line.strip()]
        if entry < len(lines):
            return text.place(lines[entry])
        entry -= len(lines)
    raise IndexError(entry)


def answers(log: pd.DataFrame) -> pd.DataFrame:
    """The entries that were answers: not a shadow challenger's scores (serving/routing.py)."""
    return log[log["arm"] != "shadow"] if "arm" in log else log


def answers_in_log(log: pd.DataFrame, positive_label: Any) -> Answers:
    """How the log's answers are read back, from the fields they hold: a multi-class
    model's probabilities by class, a regression's value and interval, or binary's
    probability of `positive_label` (data.positive_label). The decision rule is the
    logged label's, so no threshold or coverage is needed (they are NaN here)."""
    if "probabilities" in log:
        first = next(p for p in log["probabilities"] if isinstance(p, dict))
        return MulticlassAnswers(tuple(first))
    if "value" in log:
        half_width = float((log["upper"] - log["value"]).dropna().iloc[0])
        return RegressionAnswers(half_width, float("nan"))
    return BinaryAnswers(float("nan"), positive_label)


def served_version(log: pd.DataFrame) -> str:
    """The version the monitor checks by default: the newest champion's answer (during an
    experiment, the challenger's rows are the experiment's to judge)."""
    answered = answers(log)
    if "arm" in answered:
        answered = answered[answered["arm"].isna() | (answered["arm"] == "champion")]
    if answered.empty:
        raise MonitorError("the log holds no champion's answer; name a version with --version")
    return str(answered.sort_values("timestamp")["model_version"].iloc[-1])


def entries_of(log: pd.DataFrame, version: str) -> pd.DataFrame:
    """The log entries one model version answered."""
    served = answers(log)
    served = served[served["model_version"].astype(str) == version]
    if served.empty:
        versions = sorted(log["model_version"].astype(str).unique())
        raise MonitorError(f"the log holds no entries of version {version} (it has {versions})")
    return served


def feature_frame(log: pd.DataFrame) -> pd.DataFrame:
    """The features the entries were sent, by name."""
    columns = [c for c in log.columns if c.startswith(FEATURE_PREFIX)]
    return log[columns].rename(columns=lambda c: c[len(FEATURE_PREFIX) :])


@dataclass(frozen=True)
class Reference:
    """What one model version looked like at training and evaluation time."""

    model: str
    version: str
    answers: Answers  # how the version answers: its task, threshold or classes
    id_column: str | None
    feature_profile: dict[str, dict[str, Any]]
    score_profile: dict[str, Any]
    test_metrics: dict[str, float]


def load_reference(registry: Registry, version: str) -> Reference:
    """The version's training profile (MLmodel metadata), test-set score profile
    (evaluate's artifact) and test metrics (version tags), from the registry."""
    import mlflow

    found = registry.version(version)
    serving = (
        mlflow.models.get_model_info(f"models:/{registry.name}/{found.version}").metadata or {}
    )
    if "feature_profile" not in serving:
        raise MonitorError(
            f"version {found.version} was logged without a feature profile; retrain it"
        )
    try:
        scores = mlflow.artifacts.load_dict(f"runs:/{found.run_id}/reference_scores.json")
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise MonitorError(f"version {found.version} has no reference_scores.json: {exc}") from None
    metrics = {
        k.removeprefix("test."): float(v) for k, v in found.tags.items() if k.startswith("test.")
    }
    return Reference(
        model=registry.name,
        version=str(found.version),
        answers=answers_of(serving),
        id_column=serving.get("id_column"),
        feature_profile=serving["feature_profile"],
        score_profile=scores,
        test_metrics=metrics,
    )
