"""What every task answers, and what inference reads from a target column."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_starter.config import DataConfig, LeakageConfig, TrainConfig, ValidateConfig
from mlops_starter.errors import ConfigError

# Distinct target values kept for naming classes and for messages; a target with more is
# no set of classes (data.max_classes is at most this).
MAX_LISTED_VALUES = 1000
Kind = Literal["boolean", "integer", "float", "text", "other"]


def expectation(
    kind: str, description: str, setting: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """A Great Expectations expectation in JSON form, the form a task states its checks in
    (validation/ runs them); `setting` names the params.yaml key it comes from."""
    meta = {"description": description} | ({"setting": setting} if setting else {})
    return {"type": kind, "kwargs": kwargs, "meta": meta}


@dataclass(frozen=True)
class TargetValues:
    """What inference needs to know of a target column's non-null values: their kind,
    how many distinct ones there are (and which, when few), whether numbers are whole,
    and how many are infinite."""

    column: str
    kind: Kind
    type_name: str
    n_distinct: int
    distinct: tuple[Any, ...]  # sorted, all of them when n_distinct <= MAX_LISTED_VALUES
    whole: bool
    infinite: int

    @classmethod
    def of(cls, values: pa.ChunkedArray | pa.Array, column: str) -> TargetValues:
        present = pc.drop_null(values)
        kind = _kind(present.type)
        if kind == "float":  # NaN is missing too, as pandas reads it; -0.0 is 0.0
            present = pc.add(pc.filter(present, pc.invert(pc.is_nan(present))), 0.0)
        unique = pc.unique(present)
        infinite, whole = 0, kind in ("integer", "boolean")
        if kind == "float":
            infinite = int(pc.sum(pc.is_inf(present)).as_py() or 0)
            finite = pc.filter(unique, pc.is_finite(unique))
            whole = bool(pc.all(pc.equal(finite, pc.floor(finite))).as_py() is not False)
        listed = unique if len(unique) <= MAX_LISTED_VALUES else unique.slice(0, 10)
        distinct = tuple(sorted(listed.to_pylist(), key=_sort_key))
        return cls(column, kind, str(present.type), len(unique), distinct, whole, infinite)

    def shown(self, at_most: int = 10) -> str:
        """A few of the values, for a message."""
        more = ", ..." if self.n_distinct > at_most else ""
        shown = (repr(v) if isinstance(v, str) else str(v) for v in self.distinct[:at_most])
        return ", ".join(shown) + more


def _kind(arrow_type: pa.DataType) -> Kind:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    return "other"


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text, each in its own order (a column holds one kind)."""
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


@dataclass(frozen=True)
class Task(ABC):
    """One supervised task on `target`, and why it was chosen (printed at ingest)."""

    name: ClassVar[str]
    target: str
    reason: str

    @classmethod
    @abstractmethod
    def fits(cls, values: TargetValues, data: DataConfig) -> str | None:
        """Why this task cannot learn `values`, or None when it can."""

    @classmethod
    @abstractmethod
    def of(cls, values: TargetValues, data: DataConfig, reason: str) -> Task:
        """The task for a target that `fits`."""

    @abstractmethod
    def expectations(self, rows: int, checks: ValidateConfig) -> list[dict[str, Any]]:
        """The validate stage's checks on the target beyond present and never null, for a
        table of `rows` rows (GX JSON form)."""

    @abstractmethod
    def encode(self, labels: pd.Series) -> np.ndarray:
        """The target as the model learns it, for one batch (validate checked the column)."""

    # --- the split's report and audit --------------------------------------------------

    # Bits of a duplicate-group key that hold the label (split.labelled_keys): groups
    # whose rows differ in them have conflicting labels. 0: labels are not compared.
    label_bits: ClassVar[int]

    @abstractmethod
    def tally(self, y: np.ndarray) -> np.ndarray:
        """Sums over one batch's encoded labels that add up to a side's `balance`."""

    @abstractmethod
    def balance(self, tally: np.ndarray, rows: int) -> dict[str, Any]:
        """What the split report says about one side's labels."""

    @abstractmethod
    def side_problem(self, side: str, tally: np.ndarray, rows: int) -> str | None:
        """Why the `side` split cannot be trained or scored on, or None."""

    leak_score_name: ClassVar[str]

    @abstractmethod
    def leak_score(self, feature: pd.Series, y: pd.Series) -> float:
        """How well one feature alone predicts the target, 0 (nothing) to 1 (perfectly)."""

    @abstractmethod
    def leak_bar(self, leakage: LeakageConfig) -> tuple[float, str]:
        """The leak audit's ceiling on `leak_score` and the setting it comes from."""

    # --- learning: what cross-validation, the winner and the refit model need ----------

    # Classes (every fold holds each), or a number.
    has_classes: ClassVar[bool] = True
    # Metric name -> higher is better: the names train.primary_metric takes for this task.
    metrics: ClassVar[dict[str, bool]]
    default_metric: ClassVar[str]  # train.primary_metric: auto
    default_compared: ClassVar[str]  # gate.compare_metric: auto
    # metrics/cv.json: each fold's mean for these, the spread for the second tuple, and
    # the first few on each candidate's line
    summary_metrics: ClassVar[tuple[str, ...]]
    spread_metrics: ClassVar[tuple[str, ...]]
    candidate_metrics: ClassVar[tuple[str, ...]]

    @classmethod
    def metric(cls, setting: str) -> str:
        """train.primary_metric for this task: `auto` is the task's own; a name the task
        has no such metric for is refused, naming the ones it has."""
        if setting == "auto":
            return cls.default_metric
        if setting not in cls.metrics:
            raise ConfigError(
                f"train.primary_metric: {setting!r} is no {cls.name} metric; set auto or one "
                f"of {', '.join(cls.metrics)}"
            )
        return setting

    @classmethod
    def compared(cls, setting: str) -> str:
        """gate.compare_metric for this task: `auto` is the task's own; a name the task
        has no such metric for is refused, naming the ones it has."""
        name = cls.default_compared if setting == "auto" else setting
        if name not in cls.metrics:
            raise ConfigError(
                f"gate.compare_metric: {name!r} is no {cls.name} metric; set auto or one of "
                f"{', '.join(cls.metrics)}"
            )
        return name

    @classmethod
    def bars(cls, bars: dict[str, float]) -> dict[str, float]:
        """gate.min_test.<task>, each name checked to be one of this task's metrics."""
        if unknown := sorted(set(bars) - set(cls.metrics)):
            raise ConfigError(
                f"gate.min_test.{cls.name}: {', '.join(unknown)} is no {cls.name} metric; "
                f"bar any of {', '.join(cls.metrics)}"
            )
        return bars

    @classmethod
    def best(cls, metric: str, scores: dict[Any, float]) -> Any:
        """The key of `scores` whose `metric` value is best (ties: the first)."""
        sign = 1.0 if cls.metrics[metric] else -1.0
        return max(scores, key=lambda key: sign * scores[key])

    @classmethod
    def predict_raw(cls, model: Any, X: pd.DataFrame) -> np.ndarray:
        """What a fitted pipeline says of rows before the task's finishing touch
        (calibration, the interval): each row's probabilities, or its value."""
        return np.asarray(model.predict_proba(X))

    @classmethod
    @abstractmethod
    def score(cls, metric: str, y: np.ndarray, raw: np.ndarray) -> float:
        """One metric of raw predictions (a tuning trial's inner folds)."""

    # Multi-class and regression learn here; binary's calibration map and tuned threshold
    # are cross-validation's own (training/cv.py), as its model files have always named them.

    def learn(self, oof: np.ndarray, y: np.ndarray, settings: TrainConfig) -> dict[str, Any]:
        """What the out-of-fold predictions teach beyond the model (calibration, the
        decision rule, the interval): plain numbers, kept with the refit model."""
        raise NotImplementedError(f"{self.name} learns in training/cv.py")

    def fold_metrics(
        self, y: np.ndarray, oof: np.ndarray, learnt: dict[str, Any]
    ) -> dict[str, float]:
        """One fold's metrics, its rows' out-of-fold predictions finished by `learnt`."""
        raise NotImplementedError(f"{self.name} learns in training/cv.py")

    def finish(self, model: Any, learnt: dict[str, Any]) -> Any:
        """The refit model that is saved and served: `model` with what `learn` found."""
        raise NotImplementedError(f"{self.name} learns in training/cv.py")

    def test_report(self, model: Any, X: pd.DataFrame, y: np.ndarray) -> TestReport:
        """The served model (`finish`) scored once on the test rows."""
        raise NotImplementedError(f"{self.name} is scored in evaluation/evaluate.py")

    @abstractmethod
    def read_answers(self, answers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(encoded targets, raw predictions) back from the test answers evaluate wrote."""

    @abstractmethod
    def rarest_rows(self, y: np.ndarray) -> int:
        """Rows of the rarest class in `y` (binary: positives, and none without a
        negative), or every row for a number: what a fair comparison needs enough of."""

    @classmethod
    @abstractmethod
    def answers(cls, metadata: dict[str, Any]) -> Answers:
        """How a version of this task answers, from its serving metadata."""


@dataclass(frozen=True)
class TestReport:
    """A task's test-set figures: metrics/test.json's, the plot tables by file name, and
    each row's answer (actual beside predicted)."""

    __test__ = False  # not a pytest class, whatever its name

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    answers: pd.DataFrame


class Answers(ABC):
    """How a served version of a task answers each row, read from the serving metadata
    its train stage wrote. From the model's raw output it decides the answer's fields (a
    batch's arrays, which the service merges across versions row by row), and turns them
    into each row's JSON values (records, the prediction log, batch scores) or the
    columns answer; it gives their JSON Schema (the OpenAPI document's `Prediction`).
    The service, `mlops score` and the log all ask this object, so a task answers alike
    everywhere."""

    task: ClassVar[str]

    def pipeline_raw(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """The saved model's raw output for rows: the positive class's probability, each
        class's probability (a column per class), or the value."""
        return TASKS[self.task].predict_raw(model, frame)

    @abstractmethod
    def decide(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """The answer's fields for a batch's raw output, an array each, a row per row."""

    def per_row(self, decided: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Each field's JSON value per row."""
        return {name: values.tolist() for name, values in decided.items()}

    def columns(self, decided: dict[str, np.ndarray]) -> dict[str, Any]:
        """The columns answer: an array per field."""
        return dict(decided)

    @abstractmethod
    def fields(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of each answer field, in the answer's order (all required)."""

    def column_fields(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of each column of the columns answer."""
        return {name: {"type": "array", "items": field} for name, field in self.fields().items()}

    @abstractmethod
    def described(self) -> dict[str, Any]:
        """What /metadata says of how answers are made (threshold, classes, interval)."""

    # --- what monitoring reads back from the prediction log ----------------------------

    @abstractmethod
    def from_log(self, lines: pd.DataFrame) -> dict[str, np.ndarray]:
        """`decide`'s fields again, from the prediction log's lines (a column per key)."""

    @abstractmethod
    def drift_series(self, decided: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The numbers whose distribution prediction drift compares with the test set's:
        the positive class's probability, each class's, or the value."""

    # What an experiment weighs each matured row by (monitoring/experiment.py).
    loss_name: ClassVar[str] = "the log loss"

    @abstractmethod
    def actual(self, actual: pd.Series) -> np.ndarray:
        """The labels or values that arrived, as the task's metrics take them (binary:
        1 for the positive label; multi-class: the class's code, -1 for one unknown)."""

    @abstractmethod
    def raw(self, decided: dict[str, np.ndarray]) -> np.ndarray:
        """What Task.score takes of the answers: probabilities, or the value."""

    @abstractmethod
    def utility(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        """Each row's gain, higher is better: minus its log loss, or minus its squared
        error (`y` as `actual` gives it)."""

    def correct(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray | None:
        """Whether each row's decided label is its actual one; None for a number."""
        return None

    def class_probabilities(
        self, decided: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Each row's probability of each class (n x k; binary's positive class last) and
        its decided class code, which performance is estimated from before labels arrive
        (expected_performance.py); None for a number."""
        return None

    @abstractmethod
    def realized(self, decided: dict[str, np.ndarray], actual: pd.Series) -> dict[str, float] | str:
        """The task's metrics of answers whose actual labels or values arrived, or why
        they cannot be computed (one class only, say)."""


TASKS: dict[str, type[Task]] = {}


def register_task(task: type[Task]) -> type[Task]:
    """Make `task` one of data.task's values (a class decorator)."""
    TASKS[task.name] = task
    return task


def answers_of(metadata: dict[str, Any]) -> Answers:
    """How the version whose serving metadata this is answers (binary's names no task)."""
    return TASKS[metadata.get("task", "binary")].answers(metadata)
