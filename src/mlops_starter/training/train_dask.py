"""scale.mode dask: the streaming train stage, with each booster trained by xgboost.dask on
a Dask cluster that reads the training Parquet file as a Dask dataframe.

The cluster is `scale.dask.scheduler_address`, else $DASK_SCHEDULER_ADDRESS, else a
LocalCluster of `scale.dask.local_workers` processes on loopback. Every worker must be
able to read `paths.train` at the same path (a shared disk or object store) and run the
same locked packages (docs/how-to/scaling.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from mlops_starter.config import Config
from mlops_starter.data.schema import batch_target
from mlops_starter.training.train import TrainOutcome
from mlops_starter.training.train_streaming import RowBlocks, train_streaming

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@contextlib.contextmanager
def dask_client(cfg: Config) -> Iterator[Any]:
    """A client of the configured cluster, or of a LocalCluster started (and stopped) here."""
    from distributed import Client, LocalCluster

    address = cfg.scale.dask.scheduler_address or os.environ.get(SCHEDULER_ENV)
    log = logging.getLogger("train")
    if address:
        log.info("scale.mode dask: training on the cluster at %s", address)
        with Client(address) as client:
            yield client
        return
    log.info(
        "scale.mode dask: no scheduler address; a LocalCluster of %d workers",
        cfg.scale.dask.local_workers,
    )
    with (
        LocalCluster(
            n_workers=cfg.scale.dask.local_workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _fold_partition(
    frame: pd.DataFrame,
    cfg: Config,
    blocks: RowBlocks,
    chosen: list[int],
    preprocessor: Any,
    width: int,
) -> pd.DataFrame:
    """One partition's rows of the chosen blocks, preprocessed; the label in the last column."""
    rows = frame[np.isin(blocks.of(frame), chosen)]
    matrix = (
        np.asarray(preprocessor.transform(rows), dtype=np.float32)
        if len(rows)
        else np.empty((0, width), np.float32)
    )
    out = pd.DataFrame(matrix, columns=[f"f{i}" for i in range(width)])
    out["label"] = batch_target(rows, cfg.data) if len(rows) else np.empty(0, np.int8)
    return out


def train_dask(cfg: Config) -> TrainOutcome:
    """Cross-validate and refit XGBoost on a Dask cluster; everything else as streaming."""
    import dask.dataframe as dd
    from xgboost import dask as dxgb

    with dask_client(cfg) as client:

        def trainer(
            blocks: RowBlocks, chosen: list[int], preprocessor: Any, params: dict, rounds: int
        ) -> xgb.Booster:
            width = len(preprocessor.get_feature_names_out())
            table = dd.read_parquet(cfg.paths.train)
            meta = pd.DataFrame(
                {
                    **{f"f{i}": np.array([], np.float32) for i in range(width)},
                    "label": np.array([], np.int8),
                }
            )
            prepared = table.map_partitions(
                _fold_partition, cfg, blocks, chosen, preprocessor, width, meta=meta
            )
            matrix = dxgb.DaskQuantileDMatrix(
                client, prepared.drop(columns="label"), prepared["label"], missing=np.nan
            )
            return dxgb.train(client, params, matrix, num_boost_round=rounds)["booster"]

        return train_streaming(cfg, trainer)
