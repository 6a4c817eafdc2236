"""The audit that proves a split does not leak: shared ids, shared feature rows, time
order, and single features that predict the target too well."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.metrics import roc_auc_score


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


def single_feature_auc(feature: pd.Series, y: pd.Series) -> float:
    """How well one feature alone ranks the classes, direction-free (0.5 = no signal, 1 = perfect).

    Categorical features are scored by their category's positive rate on the same
    rows, so an id-like column (one row per category) shows up as a near-perfect leak.
    """
    if pd.api.types.is_numeric_dtype(feature) and not pd.api.types.is_bool_dtype(feature):
        score = feature.astype(float).fillna(feature.median())
    else:
        keys = feature.astype(object).where(feature.notna(), "__missing__")
        score = y.groupby(keys.to_numpy()).transform("mean")
    if score.nunique() < 2:
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


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
    max_single_feature_auc: float,
    allowed_features: list[str],
) -> AuditCheck:
    aucs = {column: round(single_feature_auc(train[column], y_train), 4) for column in features}
    suspects = {
        c: a for c, a in aucs.items() if a > max_single_feature_auc and c not in allowed_features
    }
    waived = {c: a for c, a in aucs.items() if a > max_single_feature_auc and c in allowed_features}
    detail = (
        f"features whose own ROC-AUC on train exceeds {max_single_feature_auc} "
        f"(leakage.max_single_feature_auc): {suspects or 'none'}"
    )
    if waived:
        detail += f"; allowed by leakage.allowed_features: {waived}"
    return AuditCheck("target_leak_suspects", not suspects, detail, aucs)
