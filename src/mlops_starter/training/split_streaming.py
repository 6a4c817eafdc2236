"""The split stage for tables past memory (scale.mode streaming or dask): every row is
placed by a stable hash, batch by batch, and written straight to row-group Parquet.

Rows with identical features share a hash, so duplicate groups stay on one side as the
in-memory split keeps them. The audit's overlap checks are exact (over hashes of ids and
feature rows, 16 bytes a row at most); the single-feature AUCs and the column notes come from a
deterministic sample of `scale.sample_rows` rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_starter.config import Config
from mlops_starter.data.batches import (
    SAMPLE_SALT,
    SPLIT_SALT,
    BottomSample,
    iter_record_batches,
    parquet_columns,
    parquet_rows,
    parquet_sinks,
    stable_hash,
    unit_interval,
)
from mlops_starter.data.schema import FeatureSchema, batch_target
from mlops_starter.errors import ConfigError, DataError, LeakageError
from mlops_starter.storage import write_json
from mlops_starter.training.leakage import (
    id_overlap_check,
    shared_rows_check,
    target_leak_check,
    time_order_check,
)
from mlops_starter.training.split import duplicate_summary, labelled_keys


def placement_columns(columns: list[str], cfg: Config) -> list[str]:
    """What decides where a row goes (and which CV fold it joins): the group column, or
    every column but the target, id, time and group, so identical feature rows go together."""
    if cfg.split.strategy == "group":
        if not cfg.split.group_column:
            raise DataError("split.strategy 'group' needs split.group_column")
        return [cfg.split.group_column]
    return [c for c in columns if c not in cfg.non_feature_columns]


def time_cutoff(cfg: Config) -> object:
    """The time split's cut-off: the (1 - test_size) quantile of the time column, read
    alone (8 bytes a row); rows at the cut-off stay in train, so test is strictly later."""
    column = cfg.data.time_column
    if not column:
        raise ConfigError("split.strategy 'time' needs data.time_column")
    times = pd.concat(
        batch.to_pandas()[column]
        for batch in iter_record_batches(cfg.paths.raw, cfg.scale.batch_rows, [column])
    )
    return times.quantile(1 - cfg.split.test_size)


def shared_keys(sorted_keys: np.ndarray, queries: np.ndarray, chunk_rows: int) -> np.ndarray:
    """The `queries` whose group (a `labelled_keys` value without its label bit) is among
    `sorted_keys`, looked up in chunks."""
    one = np.uint64(1)
    if not len(sorted_keys):
        return queries[:0]
    found = []
    for start in range(0, len(queries), chunk_rows):
        chunk = queries[start : start + chunk_rows]
        at = np.searchsorted(sorted_keys, chunk & ~one).clip(max=len(sorted_keys) - 1)
        found.append(chunk[(sorted_keys[at] >> one) == (chunk >> one)])
    return np.concatenate(found) if found else queries[:0]


class SideKeys:
    """One uint64 per row in one preallocated array: train rows fill it from the front and
    test rows from the back, so each side is a contiguous view sorted in place."""

    def __init__(self, rows: int) -> None:
        self.keys = np.empty(rows, dtype=np.uint64)
        self.front, self.back = 0, rows

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
        return shared_keys(train, test, chunk_rows)


def split_streaming(cfg: Config) -> None:
    """Write cfg.paths.train, cfg.paths.test and the audit report from cfg.paths.raw in
    batches. The split files are moved into place only if the audit passes; the report is
    written either way.

    Per row it holds 8 bytes (16 with an id column): a `labelled_keys` value of the
    feature-row hash and label, and the id's hash. The overlap checks and the duplicate
    counts run on those arrays sorted in place."""
    strategy, data = cfg.split.strategy, cfg.data
    columns = parquet_columns(cfg.paths.raw)
    placing = placement_columns(columns, cfg)
    features = [c for c in columns if c not in cfg.non_feature_columns]
    cutoff = time_cutoff(cfg) if strategy == "time" else None
    total = parquet_rows(cfg.paths.raw)
    rows_keys = SideKeys(total)
    id_keys = SideKeys(total if data.id_column else 0)
    rows, positives = [0, 0], [0, 0]
    time_range: list[list[Any]] = [[], []]
    train_sample = BottomSample(cfg.scale.sample_rows)
    position = 0
    arrow_schema = pq.ParquetFile(cfg.paths.raw).schema_arrow
    with parquet_sinks([cfg.paths.train, cfg.paths.test], arrow_schema) as sinks:
        for batch in iter_record_batches(cfg.paths.raw, cfg.scale.batch_rows):
            frame = batch.to_pandas()
            if strategy == "time":
                is_test = (frame[data.time_column] > cutoff).to_numpy()
            else:
                place = unit_interval(stable_hash(frame[placing], cfg.split.seed, SPLIT_SALT))
                is_test = place < cfg.split.test_size
            y = batch_target(frame, data)
            keys = labelled_keys(stable_hash(frame[features], 0, 0), y)
            sample_key = unit_interval(stable_hash(frame[features], cfg.split.seed, SAMPLE_SALT))
            positions = np.arange(position, position + len(frame))
            position += len(frame)
            for side, mask in enumerate((~is_test, is_test)):
                if not mask.any():
                    continue
                sinks[side].write_batch(batch.filter(pa.array(mask)))
                rows_keys.add(side, keys[mask])
                rows[side] += int(mask.sum())
                positives[side] += int(y[mask].sum())
                if data.id_column:
                    id_hashes = stable_hash(frame.loc[mask, [data.id_column]], 0, 0)
                    id_keys.add(side, labelled_keys(id_hashes, np.zeros(len(id_hashes))))
                if data.time_column:
                    times = frame.loc[mask, data.time_column]
                    time_range[side] += [times.min(), times.max()]
                if side == 0:
                    train_sample.add(frame[mask], sample_key[mask], positions[mask])
        for name, side in (("train", 0), ("test", 1)):
            if positives[side] in (0, rows[side]):
                raise DataError(
                    f"the {name} split holds only one class; change split.test_size or use more data"
                )
        sample = train_sample.frame()
        y_sample = pd.Series(batch_target(sample, data))
        schema = FeatureSchema.infer(sample, cfg.non_feature_columns, data.categorical_columns)
        chunk = cfg.scale.batch_rows
        checks = []
        if data.id_column:
            shared_ids = len(np.unique(id_keys.shared(chunk)))  # ids, as in memory
            checks.append(id_overlap_check(shared_ids, []))
            del id_keys
        shared_rows = len(rows_keys.shared(chunk))  # test rows, as in memory
        checks.append(shared_rows_check(shared_rows, cfg.leakage.max_shared_feature_rows, strategy))
        if strategy == "time" and data.time_column:
            checks.append(time_order_check(max(time_range[0]), min(time_range[1])))
        checks.append(
            target_leak_check(
                sample,
                y_sample,
                schema.columns,
                cfg.leakage.max_single_feature_auc,
                cfg.leakage.allowed_features,
            )
        )
        failed = [c for c in checks if not c.passed]
        report = {
            "passed": not failed,
            "strategy": strategy,
            "scale_mode": cfg.scale.mode,
            "rows": {"train": rows[0], "test": rows[1]},
            "positive_rate": {
                "train": round(positives[0] / rows[0], 5),
                "test": round(positives[1] / rows[1], 5),
            },
            "duplicates": {
                **duplicate_summary(rows_keys.keys, chunk),
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
        "streamed %d rows in batches of %d: %d train, %d test",
        position,
        cfg.scale.batch_rows,
        rows[0],
        rows[1],
    )
