"""One row-placement rule for the holdout split and the CV folds, in every scale.mode.

Where a row goes is decided by the row alone, so a table read in one batch (in memory)
or in many (streaming, dask) is split and folded the same way:

- stratified: a stable hash of the row's features (identical rows go together), mixed
  with the split's seed, puts the row in the test set when it falls below
  `split.test_size`; mixed with the training seed, it picks the row's CV fold. Each class
  lands on each side in proportion to its size, up to sampling noise: about
  sqrt(p(1 - p) / n) on a class rate p over n rows, so the split report gives both
  sides' positive rates.
- group: the same hash of the group column, but the cut-offs are read off the distinct
  groups, so that round(test_size x groups) of them go to test and each fold gets a
  k-th of the rest, however few groups there are.
- time: the test set is every row later than the (1 - test_size) quantile of the time
  column; the CV blocks are cut at time quantiles of the training rows, and each fold
  trains on the blocks before the one it validates, as TimeSeriesSplit does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.batches import FOLD_SALT, NESTED_SALT, SPLIT_SALT, remix, unit_interval
from mlops_starter.errors import ConfigError, DataError

Folds = list[tuple[np.ndarray, np.ndarray]]


def placement_columns(columns: list[str], cfg: Config) -> list[str]:
    """What decides where a row goes (and which CV fold it joins): the group column, or
    every column but the target, id, time and group, so identical feature rows go together."""
    if cfg.split.strategy == "group":
        return [required(cfg.split.group_column, "group", "split.group_column")]
    return [c for c in columns if c not in cfg.non_feature_columns]


def time_column(cfg: Config) -> str:
    return required(cfg.data.time_column, "time", "data.time_column")


def required(setting: str | None, strategy: str, name: str) -> str:
    if not setting:
        raise ConfigError(f"split.strategy '{strategy}' needs {name}")
    return setting


@dataclass(frozen=True)
class RowPlaces:
    """What places each row of a table: a hash of its placement columns (seed-free;
    identical rows share it) and, for a time split, its time."""

    hashes: np.ndarray
    times: pd.Series | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame, cfg: Config) -> RowPlaces:
        placing = placement_columns(list(frame.columns), cfg)
        hashes = pd.util.hash_pandas_object(frame[placing], index=False).to_numpy()
        times = frame[time_column(cfg)].reset_index(drop=True) if is_time(cfg) else None
        return cls(hashes, times)

    def time_values(self) -> pd.Series:
        if self.times is None:
            raise ConfigError("split.strategy 'time' needs data.time_column")
        return self.times

    def __len__(self) -> int:
        return len(self.hashes)

    def nested(self, rows: np.ndarray) -> RowPlaces:
        """The places of `rows` (a fold's training rows), hashed afresh: folds made inside
        them by the same rule would otherwise all miss the fold's own validation block."""
        times = None if self.times is None else self.times.iloc[rows].reset_index(drop=True)
        return RowPlaces(remix(self.hashes[rows], 0, NESTED_SALT), times)


def is_time(cfg: Config) -> bool:
    return cfg.split.strategy == "time"


def cut_columns(cfg: Config) -> list[str]:
    """The columns the cut-offs are read from, in a pass of their own past memory."""
    if is_time(cfg):
        return [time_column(cfg)]
    if cfg.split.strategy == "group":
        return placement_columns([], cfg)
    return []


def _keys(places: RowPlaces, seed: int, salt: int) -> np.ndarray:
    return unit_interval(remix(places.hashes, seed, salt))


def holdout_cutoff(cfg: Config, parts: Iterable[RowPlaces]) -> object:
    """What `in_test_set` compares with, from the whole table (`parts` of it, each read
    from `cut_columns`): a time, a group key, or split.test_size itself."""
    if is_time(cfg):
        return pd.concat([p.time_values() for p in parts]).quantile(1 - cfg.split.test_size)
    if cfg.split.strategy == "group":
        groups = np.sort(_distinct(_keys(p, cfg.split.seed, SPLIT_SALT) for p in parts))
        test_groups = max(1, round(cfg.split.test_size * len(groups)))
        return groups[test_groups] if test_groups < len(groups) else 1.0
    return cfg.split.test_size


def in_test_set(places: RowPlaces, cfg: Config, cutoff: object) -> np.ndarray:
    """True for the rows of the test set, against the whole table's `holdout_cutoff`.
    Rows at a time cut-off stay in train, so test is strictly later."""
    if is_time(cfg):
        return (places.time_values() > cutoff).to_numpy()
    return _keys(places, cfg.split.seed, SPLIT_SALT) < cutoff


def fold_edges(
    strategy: str, parts: Iterable[RowPlaces], n_folds: int, seed: int
) -> np.ndarray | None:
    """Where `fold_blocks` cuts, from all the rows to fold: time quantiles, or the group
    keys that give each fold a k-th of the groups; None for hashed (stratified) folds.
    No block is empty: a coarse time column or few groups give fewer, larger blocks, and
    so fewer folds."""
    if strategy == "time":
        times = pd.concat([p.time_values() for p in parts])
        edges = time_block_edges(times, n_folds, str(times.name))
    elif strategy == "group":
        groups = np.sort(_distinct(_keys(p, seed, FOLD_SALT) for p in parts))
        at = np.ceil(np.arange(1, n_folds) * len(groups) / n_folds).astype(int)
        edges = np.unique(groups[at[at < len(groups)]])
    else:
        return None
    if len(edges) < n_folds - (strategy != "time"):
        logging.getLogger("train").warning(
            "split.strategy '%s': the rows hold too few distinct %s for %d folds: %d folds",
            strategy,
            "times" if strategy == "time" else "groups",
            n_folds,
            len(edges) + (strategy != "time"),
        )
    return edges


def _distinct(parts: Iterable[np.ndarray]) -> np.ndarray:
    found = np.empty(0)
    for part in parts:
        found = np.union1d(found, part)
    return found


def time_block_edges(times: pd.Series, n_folds: int, column: str) -> np.ndarray:
    """Time quantiles that cut rows into n_folds + 1 blocks of about equal size, each
    edge a time the rows hold."""
    times = times.dropna()
    quantiles = np.linspace(0, 1, n_folds + 2)[1:-1]
    cuts = times.quantile(quantiles, interpolation="lower")
    edges: np.ndarray = np.unique(cuts[cuts > times.min()].to_numpy())
    if len(edges) == 0:
        raise DataError(
            f"the time column '{column}' (data.time_column) has a single value in the "
            "training rows, so time-ordered folds cannot be made: use a finer time column, "
            "or split.strategy: stratified"
        )
    return edges


def block_count(n_folds: int, edges: np.ndarray | None) -> int:
    return n_folds if edges is None else len(edges) + 1


def fold_blocks(
    places: RowPlaces, strategy: str, n_folds: int, seed: int, edges: np.ndarray | None
) -> np.ndarray:
    """Each row's CV block (int8), cut at `fold_edges`."""
    keys = places.time_values().to_numpy() if strategy == "time" else _keys(places, seed, FOLD_SALT)
    if edges is None:  # hashed folds: the keys are uniform on [0, 1)
        return np.minimum((keys * n_folds).astype(np.int8), n_folds - 1)
    return np.searchsorted(edges, keys, side="right").astype(np.int8)


def block_folds(count: int, time_ordered: bool) -> list[tuple[list[int], int]]:
    """(training blocks, validation block) per fold. Time-ordered folds train on the
    blocks before the one they validate, so the first block is never validated."""
    if time_ordered:
        return [(list(range(k)), k) for k in range(1, count)]
    return [([b for b in range(count) if b != k], k) for k in range(count)]


def row_folds(blocks: np.ndarray, count: int, time_ordered: bool) -> Folds:
    """The folds of `block_folds` as (training rows, validation rows) positions."""
    return [
        (np.flatnonzero(np.isin(blocks, fit)), np.flatnonzero(blocks == valid))
        for fit, valid in block_folds(count, time_ordered)
    ]
