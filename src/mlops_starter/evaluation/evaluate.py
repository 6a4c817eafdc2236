"""The evaluate stage: score the refitted winner once on the untouched test set, and add
the metrics, curves, feature importance, slice metrics and score profile to the
training run in MLflow."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.batches import (
    SAMPLE_SALT,
    BottomSample,
    iter_parquet,
    parquet_rows,
    stable_hash,
    unit_interval,
)
from mlops_starter.data.profile import answer_profile, score_profile
from mlops_starter.data.schema import FeatureSchema, batch_target
from mlops_starter.evaluation.slices import (
    feature_importance,
    slice_metrics,
    task_slice_metrics,
)
from mlops_starter.expected_performance import reference_spread
from mlops_starter.metrics import (
    calibration_metrics,
    classification_metrics,
    curve_tables,
    reliability_table,
)
from mlops_starter.rounding import round_sig, rounded_figures
from mlops_starter.storage import file_md5
from mlops_starter.tasks import Answers, Binary, Task, answers_of, resolve_task


@dataclass(frozen=True)
class Evaluation:
    """What the evaluate stage writes: metrics/test.json, one plot table per curve and
    for feature importance, reports/slices.json, and each test row's score (the register
    stage compares them with the champion's)."""

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame
    slices: dict[str, Any]


@dataclass(frozen=True)
class TestScores:
    y: np.ndarray
    proba: np.ndarray
    ids: pd.Series | None  # pandas' Arrow-backed strings: a Python str per id costs 60 bytes


def evaluate(model: Any, model_info: dict[str, Any], cfg: Config, run_id: str) -> Evaluation:
    """Score the test set at cfg.paths.test once, batch by batch (in memory, one batch),
    and add the results to the training run `run_id`. The metrics and curves use every
    row; importance and slices, which reshuffle and regroup rows, use every row in
    memory and a deterministic sample of `scale.sample_rows` of them past memory.
    A multi-class or regression task (in memory only so far) reports its own figures."""
    task = resolve_task(cfg.data, cfg.paths.test)
    if not isinstance(task, Binary):
        return evaluate_task(model, model_info, cfg, run_id, task)
    schema = FeatureSchema(**model_info["feature_schema"])
    test_rows = parquet_rows(cfg.paths.test)
    batch_rows, sample_rows = cfg.scale.batching(test_rows)
    y, proba, ids = np.empty(test_rows, dtype=int), np.empty(test_rows), []
    sample = BottomSample(sample_rows)
    position = 0
    for frame in iter_parquet(cfg.paths.test, batch_rows):
        X, here = frame[schema.columns], slice(position, position + len(frame))
        y[here] = batch_target(frame, cfg.data)
        proba[here] = round_sig(model.predict_proba(X)[:, 1])
        if cfg.data.id_column:
            ids.append(frame[cfg.data.id_column])
        keys = unit_interval(stable_hash(X, cfg.train.seed, SAMPLE_SALT))
        sample.add(X.assign(_y=y[here], _proba=proba[here]), keys, np.arange(len(X)) + position)
        position += len(X)
    rows = sample.frame()
    scores = TestScores(y, proba, pd.concat(ids, ignore_index=True) if ids else None)
    sampled = TestScores(rows.pop("_y").to_numpy(int), rows.pop("_proba").to_numpy(), None)
    return report_evaluation(model, model_info, cfg, run_id, scores, rows, sampled)


def report_evaluation(
    model: Any,
    model_info: dict[str, Any],
    cfg: Config,
    run_id: str,
    test: TestScores,
    X: pd.DataFrame,
    sampled: TestScores,
) -> Evaluation:
    """Metrics and curves from every test row's score; importance and slices from the
    rows in `X` (all of them, or a sample) with their `sampled` scores. Every figure is
    rounded (rounding.py), as the scores in `test` already are."""
    schema = FeatureSchema(**model_info["feature_schema"])
    y, proba = test.y, test.proba
    scores = pd.DataFrame({"actual": y, "probability": proba})
    if test.ids is not None:
        scores.insert(0, cfg.data.id_column, test.ids)
    threshold = model_info["threshold"]
    metrics = rounded_figures(
        {
            "model": model_info["winner"],
            "rows": len(y),
            "positive_rate": float(y.mean()),
            **classification_metrics(y, proba, threshold),
            **calibration_metrics(y, proba, model_info["train_positive_rate"]),
        }
    )
    settings = cfg.evaluate
    importance = feature_importance(
        model,
        X,
        sampled.y,
        Binary.metric(cfg.train.primary_metric),
        settings.importance_repeats,
        cfg.train.seed,
    )
    top_numeric = [f for f in importance["feature"] if f in schema.numeric]
    slices = rounded_figures(
        slice_metrics(
            X,
            sampled.y,
            sampled.proba,
            threshold,
            schema.categorical,
            top_numeric[: settings.slices.numeric_features],
            settings.slices,
        )
    )
    warn_weak_slices(slices)
    if cfg.scale.mode != "in_memory":  # past memory, slices come from a sample of the rows
        slices["sampled_rows"] = len(X)
    if slices["worst"] is not None:
        metrics[f"worst_slice_{settings.slices.metric}"] = slices["worst"][settings.slices.metric]
    tables = rounded_figures(
        curve_tables(y, proba, threshold)
        | {"calibration": reliability_table(y, proba), "importance": importance}
    )
    # Monitoring compares served scores with these (prediction drift, estimated performance).
    reference = score_profile(proba, threshold)
    answering = answers_of(model_info)
    reference["performance"] = performance_reference(answering, answering.decide(proba), y)
    log_evaluation(run_id, cfg, metrics, tables, slices, reference)
    return Evaluation(metrics, tables, scores, slices)


def evaluate_task(
    model: Any, model_info: dict[str, Any], cfg: Config, run_id: str, task: Task
) -> Evaluation:
    """A multi-class or regression model scored once on the whole test set: the task's
    metrics and plot tables, each row's answer, and permutation importance by the task's
    primary metric, and slices by the task's comparison metric."""
    schema = FeatureSchema(**model_info["feature_schema"])
    frame = pd.read_parquet(cfg.paths.test)
    X, y = frame[schema.columns], task.encode(frame[cfg.data.target])
    report = task.test_report(model, X, y)
    metric = task.metric(cfg.train.primary_metric)
    importance = feature_importance(
        model, X, y, metric, cfg.evaluate.importance_repeats, cfg.train.seed, task
    )
    metrics = rounded_figures({"model": model_info["winner"], "task": task.name, **report.metrics})
    tables = rounded_figures(report.tables | {"importance": importance})
    answers = rounded_figures(report.answers)
    if cfg.data.id_column:
        answers.insert(0, cfg.data.id_column, frame[cfg.data.id_column].to_numpy())
    settings = cfg.evaluate.slices
    top_numeric = [f for f in importance["feature"] if f in schema.numeric]
    slices = rounded_figures(
        task_slice_metrics(
            X,
            y,
            task.read_answers(report.answers)[1],
            task,
            schema.categorical,
            top_numeric[: settings.numeric_features],
            settings,
        )
    )
    warn_weak_slices(slices)
    if slices["worst"] is not None:
        metrics[f"worst_slice_{slices['metric']}"] = slices["worst"][slices["metric"]]
    # Monitoring compares served answers with these (prediction drift).
    answering = answers_of(model_info)
    decided = answering.decide(task.read_answers(report.answers)[1])
    reference = answer_profile(answering.drift_series(decided), decided.get("label"))
    actual = answering.actual(frame[cfg.data.target])
    if (performance := performance_reference(answering, decided, actual)) is not None:
        reference["performance"] = performance
    log_evaluation(run_id, cfg, metrics, tables, slices, reference)
    return Evaluation(metrics, tables, answers, slices)


def performance_reference(
    answering: Answers, decided: dict[str, np.ndarray], actual: np.ndarray
) -> dict[str, Any] | None:
    """The test set's class scores and their spread by sample size, which the monitor
    holds each window's estimated performance against; None for a regression."""
    classified = answering.class_probabilities(decided)
    return None if classified is None else reference_spread(*classified, actual)


def warn_weak_slices(slices: dict[str, Any]) -> None:
    """One warning per flagged slice, with its score beside the whole test set's."""
    metric = slices["metric"]
    for weak in slices["flagged"]:
        logging.getLogger("evaluate").warning(
            "slice %s = %s is weak: %s %.4f against %.4f on the whole test set (%d rows)",
            weak["feature"],
            weak["slice"],
            metric,
            weak[metric],
            slices["overall"][metric],
            weak["rows"],
        )


def log_evaluation(
    run_id: str,
    cfg: Config,
    metrics: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    slices: dict[str, Any],
    reference_scores: dict[str, Any] | None = None,
) -> None:
    """Add the test figures to the training run `run_id`: every number as a test_ metric,
    the plot tables, the metrics and slices as JSON, and the reference scores if any."""
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tag("data.test_md5", file_md5(cfg.paths.test))
        mlflow.log_metrics(
            {f"test_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        )
        with tempfile.TemporaryDirectory() as scratch:
            for name, table in tables.items():
                table.to_csv(Path(scratch) / f"{name}.csv", index=False)
            mlflow.log_artifacts(scratch, artifact_path="test_plots")
        mlflow.log_dict(metrics, "test_metrics.json")
        mlflow.log_dict(slices, "test_slices.json")
        if reference_scores is not None:
            mlflow.log_dict(reference_scores, "reference_scores.json")
