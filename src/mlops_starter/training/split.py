"""The split stage: the holdout set aside once, then audited for leakage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from mlops_starter.config import Config
from mlops_starter.data.schema import FeatureSchema, target_of
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
    duplicates: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (train, test).

    stratified: same positive rate on both sides, and rows with identical features
    (`duplicates`, one id per group) all on one side. time: every test row is strictly
    later than every train row. group: no group (e.g. customer) on both sides.
    """
    if strategy == "stratified":
        # Whole duplicate groups go one way, stratified by whether the group holds a positive.
        if duplicates is None:
            duplicates = np.arange(len(frame))
        group_label = pd.Series(y.to_numpy()).groupby(duplicates).max()
        _, test_groups = train_test_split(
            group_label.index.to_numpy(),
            test_size=test_size,
            random_state=seed,
            stratify=group_label.to_numpy(),
        )
        test_mask = np.isin(duplicates, test_groups)
        train_idx, test_idx = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
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


def duplicate_groups(features: pd.DataFrame) -> np.ndarray:
    """One integer per row, shared by rows whose features are identical."""
    hashes = pd.util.hash_pandas_object(features, index=False).to_numpy()
    return pd.factorize(hashes)[0]


def duplicate_summary(groups: np.ndarray, y: pd.Series) -> dict[str, int]:
    """How many rows repeat another row's features, and in how many groups the labels conflict."""
    per_group = pd.DataFrame({"group": groups, "y": y.to_numpy()}).groupby("group")["y"]
    sizes, label_counts = per_group.size(), per_group.nunique()
    repeated = sizes[sizes > 1]
    return {
        "rows_in_duplicate_groups": int(repeated.sum()),
        "duplicate_groups": len(repeated),
        "groups_with_conflicting_labels": int((label_counts > 1).sum()),
        "rows_in_conflicting_groups": int(sizes[label_counts > 1].sum()),
    }


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
    y = target_of(frame, cfg.data)
    # Which columns make two rows "the same" is read off the whole table ...
    usable = FeatureSchema.infer(frame, cfg.non_feature_columns, cfg.data.categorical_columns)
    duplicates = duplicate_groups(frame[usable.columns])
    train, test = split_holdout(
        frame,
        y,
        cfg.split.strategy,
        cfg.split.test_size,
        cfg.split.seed,
        cfg.data.time_column,
        cfg.split.group_column,
        duplicates,
    )
    y_train = target_of(train, cfg.data)
    y_test = target_of(test, cfg.data)
    # ... the features are decided on the training rows, as the train stage decides them.
    schema = FeatureSchema.infer(train, cfg.non_feature_columns, cfg.data.categorical_columns)
    checks = audit_leakage(
        train,
        test,
        y_train,
        schema.columns,
        cfg.data.id_column,
        cfg.data.time_column,
        strategy=cfg.split.strategy,
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
        "duplicates": {
            **duplicate_summary(duplicates, y),
            "kept_on_one_side": cfg.split.strategy == "stratified",
        },
        "columns": schema.treatment(train, cfg.train.max_categories),
        "checks": [c.to_dict() for c in checks],
    }
    return SplitOutcome(train, test, report, failed)
