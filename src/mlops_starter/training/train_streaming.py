"""The train stage for tables past memory (scale.mode streaming or dask).

One pass over the training rows gives each row's label and CV block (from a stable hash,
or from time quantiles for a time split), and a deterministic sample per block. Each
fold's preprocessing (medians, category sets) is fitted on the sample of that fold's
training blocks only, so cross-validation stays leak-free. XGBoost then trains from an
iterator over the Parquet row groups into an external-memory quantile matrix (streaming)
or from a Dask dataframe on a cluster (dask). The refit winner is the same kind of
sklearn pipeline as in memory, so the registry and serving do not care how it was made.

The random forest and the linear baseline cannot stream: they are skipped, with the
reason in metrics/cv.json and the log.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from mlops_starter.candidates import CANDIDATES
from mlops_starter.config import Config
from mlops_starter.data.batches import (
    SAMPLE_SALT,
    BottomSample,
    iter_parquet,
    stable_hash,
    unit_interval,
)
from mlops_starter.data.schema import FeatureSchema, batch_target
from mlops_starter.tasks import Binary
from mlops_starter.training import tracking
from mlops_starter.training.candidates import build_pipeline, portable
from mlops_starter.training.cv import calibrated, summarize_oof
from mlops_starter.training.placement import (
    RowPlaces,
    block_count,
    block_folds,
    fold_blocks,
    fold_edges,
    is_time,
)
from mlops_starter.training.split import placed_parts
from mlops_starter.training.train import (
    TrainOutcome,
    cv_summary,
    track_winner,
    training_lineage,
    winner_info,
)

CANNOT_STREAM = "cannot train from batches (needs every training row in memory): skipped"


@dataclass
class Fold:
    """Training blocks and the block they are validated on."""

    train_blocks: list[int]
    valid_block: int


@dataclass
class TrainingScan:
    """What one pass over the training rows leaves: per-row labels and blocks (2 bytes a
    row), a sample per block, and the time column's range."""

    y: np.ndarray
    block: np.ndarray
    samples: list[BottomSample]
    time_span: list[str] | None = None

    def sample(self, blocks: list[int]) -> pd.DataFrame:
        first, *rest = (self.samples[b] for b in blocks)
        return first.merged_with(rest).frame()


class RowBlocks:
    """Each row's CV block by the one placement rule (placement.py), batch by batch; the
    cut-offs that need every training row come from a pass over its `cut_columns`."""

    def __init__(self, cfg: Config) -> None:
        self.cfg, settings = cfg, cfg.train
        parts = placed_parts(cfg, cfg.paths.train, cfg.scale.batch_rows)
        self.edges = fold_edges(cfg.split.strategy, parts, settings.cv_folds, settings.seed)
        self.count = block_count(settings.cv_folds, self.edges)

    def of(self, frame: pd.DataFrame) -> np.ndarray:
        settings = self.cfg.train
        return fold_blocks(
            RowPlaces.of(frame, self.cfg),
            self.cfg.split.strategy,
            settings.cv_folds,
            settings.seed,
            self.edges,
        )

    def folds(self) -> list[Fold]:
        return [Fold(fit, valid) for fit, valid in block_folds(self.count, is_time(self.cfg))]


def scan_training_rows(cfg: Config, blocks: RowBlocks) -> TrainingScan:
    """Labels, blocks and per-block samples in one pass over cfg.paths.train."""
    labels, block_ids, low, high = [], [], [], []
    samples = [BottomSample(cfg.scale.sample_rows) for _ in range(blocks.count)]
    position = 0
    for frame in iter_parquet(cfg.paths.train, cfg.scale.batch_rows):
        y, block = batch_target(frame, cfg.data), blocks.of(frame)
        keys = unit_interval(
            stable_hash(frame.drop(columns=cfg.data.target), cfg.train.seed, SAMPLE_SALT)
        )
        positions = np.arange(position, position + len(frame))
        position += len(frame)
        for b in range(blocks.count):
            mask = block == b
            samples[b].add(frame[mask], keys[mask], positions[mask])
        labels.append(y)
        block_ids.append(block)
        if cfg.data.time_column and frame[cfg.data.time_column].notna().any():
            low.append(frame[cfg.data.time_column].min())
            high.append(frame[cfg.data.time_column].max())
    span = [str(min(low)), str(max(high))] if low else None
    return TrainingScan(np.concatenate(labels), np.concatenate(block_ids), samples, span)


def xgboost_pipeline(cfg: Config, schema: FeatureSchema) -> Pipeline:
    """The in-memory xgboost candidate's pipeline (preprocessing, then the classifier)."""
    params = cfg.train.candidates["xgboost"].hyperparameters()
    return build_pipeline(
        "xgboost",
        params,
        schema,
        "none",
        cfg.train.seed,
        cfg.train.n_jobs,
        cfg.train.max_categories,
    )


def native_params(pipeline: Pipeline) -> tuple[dict[str, Any], int]:
    """The classifier's settings as xgboost.train takes them, and its number of rounds."""
    model = pipeline.named_steps["model"]
    params = {k: v for k, v in model.get_xgb_params().items() if v is not None}
    return params, int(model.n_estimators)


class FoldBatches(xgb.DataIter):
    """The rows of some CV blocks, transformed by a fitted preprocessor, batch by batch
    from the Parquet file; xgboost pulls it twice (sketch, then quantised pages)."""

    def __init__(
        self,
        cfg: Config,
        blocks: RowBlocks,
        chosen: list[int],
        transform: Callable[[pd.DataFrame], np.ndarray],
        cache_prefix: str,
    ) -> None:
        self.cfg, self.blocks, self.chosen, self.transform = cfg, blocks, chosen, transform
        self._batches: Iterator[pd.DataFrame] = iter(())
        super().__init__(cache_prefix=cache_prefix, release_data=True)

    def reset(self) -> None:
        self._batches = iter_parquet(self.cfg.paths.train, self.cfg.scale.batch_rows)

    def next(self, input_data: Callable[..., None]) -> bool:
        for frame in self._batches:
            mask = np.isin(self.blocks.of(frame), self.chosen)
            if mask.any():
                rows = frame[mask]
                input_data(data=self.transform(rows), label=batch_target(rows, self.cfg.data))
                return True
        return False


def as_matrix(preprocessor: Any) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda rows: np.asarray(preprocessor.transform(rows), dtype=np.float32)


def train_booster_streaming(
    cfg: Config, blocks: RowBlocks, chosen: list[int], preprocessor: Any, params: dict, rounds: int
) -> xgb.Booster:
    """XGBoost on the chosen blocks through an external-memory quantile matrix: the
    quantised rows are paged to a scratch directory, not held."""
    with tempfile.TemporaryDirectory(prefix="xgb-pages-") as scratch:
        batches = FoldBatches(
            cfg, blocks, chosen, as_matrix(preprocessor), os.path.join(scratch, "p")
        )
        matrix = xgb.ExtMemQuantileDMatrix(batches, missing=np.nan)
        booster = xgb.train(params, matrix, num_boost_round=rounds)
        del matrix
    return booster


def predict_block(
    cfg: Config,
    blocks: RowBlocks,
    block: int,
    preprocessor: Any,
    booster: xgb.Booster,
    out: np.ndarray,
) -> None:
    """Out-of-fold probabilities for the rows of one block, written into `out` by row position."""
    position = 0
    for frame in iter_parquet(cfg.paths.train, cfg.scale.batch_rows):
        mask = blocks.of(frame) == block
        if mask.any():
            rows = np.flatnonzero(mask) + position
            out[rows] = booster.inplace_predict(as_matrix(preprocessor)(frame[mask]))
        position += len(frame)


Trainer = Callable[[RowBlocks, list[int], Any, dict, int], xgb.Booster]


def train_streaming(cfg: Config, trainer: Trainer | None = None) -> TrainOutcome:
    """Cross-validate and refit the xgboost candidate from batches; `trainer` fits one
    booster (the external-memory one, or the Dask one for scale.mode dask)."""
    if trainer is None:
        trainer = functools.partial(train_booster_streaming, cfg)
    log = logging.getLogger("train")
    settings = cfg.train
    blocks = RowBlocks(cfg)
    scan = scan_training_rows(cfg, blocks)
    everything = list(range(blocks.count))
    sample = scan.sample(everything)
    schema = FeatureSchema.infer(sample, cfg.non_feature_columns, cfg.data.categorical_columns)
    params = settings.candidates["xgboost"].hyperparameters()
    template = xgboost_pipeline(cfg, schema)
    native, rounds = native_params(template)
    skipped = {
        name: CANNOT_STREAM
        for name in settings.enabled_candidates()
        if name != "xgboost" and CANDIDATES[name].learns("binary")
    }
    for name, reason in skipped.items():
        log.warning("scale.mode %s: %s %s", cfg.scale.mode, name, reason)
    log.info(
        "scale.mode %s: %d training rows in batches of %d; preprocessing fitted on samples of "
        "up to %d rows",
        cfg.scale.mode,
        len(scan.y),
        cfg.scale.batch_rows,
        cfg.scale.sample_rows,
    )

    def fitted_preprocessor(chosen: list[int]) -> tuple[Any, pd.DataFrame]:
        """The preprocessing fitted on the sample of `chosen` blocks only, and that sample."""
        rows = scan.sample(chosen)
        return clone(template.named_steps["preprocess"]).fit(rows[schema.columns]), rows

    oof = np.full(len(scan.y), np.nan, dtype=np.float32)  # what the booster predicts
    started = time.perf_counter()
    folds = blocks.folds()
    for number, fold in enumerate(folds, start=1):
        preprocessor, _ = fitted_preprocessor(fold.train_blocks)
        booster = trainer(blocks, fold.train_blocks, preprocessor, native, rounds)
        predict_block(cfg, blocks, fold.valid_block, preprocessor, booster, oof)
        log.info("fold %d/%d done", number, len(folds))
    elapsed = time.perf_counter() - started
    primary = Binary.metric(settings.primary_metric)  # train_table lets binary tasks in here
    result = summarize_oof(
        "xgboost",
        params,
        oof,
        scan.y,
        (scan.block == f.valid_block for f in folds),  # one fold's mask at a time
        settings.threshold_fbeta,
        settings.calibration,
        elapsed,
    )
    lineage = training_lineage(cfg)
    shared = {
        "cv_folds": settings.cv_folds,
        "resampling": "none",
        "calibration": settings.calibration,
        "split": cfg.split.strategy,
        "scale_mode": cfg.scale.mode,
        "batch_rows": cfg.scale.batch_rows,
        "sample_rows": cfg.scale.sample_rows,
    }
    with tracking.start_run(cfg.mlflow.experiment, "train", lineage):
        tracking.log_candidate(result, shared)
        preprocessor, rows = fitted_preprocessor(everything)
        booster = trainer(blocks, everything, preprocessor, native, rounds)
        model = calibrated(refit_pipeline(template, preprocessor, booster), result)
        model_file = track_winner(
            cfg, shared, result, model, rows[schema.columns], schema, lineage, primary
        )
    info = winner_info(
        cfg, result, params, schema, rows, pd.Series(scan.y), lineage, len(scan.y), scan.time_span
    ) | {"scale": {"mode": cfg.scale.mode, "skipped": skipped, "sample_rows": len(rows)}}
    summary = cv_summary(result, [result], primary) | {"skipped": skipped}
    return TrainOutcome(model, model_file, info, summary, {"xgboost": round(elapsed, 2)})


def refit_pipeline(template: Pipeline, preprocessor: Any, booster: xgb.Booster) -> Pipeline:
    """The same two-step pipeline the in-memory mode fits: this preprocessor, then an
    XGBClassifier holding `booster`."""
    model = clone(template.named_steps["model"])
    model.load_model(bytearray(booster.save_raw("ubj")))
    return portable(Pipeline([("preprocess", preprocessor), ("model", model)]), "xgboost")
