"""The train stage: cross-validate every candidate on the training set, pick the winner
by mean CV score, refit it on all training rows and log it to MLflow with its lineage."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.base import clone

from mlops_starter.candidates import CANDIDATES
from mlops_starter.config import Config
from mlops_starter.data.batches import row_keys
from mlops_starter.data.profile import feature_profile
from mlops_starter.data.schema import FeatureSchema, target_of
from mlops_starter.errors import ConfigError, DataError
from mlops_starter.lineage import MODEL_MD5_TAG, MODEL_URI_TAG, log_training_rows
from mlops_starter.rounding import round_sig
from mlops_starter.storage import file_md5, model_bytes, trusted_types
from mlops_starter.tasks import Binary, Task, resolve_task
from mlops_starter.training import tracking
from mlops_starter.training.candidates import build_pipeline, portable
from mlops_starter.training.cv import (
    CandidateResult,
    calibrated,
    cv_folds,
    run_candidates,
    select_winner,
)
from mlops_starter.training.placement import Folds, RowPlaces
from mlops_starter.training.tuning import SearchResult, Tuner


@dataclass(frozen=True)
class TrainOutcome:
    """What the train stage writes: the fitted winner (and its model file's bytes),
    models/model.json and metrics/cv.json. Nothing in them names this machine's MLflow
    run or how long training took: those are in MLflow, so the files are reproducible."""

    model: Any
    model_file: bytes
    model_info: dict[str, Any]
    cv_metrics: dict[str, Any]
    fit_seconds: dict[str, float]  # per candidate, for benchmarks; MLflow has it per run


def pipeline_factory(
    cfg: Config, schema: FeatureSchema, name: str, task: Task
) -> Callable[[dict], Any]:
    """Parameters -> an unfitted pipeline for candidate `name`, with the shared settings."""
    settings = cfg.train

    def build(params: dict) -> Any:
        return build_pipeline(
            name,
            params,
            schema,
            settings.resampling,
            settings.seed,
            settings.n_jobs,
            settings.max_categories,
            task.name,
        )

    return build


def build_candidates(
    cfg: Config, schema: FeatureSchema, task: Task
) -> dict[str, tuple[dict[str, Any], Any]]:
    """(params, unfitted pipeline) for each enabled candidate that learns `task`."""
    candidates = {}
    for name, params in cfg.train.enabled_candidates().items():
        if CANDIDATES[name].learns(task.name):
            fixed = CANDIDATES[name].settings_for(task.name, params.hyperparameters())
            candidates[name] = (fixed, pipeline_factory(cfg, schema, name, task)(fixed))
    if not candidates:
        learners = [name for name, entry in CANDIDATES.items() if entry.learns(task.name)]
        raise ConfigError(
            f"train.candidates: none of the enabled ones learns a {task.name} task; enable "
            f"one of {', '.join(learners)}"
        )
    return candidates


def build_tuners(
    cfg: Config,
    schema: FeatureSchema,
    candidates: dict[str, tuple[dict[str, Any], Any]],
    task: Task,
) -> dict[str, Tuner]:
    """A tuner for each enabled candidate with a search space, when tuning is on."""
    settings, tuning = cfg.train, cfg.train.tuning
    if not tuning.enabled:
        return {}

    def inner_folds(y: pd.Series, places: RowPlaces) -> Folds:
        return cv_folds(
            y,
            tuning.inner_folds,
            settings.seed,
            cfg.split.strategy,
            places,
            "train.tuning.inner_folds",
            task.has_classes,
        )

    return {
        name: Tuner(
            name,
            params,
            pipeline_factory(cfg, schema, name, task),
            tuning.space[name],
            tuning,
            task.metric(settings.primary_metric),
            settings.seed,
            inner_folds,
            task,
        )
        for name, (params, _) in candidates.items()
        if tuning.space.get(name)
    }


def synthetic_example(X: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The model's input example, made of no one's row: it ships inside the model and the
    container image, so it holds, per column, values at the 10th to 90th percentiles
    (numbers; lower interpolation keeps integers whole) or the most frequent categories
    in turn. No column is null in every row: MLflow's JSON round trip would lose its type
    and the logged example would fail MLflow's own serving check."""
    example: dict[str, pd.Series] = {}
    for column in X.columns:
        values = X[column].dropna()
        if values.empty:
            example[column] = X[column].iloc[:rows].reset_index(drop=True)
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            quantiles = values.quantile(np.linspace(0.1, 0.9, rows), interpolation="lower")
            example[column] = quantiles.reset_index(drop=True)
        else:
            frequent = values.value_counts(sort=True).index.tolist()
            example[column] = pd.Series([frequent[i % len(frequent)] for i in range(rows)])
    return pd.DataFrame(example).astype(X.dtypes.to_dict())


def time_span(frame: pd.DataFrame, column: str | None) -> list[str] | None:
    """First and last value of the time column (for the model card), if there is one."""
    if not column or frame[column].isna().all():
        return None
    return [str(frame[column].min()), str(frame[column].max())]


def cv_summary(
    winner: CandidateResult,
    results: list[CandidateResult],
    primary: str,
    final_search: SearchResult | None = None,
) -> dict:
    """metrics/cv.json. With tuning, each tuned candidate also shows its searches' own
    (optimistic) best inner-CV score beside the nested score that ranked it."""
    compared = (winner.task or Binary).candidate_metrics
    summary: dict[str, Any] = {
        "winner": winner.name,
        "primary_metric": primary,
        **winner.summary(),
        "candidates": {
            r.name: {f"cv_{m}": round_sig(r.mean(m)) for m in compared}
            | (
                {f"search_best_{primary}": round_sig(np.mean([s.best_score for s in r.searches]))}
                if r.searches
                else {}
            )
            for r in results
        },
    }
    if final_search is not None:
        summary[f"search_best_{primary}"] = round_sig(final_search.best_score)
        summary["trials"] = len(final_search.trials)
    return summary


def train_table(cfg: Config) -> TrainOutcome:
    """The one place scale.mode picks a trainer for cfg.paths.train: the in-memory
    candidates with tuning and resampling, the external-memory booster, or Dask. All
    three fold the rows alike (placement.py)."""
    task = resolve_task(cfg.data, cfg.paths.train)
    if not isinstance(task, Binary) and cfg.scale.mode != "in_memory":
        raise DataError(
            f"target '{cfg.data.target}' is a {task.name} task ({task.reason}): scale.mode "
            f"{cfg.scale.mode} trains binary tasks only so far; set scale.mode: in_memory"
        )
    if not task.has_classes and cfg.train.resampling != "none":
        raise ConfigError(
            f"train.resampling: {cfg.train.resampling} makes rows of a rare class, and target "
            f"'{cfg.data.target}' is a {task.name} task with no classes; set it to none"
        )
    if cfg.scale.mode == "streaming":
        from mlops_starter.training.train_streaming import train_streaming

        return train_streaming(cfg)
    if cfg.scale.mode == "dask":
        from mlops_starter.training.train_dask import train_dask

        return train_dask(cfg)
    return train(pd.read_parquet(cfg.paths.train), cfg, task)


def train(frame: pd.DataFrame, cfg: Config, task: Task) -> TrainOutcome:
    """Cross-validate, select, refit and log; the MLflow run records git and data hashes."""
    settings = cfg.train
    primary = task.metric(settings.primary_metric)
    if isinstance(task, Binary):
        y = target_of(frame, cfg.data)
    else:
        y = pd.Series(task.encode(frame[cfg.data.target]), index=frame.index)
    schema = FeatureSchema.infer(frame, cfg.non_feature_columns, cfg.data.categorical_columns)
    X = frame[schema.columns]
    # Rows are folded as they were split: identical features (or one group) together.
    places = RowPlaces.of(frame, cfg)
    folds = cv_folds(
        y, settings.cv_folds, settings.seed, cfg.split.strategy, places, classes=task.has_classes
    )
    candidates = build_candidates(cfg, schema, task)
    lineage = training_lineage(cfg)
    with tracking.start_run(cfg.mlflow.experiment, "train", lineage) as train_run:
        shared = {
            "cv_folds": settings.cv_folds,
            "resampling": settings.resampling,
            "calibration": settings.calibration,
            "split": cfg.split.strategy,
        }
        tuners = build_tuners(cfg, schema, candidates, task)
        results = run_candidates(
            candidates,
            X,
            y,
            folds,
            settings.threshold_fbeta,
            settings.calibration,
            tuners,
            places,
            task,
            settings,
        )
        for result in results:
            tracking.log_candidate(result, shared)
        winner = select_winner(results, primary, task)
        logging.getLogger("train").info(
            "winner %s: mean CV %s %.4f", winner.name, primary, winner.mean(primary)
        )
        final_params, final_pipeline = candidates[winner.name]
        final_search = None
        if winner.name in tuners:
            # The winner's parameters for the refit: one more search, on all training rows.
            # Its best score is optimistic and is reported only beside the nested CV score.
            final_search = tuners[winner.name].search(X, y.to_numpy(), places, "final")
            final_params = final_search.best_params
            final_pipeline = tuners[winner.name].build(final_params)
            tracking.log_search(final_search, winner.name, train_run)
            mlflow.log_metric(f"search_best_{primary}", final_search.best_score)
        model = calibrated(portable(clone(final_pipeline).fit(X, y), winner.name), winner)
        model_file = track_winner(cfg, shared, winner, model, X, schema, lineage, primary)

    model_info = winner_info(cfg, winner, final_params, schema, frame, y, lineage)
    return TrainOutcome(
        model,
        model_file,
        model_info,
        cv_summary(winner, results, primary, final_search),
        {r.name: round(r.fit_seconds, 2) for r in results},
    )


def track_winner(
    cfg: Config,
    shared: dict[str, Any],
    winner: CandidateResult,
    model: Any,
    X: pd.DataFrame,
    schema: FeatureSchema,
    lineage: dict[str, str],
    primary: str,
) -> bytes:
    """Log the refit winner to the active MLflow run, with the serving metadata (threshold,
    feature profile of `X`) it carries into the registry and the keys of the training rows;
    return its model file's bytes."""
    settings = cfg.train
    mlflow.set_tags({"winner": winner.name, "primary_metric": primary})
    mlflow.log_params(
        {**shared, "winner": winner.name, "threshold_fbeta": settings.threshold_fbeta}
    )
    mlflow.log_metrics(winner.tracked_metrics())
    serving = {
        "threshold": winner.threshold,
        "positive_label": cfg.data.positive_label,
        "id_column": cfg.data.id_column,
        "feature_profile": feature_profile(X, schema),
        "data_train_md5": lineage["data.train_md5"],
    } | ({"task": (winner.task or Binary).name, **winner.learnt} if winner.learnt else {})
    predict_fn = "predict_proba" if (winner.task or Binary).has_classes else "predict"
    model_uri = tracking.log_model(
        model, synthetic_example(X), trusted_types(), serving, predict_fn
    )
    # Which rows it learnt from, so the gate never judges this version on them later.
    trained_on = [*schema.columns, cfg.data.target]
    log_training_rows(row_keys(cfg.paths.train, trained_on, cfg.scale.batch_rows), trained_on)
    model_file = model_bytes(model)
    mlflow.set_tags(
        {
            MODEL_MD5_TAG: hashlib.md5(model_file, usedforsecurity=False).hexdigest(),
            MODEL_URI_TAG: model_uri,
        }
    )
    return model_file


def training_lineage(cfg: Config) -> dict[str, str]:
    """What the training run records about code and data, for tracing a model back."""
    return {
        **tracking.git_state(),
        **tracking.library_versions(),
        "data.train_md5": file_md5(cfg.paths.train),
        "data.raw_md5": file_md5(cfg.paths.raw),
        "data.source": cfg.data.source_label,
    }


def winner_info(
    cfg: Config,
    winner: CandidateResult,
    params: dict[str, Any],
    schema: FeatureSchema,
    frame: pd.DataFrame,
    y: pd.Series,
    lineage: dict[str, str],
    rows: int | None = None,
    span: list[str] | None = None,
) -> dict[str, Any]:
    """models/model.json. `frame` is the training set, or a sample of it when it was
    streamed: then `rows` and `span` give the whole set's size and time span. A binary
    winner has a threshold and a positive rate; another task's has what it learnt."""
    learnt = (
        {"train_positive_rate": float(y.mean())}
        if not winner.learnt
        else {"task": (winner.task or Binary).name, **winner.learnt}
    )
    return {
        "winner": winner.name,
        "params": params,
        "threshold": winner.threshold,
        "feature_schema": schema.to_dict(),
        "columns": schema.treatment(frame, cfg.train.max_categories),
        "calibration": cfg.train.calibration,
        **learnt,
        "train_rows": len(frame) if rows is None else rows,
        "time_span": time_span(frame, cfg.data.time_column) if rows is None else span,
        "data_train_md5": lineage["data.train_md5"],
    }
