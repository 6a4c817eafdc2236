"""The holdout split, made once, and the audit that proves it does not leak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from mlops_starter.errors import DataError

SplitStrategy = Literal["stratified", "time", "group"]


def split_holdout(
    frame: pd.DataFrame,
    y: pd.Series,
    strategy: SplitStrategy,
    test_size: float,
    seed: int,
    time_column: str | None = None,
    group_column: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (train, test).

    stratified: same positive rate on both sides. time: every test row is strictly
    later than every train row. group: no group (e.g. customer) on both sides.
    """
    if strategy == "stratified":
        train_idx, test_idx = train_test_split(
            np.arange(len(frame)), test_size=test_size, random_state=seed, stratify=y
        )
    elif strategy == "time":
        if not time_column:
            raise DataError("split.strategy 'time' needs data.time_column")
        times = frame[time_column]
        cutoff = times.quantile(1 - test_size)
        # Rows tied with the cut-off stay in train, so test is strictly later.
        test_mask = (times > cutoff).to_numpy()
        if not test_mask.any() or test_mask.all():
            raise DataError(
                f"time split on '{time_column}' left one side empty (too few distinct times)"
            )
        train_idx, test_idx = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    elif strategy == "group":
        if not group_column:
            raise DataError("split.strategy 'group' needs split.group_column")
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train_idx, test_idx = next(splitter.split(frame, y, groups=frame[group_column]))
    else:
        raise DataError(f"split.strategy must be stratified, time or group, got {strategy!r}")
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    for name, rows in (("train", train_idx), ("test", test_idx)):
        if y.iloc[rows].nunique() < 2:
            raise DataError(
                f"the {name} split holds only one class; change split.test_size or use more data"
            )
    return frame.iloc[train_idx].reset_index(drop=True), frame.iloc[test_idx].reset_index(drop=True)


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


def audit_leakage(
    train: pd.DataFrame,
    test: pd.DataFrame,
    y_train: pd.Series,
    features: list[str],
    id_column: str | None,
    time_column: str | None,
    check_time_order: bool,
    max_single_feature_auc: float,
    allowed_features: list[str],
    max_shared_feature_rows: int,
) -> list[AuditCheck]:
    """Run every leakage check; the caller decides what a failure stops."""
    checks = []
    if id_column:
        shared = sorted(set(train[id_column]) & set(test[id_column]))
        checks.append(
            AuditCheck(
                "id_overlap",
                not shared,
                f"{len(shared)} ids in both train and test"
                + (f", e.g. {shared[:5]}" if shared else ""),
                len(shared),
            )
        )
    train_rows = pd.util.hash_pandas_object(train[features], index=False)
    test_rows = pd.util.hash_pandas_object(test[features], index=False)
    shared_rows = int(test_rows.isin(set(train_rows)).sum())
    checks.append(
        AuditCheck(
            "shared_feature_rows",
            shared_rows <= max_shared_feature_rows,
            f"{shared_rows} test rows have a feature row identical to a train row "
            f"(allowed: {max_shared_feature_rows}, leakage.max_shared_feature_rows)",
            shared_rows,
        )
    )
    if check_time_order and time_column:
        latest_train, earliest_test = train[time_column].max(), test[time_column].min()
        checks.append(
            AuditCheck(
                "time_order",
                bool(latest_train < earliest_test),
                f"latest train time {latest_train}, earliest test time {earliest_test}",
                str(earliest_test - latest_train),
            )
        )
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
    checks.append(AuditCheck("target_leak_suspects", not suspects, detail, aucs))
    return checks
