"""Binary: one label (data.positive_label) against the other, or against all the rest
(data.positive_vs_rest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlops_starter.config import DataConfig, LeakageConfig, ValidateConfig
from mlops_starter.errors import ConfigError
from mlops_starter.tasks.base import Answers, TargetValues, Task, expectation, register_task

_EDGE = 1e-15  # probabilities are clipped this far from 0 and 1 before a log is taken


def is_positive(labels: pd.Series, positive_label: str | int | bool) -> pd.Series:
    """Where the label equals `positive_label`, compared as the labels' own type. No check
    on the whole column: a batch of a streamed table may hold one class only."""
    if pd.api.types.is_numeric_dtype(labels) and not isinstance(positive_label, str):
        return labels == positive_label
    return labels.astype(str) == str(positive_label)


def single_feature_auc(feature: pd.Series, y: pd.Series) -> float:
    """How well one feature alone ranks the classes, direction-free (0.5 = no signal, 1 = perfect).

    Categorical features are scored by their category's positive rate on the same
    rows, so an id-like column (one row per category) shows up as a near-perfect leak.
    """
    from sklearn.metrics import roc_auc_score  # a split-stage import, not the CLI's

    if pd.api.types.is_numeric_dtype(feature) and not pd.api.types.is_bool_dtype(feature):
        score = feature.astype(float).fillna(feature.median())
    else:
        keys = feature.astype(object).where(feature.notna(), "__missing__")
        score = y.groupby(keys.to_numpy()).transform("mean")
    if score.nunique() < 2:
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


@dataclass(frozen=True)
class BinaryAnswers(Answers):
    """The positive class's probability, and its label at the tuned threshold."""

    task: ClassVar[str] = "binary"
    threshold: float
    positive_label: Any = None

    def decide(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        return {"probability": raw, "label": (raw >= self.threshold).astype(np.int64)}

    def fields(self) -> dict[str, dict[str, Any]]:
        return {
            "probability": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "probability of the positive class",
            },
            "label": {
                "type": "integer",
                "enum": [0, 1],
                "description": "1 if probability >= the tuned threshold (positive class)",
            },
        }

    def described(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "positive_label": self.positive_label}

    def from_log(self, lines: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            "probability": lines["probability"].to_numpy(dtype=float),
            "label": lines["label"].to_numpy(dtype=np.int64),
        }

    def drift_series(self, decided: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"probability": decided["probability"]}

    def actual(self, actual: pd.Series) -> np.ndarray:
        return is_positive(actual, self.positive_label).to_numpy().astype(int)

    def raw(self, decided: dict[str, np.ndarray]) -> np.ndarray:
        return decided["probability"]

    def utility(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        p = np.clip(decided["probability"].astype(float), _EDGE, 1 - _EDGE)
        return np.where(y == 1, np.log(p), np.log(1 - p))

    def correct(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        return np.asarray(decided["label"] == y)

    def class_probabilities(self, decided: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        p = decided["probability"].astype(float)
        return np.column_stack([1 - p, p]), decided["label"].astype(np.int64)

    def realized(self, decided: dict[str, np.ndarray], actual: pd.Series) -> dict[str, float] | str:
        from mlops_starter.metrics import classification_metrics  # sklearn: not at import

        y = self.actual(actual)
        if y.min() == y.max():
            return "the labels hold one class only"
        return classification_metrics(y, decided["probability"], self.threshold)


@register_task
@dataclass(frozen=True)
class Binary(Task):
    name: ClassVar[str] = "binary"
    label_bits: ClassVar[int] = 1
    leak_score_name: ClassVar[str] = "ROC-AUC"
    positive_label: str | int | bool = ""
    vs_rest: bool = False  # data.positive_vs_rest: the other label is every other value
    metrics: ClassVar[dict[str, bool]] = {
        "pr_auc": True,
        "roc_auc": True,
        "brier": False,
        "precision": True,
        "recall": True,
        "f1": True,
    }
    default_metric: ClassVar[str] = "pr_auc"
    default_compared: ClassVar[str] = "pr_auc"
    summary_metrics: ClassVar[tuple[str, ...]] = (
        "roc_auc",
        "pr_auc",
        "brier",
        "precision",
        "recall",
        "f1",
    )
    spread_metrics: ClassVar[tuple[str, ...]] = ("roc_auc", "pr_auc")
    candidate_metrics: ClassVar[tuple[str, ...]] = ("roc_auc", "pr_auc", "brier")

    @classmethod
    def fits(cls, values: TargetValues, data: DataConfig) -> str | None:
        if values.n_distinct != 2 and not data.positive_vs_rest:
            return (
                f"{values.n_distinct} values, not two; set data.positive_vs_rest: true to "
                "score data.positive_label against all the others"
            )
        if data.positive_label is None:
            return f"no data.positive_label: set it to one of {values.shown()}"
        if not is_positive(pd.Series(values.distinct), data.positive_label).any():
            return f"data.positive_label {data.positive_label!r} never occurs; values seen: {values.shown()}"
        return None

    @classmethod
    def of(cls, values: TargetValues, data: DataConfig, reason: str) -> Binary:
        positive = data.positive_label if data.positive_label is not None else ""  # `fits` said
        return cls(values.column, reason, positive, data.positive_vs_rest)

    def expectations(self, rows: int, checks: ValidateConfig) -> list[dict[str, Any]]:
        target, positive = self.target, self.positive_label
        # The rate band as two "mostly" checks: share of positives >= min, of negatives >= 1 - max.
        return [
            expectation(
                "expect_column_unique_value_count_to_be_between",
                f"target '{target}' has "
                + ("two or more classes" if self.vs_rest else "exactly two classes"),
                "data.positive_vs_rest",
                column=target,
                min_value=2,
                max_value=None if self.vs_rest else 2,
            ),
            expectation(
                "expect_column_values_to_be_in_set",
                f"positive rate of '{target}' is at least {checks.positive_rate_min:g}",
                "validate.positive_rate_min",
                column=target,
                value_set=[positive],
                mostly=checks.positive_rate_min,
            ),
            expectation(
                "expect_column_values_to_not_be_in_set",
                f"positive rate of '{target}' is at most {checks.positive_rate_max:g}",
                "validate.positive_rate_max",
                column=target,
                value_set=[positive],
                mostly=round(1 - checks.positive_rate_max, 6),
            ),
        ]

    def encode(self, labels: pd.Series) -> np.ndarray:
        return is_positive(labels, self.positive_label).to_numpy(dtype=np.int8)

    def tally(self, y: np.ndarray) -> np.ndarray:
        return np.array([int(y.sum())])

    def balance(self, tally: np.ndarray, rows: int) -> dict[str, Any]:
        return {"positive_rate": round(int(tally[0]) / rows, 5)}

    def side_problem(self, side: str, tally: np.ndarray, rows: int) -> str | None:
        if int(tally[0]) in (0, rows):
            return f"the {side} split holds {rows} rows, {int(tally[0])} positive: each side needs both classes"
        return None

    def leak_score(self, feature: pd.Series, y: pd.Series) -> float:
        return single_feature_auc(feature, y)

    def leak_bar(self, leakage: LeakageConfig) -> tuple[float, str]:
        return leakage.max_single_feature_auc, "leakage.max_single_feature_auc"

    @staticmethod
    def _ranking(key: str, chosen: str, why: str) -> str:
        """`chosen`, if a ranking metric; else an error naming the setting `key` and why."""
        if chosen not in ("pr_auc", "roc_auc"):
            raise ConfigError(f"{key}: {chosen!r} {why}; set auto, pr_auc or roc_auc")
        return chosen

    @classmethod
    def metric(cls, setting: str) -> str:
        return cls._ranking(
            "train.primary_metric",
            super().metric(setting),
            "depends on the threshold tuned after the winner is picked",
        )

    @classmethod
    def predict_raw(cls, model: Any, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(X))[:, 1]

    def read_answers(self, answers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return answers["actual"].to_numpy(), answers["probability"].to_numpy()

    def rarest_rows(self, y: np.ndarray) -> int:
        positives = int(y.sum())
        return positives if positives < len(y) else 0

    @classmethod
    def answers(cls, metadata: dict[str, Any]) -> BinaryAnswers:
        return BinaryAnswers(float(metadata["threshold"]), metadata.get("positive_label"))

    @classmethod
    def compared(cls, setting: str) -> str:
        return cls._ranking(
            "gate.compare_metric",
            super().compared(setting),
            "depends on each model's own threshold",
        )

    @classmethod
    def score(cls, metric: str, y: np.ndarray, raw: np.ndarray) -> float:
        from sklearn.metrics import average_precision_score, roc_auc_score

        scorer = average_precision_score if metric == "pr_auc" else roc_auc_score
        return float(scorer(y, raw))
