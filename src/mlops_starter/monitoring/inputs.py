"""What the monitor reads: the prediction log the service writes, and the served
version's reference from the registry (training profile, test scores and metrics)."""

from __future__ import annotations

import functools
import glob
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from mlops_starter.errors import PipelineError
from mlops_starter.registry.model_registry import Registry
from mlops_starter.tasks import Answers, answers_of
from mlops_starter.tasks.binary import BinaryAnswers
from mlops_starter.tasks.multiclass import MulticlassAnswers
from mlops_starter.tasks.regression import RegressionAnswers

LOG_KEYS = ("timestamp", "request_id", "model", "model_version", "features")
# Each task's answer holds one of these (Answers.fields): binary's, multi-class's, regression's.
ANSWER_KEYS = ("probability", "probabilities", "value")
FEATURE_PREFIX = "features."  # a parsed entry's feature `x` is its column `features.x`


class MonitorError(PipelineError):
    """The monitor's input is missing or malformed."""


def log_paths(patterns: Iterable[str]) -> list[str]:
    """The log files matching `patterns` (globs), in name order. A rotated file is
    briefly there twice while it is gzipped: only its .gz is taken."""
    found = {p for pattern in patterns for p in glob.glob(pattern)}
    paths = sorted(p for p in found if p + ".gz" not in found)
    if not paths:
        raise MonitorError(f"no prediction log files match {list(patterns)}")
    return paths


def open_log(path: str) -> BinaryIO:
    """A log file's bytes, gzipped or not. A rotated file gzipped since it was listed
    is read from its .gz; one pruned since raises FileNotFoundError (the readers skip it)."""
    if path.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return cast(BinaryIO, gzip.open(path + ".gz", "rb"))


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
    """All entries of the log files matching `patterns` (globs), gzipped or not, one row
    per scored record; a bad line is named by file and line number."""
    paths = log_paths(patterns)
    texts = []
    for path in paths:
        try:
            with open_log(path) as log:
                texts.append(LogText(log.read(), path))
        except FileNotFoundError:  # pruned by the service's retention since listed
            continue
    return parse_entries(texts, f"the prediction log ({len(paths)} files)")


def parse_entries(texts: list[LogText], source: str) -> pd.DataFrame:
    """Log lines as one row per entry, each feature in a column `features.<name>`
    (feature_frame). A key may hold null (a shadow row's features), but not be absent.

    Arrow's JSON reader parses them column by column (three times orjson's speed, and
    no dict per line); lines it cannot take, or that it reads as a key absent, are
    parsed one at a time, which names the line at fault or reads them alike."""
    try:
        log = _parsed_by_arrow(texts)
    except pa.ArrowInvalid:  # not JSON, not an object, or a key's type changing
        log = None
    if log is None:
        log = _parsed_line_by_line(texts, source)
    # ISO 8601 with or without a fraction of a second: isoformat() drops a zero one.
    stamps = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().any():
        bad = int(np.flatnonzero(stamps.isna())[0])
        raise MonitorError(
            f"{_place_of(texts, bad)}: timestamp {log['timestamp'].iloc[bad]!r} is not an "
            "ISO 8601 time"
        )
    log["timestamp"] = stamps
    return log


def _parsed_by_arrow(texts: list[LogText]) -> pd.DataFrame | None:
    """The entries, or None where the lines hold no entry or a line may lack a key:
    only a line-by-line read tells an absent key from a null one, and names the line."""
    data = b"".join(text.data for text in texts)
    options = pa_json.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20))
    table = pa_json.read_json(io.BytesIO(data), read_options=options)
    if table.num_rows == 0 or not _every_line_has_every_key(table):
        return None
    features = table.column("features").combine_chunks()
    names = [features.type.field(i).name for i in range(features.type.num_fields)]
    flat = pa.table(dict(zip(names, features.flatten(), strict=True)))  # a null: all null
    return pd.concat(
        [table.drop_columns(["features"]).to_pandas(), flat.to_pandas().add_prefix(FEATURE_PREFIX)],
        axis=1,
    )


def _every_line_has_every_key(table: pa.Table) -> bool:
    """Whether no null in `table` can be a key absent from a line: the log's keys are
    never null, an answer's key is there on every line, and features are null only on a
    shadow challenger's line."""
    names = set(table.column_names)
    if not set(LOG_KEYS) <= names or names.isdisjoint(ANSWER_KEYS):
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
