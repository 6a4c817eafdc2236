"""Hyperparameter search that does not leak into the reported score.

A search picks the parameters whose inner-CV score is best, so that score is biased
upwards: with enough trials, noise alone looks like skill. Here the search runs inside
every outer CV fold on that fold's training rows only (nested CV), and the score that
picks the winner and goes into metrics/cv.json comes from the outer folds, which no
search saw. The search's own best score is reported beside it, to show the gap.

Optuna (TPE sampler, seeded) runs the trials. Each study lives in a SQLite file (or any
database URL Optuna takes) under a name derived from everything that shapes it, so a
killed run resumes where it stopped and a changed setting starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone

from mlops_starter.config import SearchRange, TuningConfig
from mlops_starter.rounding import round_sig
from mlops_starter.tasks import Binary, Task
from mlops_starter.training.candidates import portable
from mlops_starter.training.placement import Folds, RowPlaces

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar shows the trials

FoldMaker = Callable[[pd.Series, RowPlaces], Folds]


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    score: float
    fold_scores: list[float]


@dataclass(frozen=True)
class SearchResult:
    """One search: where it ran (`label`), its best parameters and inner-CV score, all trials."""

    label: str
    best_params: dict[str, Any]
    best_score: float
    trials: list[Trial] = field(repr=False)


def storage_url(storage: str) -> str:
    """A database URL as given, or a file path as a SQLite URL."""
    if "://" in storage:
        return storage
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{storage}"


def _suggest(trial: optuna.Trial, name: str, search: SearchRange) -> Any:
    if search.choices is not None:
        return trial.suggest_categorical(name, search.choices)
    low, high = search.low, search.high
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high, log=search.log)
    return trial.suggest_float(name, float(low), float(high), log=search.log)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Tuner:
    """Searches one candidate's parameters on whatever rows it is given."""

    candidate: str
    params: dict[str, Any]  # the fixed parameters; the space overrides some of them
    build: Callable[[dict[str, Any]], Any]  # parameters -> unfitted pipeline
    space: dict[str, SearchRange]
    settings: TuningConfig
    metric: str  # one of the task's metrics
    seed: int
    make_folds: FoldMaker  # (labels, places) -> inner folds, as the outer CV makes them
    task: Task | None = None  # None: binary

    def study_name(self, X: pd.DataFrame, y: np.ndarray, label: str) -> str:
        """Everything that shapes the search, hashed: the same inputs resume the same study."""
        shape = {
            "params": self.params,
            "space": {k: v.model_dump() for k, v in self.space.items()},
            "metric": self.metric,
            "seed": self.seed,
            "inner_folds": self.settings.inner_folds,
            "rows": int(pd.util.hash_pandas_object(X, index=False).sum()),
            "labels": hashlib.md5(
                np.ascontiguousarray(y).tobytes(), usedforsecurity=False
            ).hexdigest(),
        }
        shown = json.dumps(shape, sort_keys=True, default=str).encode()
        digest = hashlib.md5(shown, usedforsecurity=False).hexdigest()  # a name, not a secret
        return f"{self.candidate}-{label}-{digest[:12]}"

    def search(self, X: pd.DataFrame, y: np.ndarray, places: RowPlaces, label: str) -> SearchResult:
        """Run (or resume) the search on these rows up to the trial budget."""
        folds = self.make_folds(pd.Series(y), places)
        task = self.task or Binary

        def objective(trial: optuna.Trial) -> float:
            params = self.params | {k: _suggest(trial, k, v) for k, v in self.space.items()}
            pipeline = self.build(params)
            fold_scores = []
            for train_rows, valid_rows in folds:
                model = portable(
                    clone(pipeline).fit(X.iloc[train_rows], y[train_rows]), self.candidate
                )
                raw = round_sig(task.predict_raw(model, X.iloc[valid_rows]))
                fold_scores.append(round_sig(task.score(self.metric, y[valid_rows], raw)))
            trial.set_user_attr("fold_scores", fold_scores)
            # The sampler steers by these: a last-bit difference would change its path.
            return round_sig(np.mean(fold_scores))

        study = optuna.create_study(
            study_name=self.study_name(X, y, label),
            storage=storage_url(self.settings.storage),
            load_if_exists=True,
            direction="maximize" if task.metrics[self.metric] else "minimize",
            sampler=optuna.samplers.TPESampler(seed=self.seed),
        )
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if remaining := self.settings.trials - len(done):
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=self.settings.timeout_seconds,
                show_progress_bar=True,
            )
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        trials = [
            Trial(t.number, t.params, float(t.value), t.user_attrs["fold_scores"])  # type: ignore[arg-type]
            for t in completed
        ]
        best = trials[task.best(self.metric, {i: t.score for i, t in enumerate(trials)})]
        return SearchResult(label, self.params | best.params, best.score, trials)
