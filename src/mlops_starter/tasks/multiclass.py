"""Multi-class: one of three or more labels (text, or whole numbers with at most
data.max_classes distinct values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlops_starter.config import DataConfig, LeakageConfig, ValidateConfig
from mlops_starter.errors import DataError
from mlops_starter.tasks.base import TargetValues, Task, expectation, register_task
from mlops_starter.tasks.binary import single_feature_auc


@register_task
@dataclass(frozen=True)
class Multiclass(Task):
    name: ClassVar[str] = "multiclass"
    leak_score_name: ClassVar[str] = "one-against-rest ROC-AUC, averaged over classes"
    classes: tuple[Any, ...] = ()  # sorted; a label's code is its place here

    @classmethod
    def fits(cls, values: TargetValues, data: DataConfig) -> str | None:
        if values.n_distinct < 3:
            return f"{values.n_distinct} values: two are data.task: binary"
        if values.kind not in ("text", "integer") and not (values.kind == "float" and values.whole):
            return f"{values.type_name} values are no classes"
        if values.n_distinct > data.max_classes:
            return (
                f"{values.n_distinct} distinct values, more than data.max_classes "
                f"({data.max_classes}); raise it if they are classes"
            )
        return None

    @classmethod
    def of(cls, values: TargetValues, data: DataConfig, reason: str) -> Multiclass:
        return cls(values.column, reason, values.distinct)

    @property
    def label_bits(self) -> int:  # type: ignore[override]
        return max(1, int(np.ceil(np.log2(len(self.classes)))))

    def expectations(self, rows: int, checks: ValidateConfig) -> list[dict[str, Any]]:
        # One "mostly" check per class: its share of the rows is at least min_class_rows / rows.
        least = checks.min_class_rows
        return [
            expectation(
                "expect_column_values_to_be_in_set",
                f"class {label!r} of '{self.target}' has at least {least} rows",
                "validate.min_class_rows",
                column=self.target,
                value_set=[label],
                mostly=min(1.0, least / rows) if rows else 1.0,
            )
            for label in self.classes
        ]

    def encode(self, labels: pd.Series) -> np.ndarray:
        codes = pd.Categorical(labels, categories=self.classes).codes
        if (codes < 0).any():
            unknown = labels[codes < 0].iloc[0]
            raise DataError(
                f"target '{self.target}' holds {unknown!r}, not one of the classes found at "
                f"ingest ({', '.join(map(repr, self.classes))})"
            )
        return codes.astype(np.int16)

    def tally(self, y: np.ndarray) -> np.ndarray:
        return np.bincount(y, minlength=len(self.classes))

    def balance(self, tally: np.ndarray, rows: int) -> dict[str, Any]:
        return {
            "class_share": {
                str(label): round(int(n) / rows, 5)
                for label, n in zip(self.classes, tally, strict=True)
            }
        }

    def side_problem(self, side: str, tally: np.ndarray, rows: int) -> str | None:
        missing = [label for label, n in zip(self.classes, tally, strict=True) if n == 0]
        if missing:
            return (
                f"the {side} split holds {rows} rows and none of class "
                f"{', '.join(map(repr, missing))}: each side needs every class"
            )
        return None

    def leak_score(self, feature: pd.Series, y: pd.Series) -> float:
        return float(
            np.mean([single_feature_auc(feature, (y == code).astype(int)) for code in np.unique(y)])
        )

    def leak_bar(self, leakage: LeakageConfig) -> tuple[float, str]:
        return leakage.max_single_feature_auc, "leakage.max_single_feature_auc"
