"""Cross-validation on the training set only, calibration and threshold tuning on
out-of-fold predictions, and the choice of a winner. The test set is never seen here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from tqdm.auto import tqdm

from mlops_starter.config import TrainConfig
from mlops_starter.errors import DataError
from mlops_starter.evaluation.calibration import CalibratedClassifier, CalibrationMap
from mlops_starter.metrics import classification_metrics, tune_threshold
from mlops_starter.rounding import round_sig
from mlops_starter.tasks import Binary, Task
from mlops_starter.training.candidates import portable
from mlops_starter.training.placement import (
    Folds,
    RowPlaces,
    block_count,
    fold_blocks,
    fold_edges,
    row_folds,
)
from mlops_starter.training.tuning import SearchResult, Tuner


def cv_folds(
    y: pd.Series,
    n_folds: int,
    seed: int,
    strategy: str,
    places: RowPlaces,
    setting: str = "train.cv_folds",
    classes: bool = True,
) -> Folds:
    """Folds by the one placement rule (placement.py), as the batch trainers make them:
    time-ordered blocks for a time split, else hashed folds that keep rows with one
    placement hash (identical features, or one group) together. For `classes`, a fold
    missing a class on either side (few positives, early in time or in few groups) stops
    training, naming `setting`, the number of folds."""
    labels = np.asarray(y)
    edges = fold_edges(strategy, [places], n_folds, seed)
    blocks = fold_blocks(places, strategy, n_folds, seed, edges)
    folds = row_folds(blocks, block_count(n_folds, edges), strategy == "time")
    if classes:
        check_classes(labels, folds, n_folds, strategy, setting)
    return folds


def check_classes(
    labels: np.ndarray, folds: Folds, n_folds: int, strategy: str, setting: str
) -> None:
    """Every class on both sides of every fold, or an error naming `setting`."""
    binary = len(np.unique(labels)) == 2
    if strategy != "time":
        # Hashed folds place each class in every fold only if it has a row per fold.
        values, counts = np.unique(labels, return_counts=True)
        if counts.min() < n_folds:
            rarest = values[counts.argmin()]
            named = ("positive" if rarest == 1 else "negative") if binary else f"code {rarest}"
            raise DataError(
                f"the training split holds {counts.min()} row(s) of the {named} class: "
                f"{n_folds} cross-validation folds need at least {n_folds}. Lower {setting}, "
                "or train on a table with more of that class"
            )
    every = len(np.unique(labels))
    for number, (fit_rows, check_rows) in enumerate(folds, start=1):
        for part, rows in (("training", fit_rows), ("validation", check_rows)):
            if len(np.unique(labels[rows])) < every:
                held = (
                    f"one class only, {int(labels[rows].sum())} positives, of "
                    f"{int(labels.sum())} in the training split"
                    if binary
                    else f"{len(np.unique(labels[rows]))} of the {every} classes"
                )
                raise DataError(
                    f"cross-validation fold {number} of {len(folds)} (split.strategy "
                    f"'{strategy}'): its {part} rows ({len(rows)}) hold {held}. Lower {setting}"
                    + (", or split by another strategy" if strategy != "stratified" else "")
                )


@dataclass
class CandidateResult:
    name: str
    params: dict[str, Any]
    fold_metrics: list[dict[str, float]]
    oof: np.ndarray = field(repr=False)  # raw out-of-fold predictions; NaN where unscored
    threshold: float | None  # binary's; None for the tasks that decide otherwise
    oof_fbeta: float | None
    fit_seconds: float
    calibration: CalibrationMap | None = None  # learnt from `oof`; the refit model carries it
    searches: list[SearchResult] = field(default_factory=list, repr=False)  # one per outer fold
    task: Task | None = None  # None: binary, which learns its threshold and map here
    learnt: dict[str, Any] = field(default_factory=dict)  # the task's own `learn`

    def mean(self, metric: str) -> float:
        return float(np.mean([fold[metric] for fold in self.fold_metrics]))

    def std(self, metric: str) -> float:
        return float(np.std([fold[metric] for fold in self.fold_metrics]))

    def summary(self) -> dict[str, Any]:
        """Mean (and spread, for the ranking metrics) over folds, plus what was learnt
        from them: binary's threshold, another task's numbers."""
        task = self.task or Binary
        out = {f"cv_{m}": round_sig(self.mean(m)) for m in task.summary_metrics}
        out |= {f"cv_{m}_std": round_sig(self.std(m)) for m in task.spread_metrics}
        if self.task is None or isinstance(self.task, Binary):
            return out | {"threshold": self.threshold}
        return out | {k: v for k, v in self.learnt.items() if isinstance(v, float)}

    def tracked_metrics(self) -> dict[str, float]:
        """What MLflow gets: the summary plus the fit time, which differs from machine to
        machine and so stays out of metrics/cv.json."""
        return self.summary() | {"fit_seconds": round(self.fit_seconds, 2)}


def cross_validate(
    name: str,
    params: dict[str, Any],
    pipeline: Any,
    X: pd.DataFrame,
    y: pd.Series,
    folds: Folds,
    fbeta: float,
    calibration: str = "none",
    on_fold: Callable[[], None] = lambda: None,
    tuner: Tuner | None = None,
    places: RowPlaces | None = None,
    task: Task | None = None,
    settings: TrainConfig | None = None,
) -> CandidateResult:
    """Fit a fresh clone of `pipeline` per fold and collect out-of-fold predictions.

    Binary (`task` None or Binary): those probabilities are calibrated (the map learnt
    from them is kept for the refit model), the threshold is tuned on the calibrated
    ones, and every fold is reported at that shared threshold. Another task learns from
    them what it learns (`Task.learn`). With a `tuner`, each fold's pipeline comes from a
    search on that fold's training rows only (folded by their `places`), so the scores
    stay unbiased.
    """
    y_array = y.to_numpy()
    oof: np.ndarray | None = None  # shaped by the first fold's predictions

    searches = []
    started = time.perf_counter()
    for fold, (train_rows, valid_rows) in enumerate(folds, start=1):
        if tuner is not None:
            if places is None:
                raise ValueError("a tuner's inner folds need the rows' places")
            found = tuner.search(
                X.iloc[train_rows],
                y_array[train_rows],
                places.nested(train_rows),
                f"outer{fold}",
            )
            searches.append(found)
            pipeline = tuner.build(found.best_params)
        model = portable(clone(pipeline).fit(X.iloc[train_rows], y_array[train_rows]), name)
        predicted = (task or Binary).predict_raw(model, X.iloc[valid_rows])
        if oof is None:
            oof = np.full((len(y), *predicted.shape[1:]), np.nan)
        oof[valid_rows] = predicted
        on_fold()
    elapsed = time.perf_counter() - started
    if oof is None:
        raise ValueError("cross-validation needs at least one fold")
    if task is not None and not isinstance(task, Binary):
        if settings is None:
            raise ValueError(f"a {task.name} task learns from train settings")
        valid = [rows for _, rows in folds]
        return summarize_task_oof(
            task, name, params, oof, y_array, valid, settings, elapsed, searches
        )
    return summarize_oof(
        name,
        params,
        oof,
        y_array,
        [valid for _, valid in folds],
        fbeta,
        calibration,
        elapsed,
        searches,
    )


def summarize_oof(
    name: str,
    params: dict[str, Any],
    oof: np.ndarray,
    y: np.ndarray,
    valid_rows: Iterable[np.ndarray],
    fbeta: float,
    calibration: str,
    elapsed: float,
    searches: list[SearchResult] | None = None,
) -> CandidateResult:
    """Calibrate the out-of-fold probabilities `oof` (NaN where no fold scored a row), tune
    the threshold on them and score each fold's `valid_rows` (positions or a mask) at that
    shared threshold. Probabilities are rounded before and after calibration (rounding.py),
    so the threshold, one of them, is the same short decimal on every machine. No copy is
    made that is not needed: a streamed table's out-of-fold column is most of train's memory."""
    scored = ~np.isnan(oof)  # time-series folds never score the earliest block
    oof = round_sig(oof)

    def of_scored(values: np.ndarray) -> np.ndarray:
        return values if scored.all() else values[scored]

    proba, mapping = oof, None
    if calibration != "none":
        mapping = CalibrationMap.fit(of_scored(oof), of_scored(y), calibration)
        proba = oof.copy()
        proba[scored] = round_sig(mapping.apply(of_scored(oof)))
    threshold, best_fbeta = tune_threshold(of_scored(y), of_scored(proba), fbeta)
    fold_metrics = [classification_metrics(y[rows], proba[rows], threshold) for rows in valid_rows]
    return CandidateResult(
        name, params, fold_metrics, oof, threshold, best_fbeta, elapsed, mapping, searches or []
    )


def summarize_task_oof(
    task: Task,
    name: str,
    params: dict[str, Any],
    oof: np.ndarray,
    y: np.ndarray,
    valid_rows: list[np.ndarray],
    settings: TrainConfig,
    elapsed: float,
    searches: list[SearchResult],
) -> CandidateResult:
    """What a multi-class or regression task learns from the out-of-fold predictions
    `oof` (rounded first, as binary's are), and each fold's metrics after it."""
    scored = ~np.isnan(oof.reshape(len(oof), -1)).any(axis=1)
    oof = round_sig(oof)
    learnt = task.learn(oof[scored], y[scored], settings)
    fold_metrics = [task.fold_metrics(y[rows], oof[rows], learnt) for rows in valid_rows]
    return CandidateResult(
        name, params, fold_metrics, oof, None, None, elapsed, None, searches, task, learnt
    )


def calibrated(model: Any, result: CandidateResult) -> Any:
    """The refit winner behind what its out-of-fold predictions taught: binary's
    calibration map, another task's `finish`."""
    if result.task is not None and not isinstance(result.task, Binary):
        return result.task.finish(model, result.learnt)
    return model if result.calibration is None else CalibratedClassifier(model, result.calibration)


def run_candidates(
    candidates: dict[str, tuple[dict[str, Any], Any]],
    X: pd.DataFrame,
    y: pd.Series,
    folds: Folds,
    fbeta: float,
    calibration: str = "none",
    tuners: dict[str, Tuner] | None = None,
    places: RowPlaces | None = None,
    task: Task | None = None,
    settings: TrainConfig | None = None,
) -> list[CandidateResult]:
    """Cross-validate every (params, pipeline) candidate with one progress bar over all
    folds; a candidate with a tuner is searched inside each fold (nested CV)."""
    results = []
    tuners = tuners or {}
    with tqdm(total=len(candidates) * len(folds), desc="cross-validation", unit="fold") as bar:
        for name, (params, pipeline) in candidates.items():
            bar.set_postfix_str(name)
            results.append(
                cross_validate(
                    name,
                    params,
                    pipeline,
                    X,
                    y,
                    folds,
                    fbeta,
                    calibration,
                    on_fold=lambda: bar.update(),
                    tuner=tuners.get(name),
                    places=places,
                    task=task,
                    settings=settings,
                )
            )
    return results


def select_winner(
    results: list[CandidateResult], primary_metric: str, task: Task | None = None
) -> CandidateResult:
    """The candidate with the best mean CV score of `primary_metric` (ties: first listed):
    the highest, or the lowest for an error such as RMSE or log loss."""
    scores = {position: r.mean(primary_metric) for position, r in enumerate(results)}
    return results[(task or Binary).best(primary_metric, scores)]
