"""What the monitor reads: the prediction log the service writes, and the served
version's reference from the registry (training profile, test scores and metrics)."""

from __future__ import annotations

import glob
import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import numpy as np
import orjson
import pandas as pd

from mlops_starter.errors import PipelineError
from mlops_starter.registry.model_registry import Registry
from mlops_starter.tasks import Answers, answers_of
from mlops_starter.tasks.binary import BinaryAnswers
from mlops_starter.tasks.multiclass import MulticlassAnswers
from mlops_starter.tasks.regression import RegressionAnswers

LOG_KEYS = ("timestamp", "request_id", "model", "model_version", "features")
# Each task's answer holds one of these (Answers.fields): binary's, multi-class's, regression's.
ANSWER_KEYS = ("probability", "probabilities", "value")


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


def read_prediction_log(patterns: Iterable[str]) -> pd.DataFrame:
    """All entries of the log files matching `patterns` (globs), gzipped or not, one row
    per scored record; a bad line is named by file and line number."""
    paths = log_paths(patterns)
    lines = []
    for path in paths:
        try:
            with open_log(path) as log:
                lines += [(f"{path}:{n}", line) for n, line in enumerate(log, 1)]
        except FileNotFoundError:  # pruned by the service's retention since listed
            continue
    return parse_entries(lines, f"the prediction log ({len(paths)} files)")


def parse_entries(lines: list[tuple[str, bytes]], source: str) -> pd.DataFrame:
    """Log lines, each with where it was read (`file:line`), as one row per entry; a
    line that is no entry is named by its place. A key may hold null (a shadow row's
    features), but not be absent."""
    kept = [(place, line) for place, line in lines if line.strip()]
    entries = []
    for place, line in kept:
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise MonitorError(f"{place}: not JSON ({exc})") from None
    if not entries:
        raise MonitorError(f"{source} holds no entries")
    required = frozenset(LOG_KEYS)
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            raise MonitorError(f"{kept[index][0]}: not a prediction-log entry (not an object)")
        if not required <= entry.keys() or entry.keys().isdisjoint(ANSWER_KEYS):
            missing = [k for k in LOG_KEYS if k not in entry]
            missing = missing or [" or ".join(ANSWER_KEYS)]
            raise MonitorError(f"{kept[index][0]}: not a prediction-log entry (missing {missing})")
    log = pd.DataFrame(entries)
    # ISO 8601 with or without a fraction of a second: isoformat() drops a zero one.
    stamps = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().any():
        bad = int(np.flatnonzero(stamps.isna())[0])
        raise MonitorError(
            f"{kept[bad][0]}: timestamp {log['timestamp'].iloc[bad]!r} is not an ISO 8601 time"
        )
    log["timestamp"] = stamps
    return log


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
    return pd.DataFrame(list(log["features"]), index=log.index)


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
