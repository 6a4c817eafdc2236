"""Regression: a number (a price, a wage, a duration), predicted with an interval."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlops_starter.config import DataConfig, LeakageConfig, ValidateConfig
from mlops_starter.tasks.base import TargetValues, Task, expectation, register_task


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


@register_task
@dataclass(frozen=True)
class Regression(Task):
    name: ClassVar[str] = "regression"
    # Identical features with different targets are noise here, not a conflict.
    label_bits: ClassVar[int] = 0
    leak_score_name: ClassVar[str] = "R² (squared rank correlation; group means for a category)"

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
