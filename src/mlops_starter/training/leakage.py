"""The audit that proves a split does not leak: shared ids, shared feature rows, time
order, and single features that predict the target too well."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_starter.config import LeakageConfig
from mlops_starter.tasks import Task


@dataclass(frozen=True)
class AuditCheck:
    name: str
    passed: bool
    detail: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "passed": self.passed,
            "value": self.value,
            "detail": self.detail,
        }


def id_overlap_check(shared: int) -> AuditCheck:
    return AuditCheck("id_overlap", not shared, f"{shared} ids in both train and test", shared)


def shared_rows_check(shared_rows: int, max_shared_feature_rows: int, strategy: str) -> AuditCheck:
    detail = (
        f"{shared_rows} test rows have a feature row identical to a train row "
        f"(allowed: {max_shared_feature_rows}, leakage.max_shared_feature_rows)"
    )
    if shared_rows > max_shared_feature_rows and strategy != "stratified":
        detail += (
            f"; split.strategy '{strategy}' cannot keep identical rows on one side as "
            "'stratified' does: raise leakage.max_shared_feature_rows if they are distinct cases"
        )
    return AuditCheck(
        "shared_feature_rows", shared_rows <= max_shared_feature_rows, detail, shared_rows
    )


def time_order_check(latest_train: Any, earliest_test: Any) -> AuditCheck:
    return AuditCheck(
        "time_order",
        bool(latest_train < earliest_test),
        f"latest train time {latest_train}, earliest test time {earliest_test}",
        str(earliest_test - latest_train),
    )


def target_leak_check(
    train: pd.DataFrame,
    y_train: pd.Series,
    features: list[str],
    task: Task,
    leakage: LeakageConfig,
) -> AuditCheck:
    """Features that alone predict the target too well (by the task's `leak_score`)."""
    bar, setting = task.leak_bar(leakage)
    scores = {column: round(task.leak_score(train[column], y_train), 4) for column in features}
    allowed = leakage.allowed_features
    suspects = {c: a for c, a in scores.items() if a > bar and c not in allowed}
    waived = {c: a for c, a in scores.items() if a > bar and c in allowed}
    detail = (
        f"features whose own {task.leak_score_name} on train exceeds {bar} "
        f"({setting}): {suspects or 'none'}"
    )
    if waived:
        detail += f"; allowed by leakage.allowed_features: {waived}"
    return AuditCheck("target_leak_suspects", not suspects, detail, scores)
