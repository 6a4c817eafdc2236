"""The split stage: the holdout set aside once, then audited for leakage, in every
scale.mode by one pass over the table's batches (in memory, the table is one batch).

Rows are placed by the rule in placement.py, which looks at each row alone. The audit's
overlap checks are exact, over hashes of ids and feature rows (16 bytes a row at most);
the single-feature AUCs and the column notes read the training rows themselves in
memory, and a deterministic sample of `scale.sample_rows` of them past memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_starter.config import Config
from mlops_starter.data.batches import (
    SAMPLE_SALT,
    BottomSample,
    iter_record_batches,
    parquet_columns,
    parquet_rows,
    parquet_sinks,
    stable_hash,
    unit_interval,
)
from mlops_starter.data.schema import FeatureSchema
from mlops_starter.errors import DataError, LeakageError
from mlops_starter.storage import write_json
from mlops_starter.tasks import resolve_task
from mlops_starter.training.leakage import (
    id_overlap_check,
    shared_rows_check,
    target_leak_check,
    time_order_check,
)
from mlops_starter.training.placement import (
    RowPlaces,
    cut_columns,
    holdout_cutoff,
    in_test_set,
    is_time,
)


def labelled_keys(groups: np.ndarray, y: np.ndarray, bits: int = 1) -> np.ndarray:
    """One uint64 per row: its duplicate group in the high 64 - `bits` bits and its label
    code (below 2^bits; tasks/ says how many bits) in the lowest, so that sorting brings
    each group together, ordered by label. The row hash loses its top bits here: with one
    label bit, two distinct rows of a 100-million-row table share a group with odds of
    about 1 in 2,000 (n^2 / 2^64), and each further bit doubles them."""
    return (groups.astype(np.uint64) << np.uint64(bits)) | y.astype(np.uint64)


def duplicate_summary(
    keys: np.ndarray, chunk_rows: int = 1_000_000, bits: int = 1
) -> dict[str, int | None]:
    """How many rows repeat another row's features, and in how many groups the labels
    conflict, from `labelled_keys` of `bits` label bits (0: labels are not compared, and
    the conflict counts are None). Sorts `keys` in place and then walks them in chunks,
    so a table past memory needs nothing per row beyond its keys."""
    keys.sort()
    rows, shift = len(keys), np.uint64(bits)
    label_mask = np.uint64((1 << bits) - 1)
    in_groups = groups = 0
    conflicting: list[np.ndarray] = []
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        # same[j]: row start + j is in the group of the row before it (j = 0 .. stop - start).
        same = np.zeros(stop - start + 1, dtype=bool)
        low, high = max(start, 1), min(stop + 1, rows)
        before, after = keys[low - 1 : high - 1], keys[low:high]
        same[low - start : high - start] = (before >> shift) == (after >> shift)
        with_previous, with_next = same[:-1], same[1:]
        in_groups += int((with_previous | with_next).sum())
        groups += int((with_next & ~with_previous).sum())
        # Sorted by label within a group, a group with two or more labels changes key at
        # the first row of each label after its first. Collect those rows' groups.
        own = max(min(high, stop) - low, 0)
        changes = same[low - start : low - start + own] & (before[:own] != after[:own])
        conflicting.append(np.unique(after[:own][changes] >> shift))
    if not bits:
        return {
            "rows_in_duplicate_groups": in_groups,
            "duplicate_groups": groups,
            "groups_with_conflicting_labels": None,
            "rows_in_conflicting_groups": None,
        }
    # A group whose changes straddle two chunks is collected twice.
    conflict_groups = (
        np.unique(np.concatenate(conflicting)) if conflicting else np.array([], np.uint64)
    )
    first = np.searchsorted(keys, conflict_groups << shift, side="left")
    last = np.searchsorted(keys, (conflict_groups << shift) | label_mask, side="right")
    return {
        "rows_in_duplicate_groups": in_groups,
        "duplicate_groups": groups,
        "groups_with_conflicting_labels": len(conflict_groups),
        "rows_in_conflicting_groups": int((last - first).sum()),
    }


def shared_keys(
    sorted_keys: np.ndarray, queries: np.ndarray, chunk_rows: int, bits: int = 1
) -> np.ndarray:
    """The `queries` whose group (a `labelled_keys` value without its `bits` label bits)
    is among `sorted_keys`, looked up in chunks."""
    shift = np.uint64(bits)
    if not len(sorted_keys):
        return queries[:0]
    found = []
    for start in range(0, len(queries), chunk_rows):
        chunk = queries[start : start + chunk_rows]
        at = np.searchsorted(sorted_keys, (chunk >> shift) << shift).clip(max=len(sorted_keys) - 1)
        found.append(chunk[(sorted_keys[at] >> shift) == (chunk >> shift)])
    return np.concatenate(found) if found else queries[:0]


class SideKeys:
    """One uint64 per row in one preallocated array: train rows fill it from the front and
    test rows from the back, so each side is a contiguous view sorted in place."""

    def __init__(self, rows: int, bits: int = 1) -> None:
        self.keys = np.empty(rows, dtype=np.uint64)
        self.front, self.back = 0, rows
        self.bits = bits  # label bits of each key (labelled_keys)

    def add(self, side: int, keys: np.ndarray) -> None:
        if side == 0:
            self.keys[self.front : self.front + len(keys)] = keys
            self.front += len(keys)
        else:
            self.keys[self.back - len(keys) : self.back] = keys
            self.back -= len(keys)

    def shared(self, chunk_rows: int) -> np.ndarray:
        """The test side's keys whose group is also in train (sorts the train side in place)."""
        train, test = self.keys[: self.front], self.keys[self.front :]
        train.sort()
        return shared_keys(train, test, chunk_rows, self.bits)


def split_table(cfg: Config) -> None:
    """Write cfg.paths.train, cfg.paths.test and the audit report from cfg.paths.raw. The
    split files are moved into place only if the audit passes; the report is written
    either way.

    Per row it holds 8 bytes (16 with an id column): a `labelled_keys` value of the
    feature-row hash and label, and the id's hash. The overlap checks and the duplicate
    counts run on those arrays sorted in place."""
    strategy, data = cfg.split.strategy, cfg.data
    total = parquet_rows(cfg.paths.raw)
    batch_rows, sample_rows = cfg.scale.batching(total)
    columns = parquet_columns(cfg.paths.raw)
    features = [c for c in columns if c not in cfg.non_feature_columns]
    cutoff = holdout_cutoff(cfg, placed_parts(cfg, cfg.paths.raw, batch_rows))
    task = resolve_task(data, cfg.paths.raw)
    rows_keys = SideKeys(total, task.label_bits)
    id_keys = SideKeys(total if data.id_column else 0)
    rows: list[int] = [0, 0]
    tallies: list[Any] = [0, 0]
    time_range: list[list[Any]] = [[], []]
    train_sample = BottomSample(sample_rows)
    position = 0
    arrow_schema = pq.ParquetFile(cfg.paths.raw).schema_arrow
    with parquet_sinks([cfg.paths.train, cfg.paths.test], arrow_schema) as sinks:
        for batch in iter_record_batches(cfg.paths.raw, batch_rows):
            frame = batch.to_pandas()
            is_test = in_test_set(RowPlaces.of(frame, cfg), cfg, cutoff)
            y = task.encode(frame[data.target])
            keys = labelled_keys(stable_hash(frame[features], 0, 0), y, task.label_bits)
            sample_key = unit_interval(stable_hash(frame[features], cfg.split.seed, SAMPLE_SALT))
            positions = np.arange(position, position + len(frame))
            position += len(frame)
            for side, mask in enumerate((~is_test, is_test)):
                if not mask.any():
                    continue
                sinks[side].write_batch(batch.filter(pa.array(mask)))
                rows_keys.add(side, keys[mask])
                rows[side] += int(mask.sum())
                tallies[side] = tallies[side] + task.tally(y[mask])
                if data.id_column:
                    id_hashes = stable_hash(frame.loc[mask, [data.id_column]], 0, 0)
                    id_keys.add(side, labelled_keys(id_hashes, np.zeros(len(id_hashes))))
                if data.time_column:
                    times = frame.loc[mask, data.time_column]
                    time_range[side] += [times.min(), times.max()]
                if side == 0:
                    train_sample.add(frame[mask], sample_key[mask], positions[mask])
        for name, side in (("train", 0), ("test", 1)):
            problem = (
                task.side_problem(name, tallies[side], rows[side])
                if rows[side]
                else f"the {name} split holds no rows"
            )
            if problem:
                raise DataError(
                    f"{problem}. Rows with identical features (or of one group) share a "
                    "side; change split.test_size or split.seed, or use more data"
                )
        # In memory the "sample" is every training row, in file order.
        sample = train_sample.frame()
        y_sample = pd.Series(task.encode(sample[data.target]))
        schema = FeatureSchema.infer(sample, cfg.non_feature_columns, data.categorical_columns)
        chunk = batch_rows
        checks = []
        if data.id_column:
            shared_ids = len(np.unique(id_keys.shared(chunk)))
            checks.append(id_overlap_check(shared_ids))
            del id_keys
        shared_rows = len(rows_keys.shared(chunk))  # test rows
        checks.append(shared_rows_check(shared_rows, cfg.leakage.max_shared_feature_rows, strategy))
        if is_time(cfg):
            checks.append(time_order_check(max(time_range[0]), min(time_range[1])))
        checks.append(
            target_leak_check(
                sample,
                y_sample,
                schema.columns,
                task,
                cfg.leakage,
            )
        )
        sides = [task.balance(tallies[side], rows[side]) for side in (0, 1)]
        failed = [c for c in checks if not c.passed]
        report = {
            "passed": not failed,
            "strategy": strategy,
            "scale_mode": cfg.scale.mode,
            "task": {"name": task.name, "reason": task.reason},
            "rows": {"train": rows[0], "test": rows[1]},
            **{
                figure: {"train": sides[0][figure], "test": sides[1][figure]} for figure in sides[0]
            },
            "duplicates": {
                **duplicate_summary(rows_keys.keys, chunk, task.label_bits),
                "kept_on_one_side": strategy == "stratified",
            },
            "sampled_rows_for_feature_checks": len(sample),
            "columns": schema.treatment(sample, cfg.train.max_categories),
            "checks": [c.to_dict() for c in checks],
        }
        write_json(Path(cfg.paths.reports) / "leakage.json", report)
        if failed:  # raised inside the block: neither split file is written
            raise LeakageError("; ".join(f"{c.name}: {c.detail}" for c in failed))

    logging.getLogger("split").info(
        "split %d rows in batches of %d: %d train, %d test",
        position,
        batch_rows,
        rows[0],
        rows[1],
    )


def placed_parts(cfg: Config, path: str, batch_rows: int) -> Iterator[RowPlaces]:
    """The places of the Parquet file's rows from its `cut_columns` alone, batch by batch
    (8 bytes a row for a time column), for the cut-offs that need the whole table."""
    columns = cut_columns(cfg)
    if columns:
        for batch in iter_record_batches(path, batch_rows, columns):
            yield RowPlaces.of(batch.to_pandas(), cfg)
