"""Two registered versions behind one service (issue 27): which version answers each row,
and the challenger's shadow scores, computed off the request path.

- split: a row goes to the challenger when a hash of its id, salted with the experiment's
  name, falls below `challenger_share`, so one customer always meets the same version
  (and a new experiment name deals the arms again); a row without an id is dealt at random.
- shadow: the champion answers every row; the challenger scores the same rows after the
  answers are sent, and its scores go to the prediction log beside the champion's, marked
  `"arm": "shadow"`, for `mlops experiment report` to pair by request id and record id.

The verdict on what they logged is monitoring/experiment.py's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_starter.config import ExperimentConfig
from mlops_starter.serving.prediction_log import LogBatch
from mlops_starter.serving.scorer import Scorer, build_scorer
from mlops_starter.storage import LoggedModel
from mlops_starter.tasks import Answers, answers_of

CHAMPION_ARM, CHALLENGER_ARM, SHADOW_ARM = "champion", "challenger", "shadow"
_HASH_SCALE = float(2**64)


def to_challenger(
    ids: Sequence[Any] | None, rows: int, name: str, share: float, rng: np.random.Generator
) -> np.ndarray:
    """Per row, True when the challenger answers it: stable for a row with an id (the same
    id, experiment name and share always give the same arm, on every process and machine),
    random for a row without one."""
    if ids is None:
        return rng.random(rows) < share
    salt = name.encode() + b"\x00"
    chosen = np.empty(rows, dtype=bool)
    for row, identity in enumerate(ids):
        if identity is None:
            chosen[row] = rng.random() < share
        else:
            digest = hashlib.blake2b(salt + str(identity).encode(), digest_size=8).digest()
            chosen[row] = int.from_bytes(digest, "big") / _HASH_SCALE < share
    return chosen


def schema_differences(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> list[str]:
    """Why the challenger cannot take the champion's requests (empty when it can). Each
    argument is a served version's metadata: `feature_profile` and `id_column`."""
    ours, theirs = champion["feature_profile"], challenger["feature_profile"]
    differences = []
    if missing := sorted(set(theirs) - set(ours)):
        differences.append(f"the challenger needs features the champion's requests lack: {missing}")
    if unused := sorted(set(ours) - set(theirs)):
        differences.append(f"the challenger lacks features the champion's requests carry: {unused}")
    for name in sorted(set(ours) & set(theirs)):
        kinds = ours[name]["kind"], theirs[name]["kind"]
        if (kinds[0] == "category") != (kinds[1] == "category"):
            differences.append(
                f"feature {name!r} is {kinds[0]} for the champion, {kinds[1]} for it"
            )
    ours_answer, theirs_answer = (
        (answers.task, answers.described().get("classes"))
        for answers in (answers_of(dict(champion)), answers_of(dict(challenger)))
    )
    if ours_answer != theirs_answer:
        differences.append(
            f"the challenger answers {_answer_kind(*theirs_answer)}, the champion's clients "
            f"read {_answer_kind(*ours_answer)}"
        )
    if champion.get("id_column") != challenger.get("id_column"):
        differences.append(
            f"the id column is {champion.get('id_column')!r} for the champion, "
            f"{challenger.get('id_column')!r} for it"
        )
    return differences


# An answer's fields for a batch, an array each with a row per row (Answers.decide).
Decided = dict[str, np.ndarray]


def _answer_kind(task: str, classes: list[str] | None) -> str:
    return task if classes is None else f"{task} of classes {classes}"


@dataclass(frozen=True)
class ServedVersion:
    """One registry version as the service scores with it."""

    model: str
    version: str
    answers: Answers
    scorer: Scorer
    run_id: str = ""

    def score(self, columns: Mapping[str, np.ndarray]) -> Decided:
        """The answer's fields for each row, decided by this version's rule (threshold,
        cost matrix, interval)."""
        return self.answers.decide(self.scorer.predict(columns))


def served_version(
    pipeline: Any,
    metadata: Mapping[str, Any],
    labels: Mapping[str, str],
    rows: Any = None,
) -> tuple[ServedVersion, dict[str, Any]]:
    """A loaded model as the service scores with it, and its scorer's check."""
    answers = answers_of(dict(metadata))
    scorer, check = build_scorer(pipeline, metadata["feature_profile"], rows, answers)
    return ServedVersion(
        labels.get("registered_model", ""),
        labels.get("registered_version", "unknown"),
        answers,
        scorer,
        labels.get("run_id", ""),
    ), check


def load_challenger(
    model_path: str,
    metadata: Mapping[str, Any],
    labels: Mapping[str, str],
    champion_metadata: Mapping[str, Any],
) -> ServedVersion:
    """A challenger as `mlops package` imported it, ready to score the champion's requests:
    raises, saying why, when it cannot take them, cannot load, or cannot score."""
    if differences := schema_differences(champion_metadata, metadata):
        raise ValueError("; ".join(differences))
    logged = LoggedModel.load(model_path)  # allow-listed types only
    served, _ = served_version(logged.pipeline, metadata, labels)
    served.answers.pipeline_raw(logged.pipeline, logged.input_example())
    return served


Observe = Callable[[ServedVersion, str, Decided, float], None]


def rows_of(columns: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[mask] for name, values in columns.items()}


def timed_score(
    version: ServedVersion, arm: str, columns: Mapping[str, np.ndarray], observe: Observe
) -> Decided:
    """`version.score`, reported to `observe` with its arm and how long it took."""
    started = time.perf_counter()
    decided = version.score(columns)
    observe(version, arm, decided, time.perf_counter() - started)
    return decided


class ShadowScorer:
    """Scores the challenger on the rows the champion answered, after the answers are
    sent: rows gather for `linger_seconds`, then one call on the event loop scores them
    all (a compiled scorer costs about as much for hundreds of rows as for one). Not on a
    thread: a CPU-bound thread beside the event loop makes every answer wait for the GIL
    (the serving benchmark measured p50 up by 87%). Rows beyond `max_pending_rows` are
    dropped and counted, as the prediction log does: an experiment must never slow or
    fail production."""

    def __init__(
        self,
        challenger: ServedVersion,
        experiment: str,
        write: Callable[[LogBatch], None],
        observe: Observe,
        on_drop: Callable[[int], None],
        max_pending_rows: int = 100_000,
        linger_seconds: float = 0.05,
    ) -> None:
        self.challenger, self.experiment = challenger, experiment
        self.write, self.observe, self.on_drop = write, observe, on_drop
        self.max_pending_rows, self.linger_seconds = max_pending_rows, linger_seconds
        self._pending: list[tuple[Any, ...]] = []
        self._pending_rows = 0
        self._flush: asyncio.TimerHandle | None = None

    def submit(
        self,
        columns: Mapping[str, np.ndarray],
        timestamp: str,
        request_ids: Sequence[str],
        ids: Sequence[Any],
    ) -> None:
        """Keep rows the champion answered at `timestamp` for the next flush; called on
        the event loop, returns at once."""
        rows = len(request_ids)
        if self._pending_rows + rows > self.max_pending_rows:
            self.on_drop(rows)
            return
        self._pending.append((columns, [timestamp] * rows, request_ids, ids))
        self._pending_rows += rows
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.linger_seconds, self.flush)

    def flush(self) -> None:
        """Score and log every row kept so far."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        taken, self._pending, self._pending_rows = self._pending, [], 0
        if taken:
            self._score(taken)

    def _score(self, taken: list[tuple[Any, ...]]) -> None:
        columns = {name: np.concatenate([t[0][name] for t in taken]) for name in taken[0][0]}
        timestamps, request_ids, ids = ([v for t in taken for v in t[k]] for k in (1, 2, 3))
        try:
            decided = timed_score(self.challenger, SHADOW_ARM, columns, self.observe)
        except Exception:  # a challenger that fails on some rows must not stop the thread
            logging.getLogger(__name__).exception("shadow scoring failed")
            self.on_drop(len(request_ids))
            return
        self.write(
            LogBatch(
                {
                    "timestamp": timestamps,
                    "request_id": request_ids,
                    "model": self.challenger.model,
                    "model_version": self.challenger.version,
                    "experiment": self.experiment,
                    "arm": SHADOW_ARM,
                },
                ids,
                None,  # the champion's entry of the same row holds the features
                self.challenger.answers.per_row(decided),
            )
        )


Scored = tuple[Decided, list[str]]  # the answers, and the version that gave each row's


class SameTurnBatcher:
    """Scores in one call the requests that reach scoring in the same turn of the event
    loop. Most of a small call to a compiled scorer is fixed cost (0.28 ms for one row,
    3.4 ms for a thousand: benchmarks/serving.py, in process), and under load several
    single-row requests are parsed in each turn. The call waits for nothing (it runs
    in the next turn), so a lone request is not delayed; unlike BentoML's adaptive
    batching there is no dispatcher and no timeout to tune."""

    def __init__(self, score: Callable[[Mapping[str, np.ndarray], Sequence[Any] | None], Scored]):
        self._score = score
        self._waiting: list[tuple[Mapping[str, np.ndarray], Sequence[Any] | None, Any]] = []

    async def score(self, columns: Mapping[str, np.ndarray], ids: Sequence[Any] | None) -> Scored:
        """`score(columns, ids)`, shared with the requests of this turn."""
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        self._waiting.append((columns, ids, answered))
        if len(self._waiting) == 1:
            loop.call_soon(self._score_waiting)
        result: Scored = await answered
        return result

    def _score_waiting(self) -> None:
        taken, self._waiting = self._waiting, []
        try:
            if len(taken) == 1:
                columns, ids, answered = taken[0]
                answered.set_result(self._score(columns, ids))
                return
            sizes = [len(next(iter(columns.values()))) for columns, _, _ in taken]
            together = {
                name: np.concatenate([columns[name] for columns, _, _ in taken])
                for name in taken[0][0]
            }
            all_ids = None
            if any(ids is not None for _, ids, _ in taken):
                all_ids = [
                    identity
                    for (_, ids, _), rows in zip(taken, sizes, strict=True)
                    for identity in (ids if ids is not None else [None] * rows)
                ]
            decided, versions = self._score(together, all_ids)
        except Exception as error:  # each request answers 500 for itself
            for _, _, answered in taken:
                if not answered.done():
                    answered.set_exception(error)
            return
        start = 0
        for (_, _, answered), rows in zip(taken, sizes, strict=True):
            end = start + rows
            if not answered.done():  # its client may have gone
                answered.set_result(
                    (
                        {name: values[start:end] for name, values in decided.items()},
                        versions[start:end],
                    )
                )
            start = end


class Router:
    """The experiment as the service runs it: which version answers each row of a batch,
    what the log and /metadata say about it, and the shadow's share of the work. With
    no challenger (mode off, none in the bento, or one that failed to load) every row
    goes to the champion and the log looks as without an experiment."""

    def __init__(
        self,
        champion: ServedVersion,
        challenger: ServedVersion | None,
        settings: ExperimentConfig,
        observe: Observe,
        write: Callable[[LogBatch], None],
        on_shadow_drop: Callable[[int], None],
        off_because: str | None = None,
    ) -> None:
        self.champion, self.challenger, self.settings = champion, challenger, settings
        self.observe, self.off_because = observe, off_because
        self.splitting = challenger is not None and settings.mode == "split"
        self.shadow = (
            ShadowScorer(challenger, settings.name, write, observe, on_shadow_drop)
            if challenger is not None and settings.mode == SHADOW_ARM
            else None
        )
        self._unassigned = np.random.default_rng()  # deals the rows that carry no id

    def score(self, columns: Mapping[str, np.ndarray], ids: Sequence[Any] | None) -> Scored:
        """Per row: the answer's fields, and the version that answered it."""
        rows = len(next(iter(columns.values())))
        if not self.splitting or self.challenger is None:
            decided = timed_score(self.champion, CHAMPION_ARM, columns, self.observe)
            return decided, [self.champion.version] * rows
        chosen = to_challenger(
            ids, rows, self.settings.name, self.settings.challenger_share, self._unassigned
        )
        merged: Decided = {}
        for version, arm, mask in (
            (self.champion, CHAMPION_ARM, ~chosen),
            (self.challenger, CHALLENGER_ARM, chosen),
        ):
            if mask.any():
                part = timed_score(version, arm, rows_of(columns, mask), self.observe)
                for name, values in part.items():
                    if name not in merged:
                        merged[name] = np.empty((rows, *values.shape[1:]), dtype=values.dtype)
                    merged[name][mask] = values
        versions = np.where(chosen, self.challenger.version, self.champion.version)
        return merged, versions.tolist()

    def answered_by(self, versions: list[str]) -> dict[str, Any]:
        """The log's keys for rows answered by `versions`: the version, and during an
        experiment its name and each row's arm (a list only while a split deals rows)."""
        if self.challenger is None:
            return {"model_version": self.champion.version}
        keys: dict[str, Any] = {"model_version": self.champion.version}
        arm: Any = CHAMPION_ARM
        if self.splitting:
            keys["model_version"] = versions
            arm = [self.arm(version) for version in versions]
        return keys | {"experiment": self.settings.name, "arm": arm}

    def arm(self, version: str) -> str:
        """The arm a version serves in: `challenger` during a split, `shadow` in shadow."""
        if self.challenger is None or version != self.challenger.version:
            return CHAMPION_ARM
        return CHALLENGER_ARM if self.splitting else SHADOW_ARM

    def shadow_rows(
        self,
        columns: Mapping[str, np.ndarray],
        timestamp: str,
        request_ids: Sequence[str],
        ids: Sequence[Any],
    ) -> None:
        """Hand answered rows to the shadow, when one runs."""
        if self.shadow is not None and request_ids:
            self.shadow.submit(columns, timestamp, request_ids, ids)

    def describe(self) -> dict[str, Any]:
        """The experiment, as /metadata shows it."""
        return {
            "name": self.settings.name,
            "mode": self.settings.mode,
            "active": self.challenger is not None,
            "challenger": self.challenger.version if self.challenger else None,
            "challenger_share": self.settings.challenger_share,
            "off_because": self.off_because,
        }

    def close(self) -> None:
        """Score and log what the shadow still holds."""
        if self.shadow is not None:
            self.shadow.flush()
