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
        try:
            _, test_groups = train_test_split(
                group_label.index.to_numpy(),
                test_size=test_size,
                random_state=seed,
                stratify=group_label.to_numpy(),
            )
        except ValueError:
            positives = int(group_label.sum())
            raise DataError(
                f"the {len(frame)} rows hold only {len(group_label)} distinct feature rows "
                f"({positives} with a positive, {len(group_label) - positives} without); rows "
                "with identical features stay on one side, so a stratified split with "
                f"split.test_size={test_size} cannot give both sides both classes. Add "
                "features that tell rows apart, use more data, or change split.test_size"
            ) from None
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


def labelled_keys(groups: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One uint64 per row: its duplicate group in the high 63 bits and its 0/1 label in the
    lowest, so that sorting brings each group together, negatives first. A 64-bit row
    hash loses its top bit here: two distinct rows of a 100-million-row table share a
    group with odds of about 1 in 2,000 (n^2 / 2^64)."""
    return (groups.astype(np.uint64) << np.uint64(1)) | y.astype(np.uint64)


def duplicate_summary(keys: np.ndarray, chunk_rows: int = 1_000_000) -> dict[str, int]:
    """How many rows repeat another row's features, and in how many groups the labels
    conflict, from `labelled_keys`. Sorts `keys` in place and then walks them in chunks,
    so a table past memory needs nothing per row beyond its keys."""
    keys.sort()
    rows, one = len(keys), np.uint64(1)
    in_groups = groups = 0
    conflicting: list[np.ndarray] = []
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        # same[j]: row start + j is in the group of the row before it (j = 0 .. stop - start).
        same = np.zeros(stop - start + 1, dtype=bool)
        low, high = max(start, 1), min(stop + 1, rows)
        before, after = keys[low - 1 : high - 1], keys[low:high]
        same[low - start : high - start] = (before >> one) == (after >> one)
        with_previous, with_next = same[:-1], same[1:]
        in_groups += int((with_previous | with_next).sum())
        groups += int((with_next & ~with_previous).sum())
        # Sorted by label within a group, a group with both labels changes key exactly
        # once: at its first positive row. Collect those rows' keys (this chunk's rows only).
        own = max(min(high, stop) - low, 0)
        changes = same[low - start : low - start + own] & (before[:own] != after[:own])
        conflicting.append(after[:own][changes])
    positive_keys = np.concatenate(conflicting) if conflicting else np.array([], np.uint64)
    first = np.searchsorted(keys, positive_keys & ~one, side="left")
    last = np.searchsorted(keys, positive_keys, side="right")
    return {
        "rows_in_duplicate_groups": in_groups,
        "duplicate_groups": groups,
        "groups_with_conflicting_labels": len(positive_keys),
        "rows_in_conflicting_groups": int((last - first).sum()),
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
            **duplicate_summary(labelled_keys(duplicates, y.to_numpy())),
            "kept_on_one_side": cfg.split.strategy == "stratified",
        },
        "columns": schema.treatment(train, cfg.train.max_categories),
        "checks": [c.to_dict() for c in checks],
    }
    return SplitOutcome(train, test, report, failed)
