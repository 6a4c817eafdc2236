"""The split stage: the holdout set aside once, then audited for leakage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from mlops_starter.config import Config
from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.errors import DataError
from mlops_starter.training.leakage import AuditCheck, audit_leakage

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
class SplitOutcome:
    """What the split stage writes: the two sides, and the audit report (written even when it fails)."""

    train: pd.DataFrame
    test: pd.DataFrame
    report: dict[str, Any]
    failed: list[AuditCheck]


def split_table(frame: pd.DataFrame, cfg: Config) -> SplitOutcome:
    """Sort by time (if any), split by `split.strategy`, and audit the result."""
    if cfg.data.time_column:
        # Time order makes the time split, and time-series CV later, meaningful.
        frame = frame.sort_values(cfg.data.time_column, kind="stable").reset_index(drop=True)
    y = encode_target(frame[cfg.data.target], cfg.data.positive_label)
    train, test = split_holdout(
        frame,
        y,
        cfg.split.strategy,
        cfg.split.test_size,
        cfg.split.seed,
        cfg.data.time_column,
        cfg.split.group_column,
    )
    y_train = encode_target(train[cfg.data.target], cfg.data.positive_label)
    y_test = encode_target(test[cfg.data.target], cfg.data.positive_label)
    schema = FeatureSchema.infer(train, cfg.non_feature_columns, cfg.data.categorical_columns)
    checks = audit_leakage(
        train,
        test,
        y_train,
        schema.columns,
        cfg.data.id_column,
        cfg.data.time_column,
        check_time_order=cfg.split.strategy == "time",
        max_single_feature_auc=cfg.leakage.max_single_feature_auc,
        allowed_features=cfg.leakage.allowed_features,
        max_shared_feature_rows=cfg.leakage.max_shared_feature_rows,
    )
    failed = [c for c in checks if not c.passed]
    report = {
        "passed": not failed,
        "strategy": cfg.split.strategy,
        "rows": {"train": len(train), "test": len(test)},
        "positive_rate": {
            "train": round(float(y_train.mean()), 5),
            "test": round(float(y_test.mean()), 5),
        },
        "checks": [c.to_dict() for c in checks],
    }
    return SplitOutcome(train, test, report, failed)
