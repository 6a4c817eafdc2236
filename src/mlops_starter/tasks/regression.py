"""Regression: a number (a price, a wage, a duration), predicted with an interval.

The interval is split conformal prediction on out-of-fold residuals: its half-width is
the quantile of the absolute out-of-fold errors at train.interval_coverage (with the
finite-sample correction), so a new row's value falls inside it that often, whatever
the model, as long as new rows are exchangeable with the training rows. One quantile
of one array: crepes and MAPIE wrap the same line around estimators of their own, and
the number alone is what the served model must keep.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlops_starter.config import DataConfig, LeakageConfig, TrainConfig, ValidateConfig
from mlops_starter.rounding import round_sig
from mlops_starter.tasks.base import (
    Answers,
    TargetValues,
    Task,
    TestReport,
    expectation,
    register_task,
)


def single_feature_r2(feature: pd.Series, y: pd.Series) -> float:
    """How much of the target's variance one feature alone explains, 0 to 1: a number by
    its squared rank correlation (any monotone relation), a category by the share its
    group means explain (so an id-like column, one row per value, shows up as a leak)."""
    from scipy.stats import spearmanr  # a split-stage import, not the CLI's

    if pd.api.types.is_numeric_dtype(feature) and not pd.api.types.is_bool_dtype(feature):
        score = feature.astype(float).fillna(feature.median())
        if score.nunique() < 2 or y.nunique() < 2:
            return 0.0
        return float(spearmanr(score, y).statistic ** 2)
    keys = feature.astype(object).where(feature.notna(), "__missing__").to_numpy()
    spread = float(((y - y.mean()) ** 2).sum())
    if spread == 0:
        return 0.0
    explained = float(((y.groupby(keys).transform("mean") - y.mean()) ** 2).sum())
    return min(1.0, explained / spread)


def conformal_half_width(residuals: np.ndarray, coverage: float) -> float:
    """The half-width that out-of-fold `residuals` (actual minus predicted) say covers a
    new row's value with probability at least `coverage`: their absolute values'
    ceil((n + 1) * coverage) / n quantile, taken as one of them."""
    spread = np.abs(np.asarray(residuals, dtype=float))
    level = min(1.0, math.ceil((len(spread) + 1) * coverage) / len(spread))
    return round_sig(float(np.quantile(spread, level, method="higher")))


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² (0 where the target does not vary), and MAPE where no target is 0."""
    errors = np.asarray(predicted, dtype=float) - y
    spread = float(np.sum((y - y.mean()) ** 2))
    metrics = {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / spread if spread > 0 else 0.0,
    }
    if (y != 0).all():
        metrics["mape"] = float(np.mean(np.abs(errors / y)))
    return metrics


def interval_metrics(y: np.ndarray, predicted: np.ndarray, half_width: float) -> dict[str, float]:
    """How often the interval holds the actual value, and how wide it is."""
    inside = np.abs(y - np.asarray(predicted, dtype=float)) <= half_width
    return {"interval_coverage": float(inside.mean()), "interval_width": 2.0 * half_width}


def coverage_by_decile(y: np.ndarray, predicted: np.ndarray, half_width: float) -> pd.DataFrame:
    """The interval's coverage in each tenth of the rows by predicted value: a constant
    width holds the average, and this shows where it holds less."""
    frame = pd.DataFrame({"predicted": predicted, "inside": np.abs(y - predicted) <= half_width})
    frame["decile"] = (
        pd.qcut(frame["predicted"].rank(method="first"), min(10, len(frame)), labels=False) + 1
    )
    table = frame.groupby("decile").agg(
        mean_predicted=("predicted", "mean"), coverage=("inside", "mean"), rows=("inside", "size")
    )
    return table.reset_index()


class IntervalRegressor:
    """A fitted regressor and its conformal half-width, with the sklearn prediction API
    plus `predict_interval` (lower and upper bounds at `coverage`)."""

    def __init__(self, regressor: Any, half_width: float, coverage: float) -> None:
        self.regressor = regressor
        self.half_width = half_width
        self.coverage = coverage

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.regressor.predict(X), dtype=float)

    def predict_interval(self, X: Any) -> np.ndarray:
        """Rows of (lower, upper)."""
        value = self.predict(X)
        return np.column_stack([value - self.half_width, value + self.half_width])


@dataclass(frozen=True)
class RegressionAnswers(Answers):
    """The predicted value and its split-conformal interval."""

    task: ClassVar[str] = "regression"
    half_width: float
    coverage: float

    def decide(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        return {"value": raw, "lower": raw - self.half_width, "upper": raw + self.half_width}

    def fields(self) -> dict[str, dict[str, Any]]:
        holds = f"the interval that holds {self.coverage:.0%} of actual values"
        return {
            "value": {"type": "number", "description": "the predicted value"},
            "lower": {"type": "number", "description": f"lower end of {holds}"},
            "upper": {"type": "number", "description": f"upper end of {holds}"},
        }

    def from_log(self, lines: pd.DataFrame) -> dict[str, np.ndarray]:
        return {name: lines[name].to_numpy(dtype=float) for name in ("value", "lower", "upper")}

    def drift_series(self, decided: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"value": decided["value"]}

    loss_name: ClassVar[str] = "the squared error"

    def actual(self, actual: pd.Series) -> np.ndarray:
        return pd.to_numeric(actual, errors="coerce").to_numpy(dtype=float)

    def raw(self, decided: dict[str, np.ndarray]) -> np.ndarray:
        return decided["value"]

    def utility(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        return np.asarray(-((decided["value"] - y) ** 2))

    def realized(self, decided: dict[str, np.ndarray], actual: pd.Series) -> dict[str, float] | str:
        y = self.actual(actual)
        if not np.isfinite(y).all():
            return "some actual values are not finite numbers"
        inside = (decided["lower"] <= y) & (y <= decided["upper"])
        return regression_metrics(y, decided["value"]) | {"interval_coverage": float(inside.mean())}

    def described(self) -> dict[str, Any]:
        return {
            "interval": {
                "method": "split conformal, on out-of-fold residuals",
                "coverage": self.coverage,
                "half_width": self.half_width,
            }
        }


@register_task
@dataclass(frozen=True)
class Regression(Task):
    name: ClassVar[str] = "regression"
    # Identical features with different targets are noise here, not a conflict.
    label_bits: ClassVar[int] = 0
    has_classes: ClassVar[bool] = False
    leak_score_name: ClassVar[str] = "R² (squared rank correlation; group means for a category)"
    metrics: ClassVar[dict[str, bool]] = {"rmse": False, "mae": False, "r2": True}
    default_metric: ClassVar[str] = "rmse"
    default_compared: ClassVar[str] = "r2"
    summary_metrics: ClassVar[tuple[str, ...]] = ("rmse", "mae", "r2", "interval_coverage")
    spread_metrics: ClassVar[tuple[str, ...]] = ("rmse",)
    candidate_metrics: ClassVar[tuple[str, ...]] = ("rmse", "mae", "r2")

    @classmethod
    def fits(cls, values: TargetValues, data: DataConfig) -> str | None:
        if values.kind not in ("integer", "float"):
            return f"{values.type_name} values are no numbers"
        if values.infinite:
            return f"{values.infinite} infinite values"
        if values.n_distinct < 3:
            return f"{values.n_distinct} distinct numbers: that is a class label"
        return None

    @classmethod
    def of(cls, values: TargetValues, data: DataConfig, reason: str) -> Regression:
        return cls(values.column, reason)

    def expectations(self, rows: int, checks: ValidateConfig) -> list[dict[str, Any]]:
        low, high = checks.target_range or (-sys.float_info.max, sys.float_info.max)
        bounded = checks.target_range is not None
        return [
            expectation(
                "expect_column_values_to_be_between",
                f"target '{self.target}' lies in [{low:g}, {high:g}]"
                if bounded
                else f"target '{self.target}' is a finite number",
                "validate.target_range" if bounded else "data.task",
                column=self.target,
                min_value=low,
                max_value=high,
            )
        ]

    def encode(self, labels: pd.Series) -> np.ndarray:
        return labels.to_numpy(dtype=np.float64)

    def tally(self, y: np.ndarray) -> np.ndarray:
        return np.array([y.sum(), np.square(y).sum()])

    def balance(self, tally: np.ndarray, rows: int) -> dict[str, Any]:
        mean = tally[0] / rows
        spread = np.sqrt(max(tally[1] / rows - mean**2, 0.0))
        return {"target_mean": float(f"{mean:.6g}"), "target_std": float(f"{spread:.6g}")}

    def side_problem(self, side: str, tally: np.ndarray, rows: int) -> str | None:
        return None if rows >= 2 else f"the {side} split holds {rows} rows"

    def leak_score(self, feature: pd.Series, y: pd.Series) -> float:
        return single_feature_r2(feature, y)

    def leak_bar(self, leakage: LeakageConfig) -> tuple[float, str]:
        return leakage.max_single_feature_r2, "leakage.max_single_feature_r2"

    # --- learning ------------------------------------------------------------------------

    @classmethod
    def predict_raw(cls, model: Any, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(X), dtype=float)

    @classmethod
    def score(cls, metric: str, y: np.ndarray, raw: np.ndarray) -> float:
        return regression_metrics(y, raw)[metric]

    def learn(self, oof: np.ndarray, y: np.ndarray, settings: TrainConfig) -> dict[str, Any]:
        coverage = settings.interval_coverage
        return {
            "interval_coverage": coverage,
            "interval_half_width": conformal_half_width(y - oof, coverage),
        }

    def fold_metrics(
        self, y: np.ndarray, oof: np.ndarray, learnt: dict[str, Any]
    ) -> dict[str, float]:
        scores = regression_metrics(y, oof)
        scores.pop("mape", None)  # defined on some folds only: the test set reports it
        return scores | {
            "interval_coverage": interval_metrics(y, oof, learnt["interval_half_width"])[
                "interval_coverage"
            ]
        }

    def finish(self, model: Any, learnt: dict[str, Any]) -> Any:
        return IntervalRegressor(model, learnt["interval_half_width"], learnt["interval_coverage"])

    def read_answers(self, answers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return answers["actual"].to_numpy(float), answers["predicted"].to_numpy(float)

    @classmethod
    def answers(cls, metadata: dict[str, Any]) -> RegressionAnswers:
        return RegressionAnswers(
            float(metadata["interval_half_width"]), float(metadata["interval_coverage"])
        )

    def rarest_rows(self, y: np.ndarray) -> int:
        return len(y)

    def test_report(self, model: Any, X: pd.DataFrame, y: np.ndarray) -> TestReport:
        predicted = round_sig(model.predict(X))
        half_width = model.half_width
        metrics = {
            "rows": len(y),
            **regression_metrics(y, predicted),
            **interval_metrics(y, predicted, half_width),
            "interval_target_coverage": model.coverage,
        }
        answers = pd.DataFrame(
            {
                "actual": y,
                "predicted": predicted,
                "lower": predicted - half_width,
                "upper": predicted + half_width,
            }
        )
        tables = {
            "predicted": answers[["actual", "predicted"]],
            "residuals": pd.DataFrame({"predicted": predicted, "residual": y - predicted}),
            "coverage": coverage_by_decile(y, predicted, half_width),
        }
        return TestReport(metrics, tables, answers)
