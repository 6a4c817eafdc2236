"""MLflow bookkeeping: runs, nested candidate runs, lineage tags and the logged model.

With no MLFLOW_TRACKING_URI set, MLflow 3 uses ./mlflow.db (SQLite) and ./mlruns:
no server needed. Point the variable at a team server and nothing here changes.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.models import infer_signature

from mlops_starter.candidates import CANDIDATES
from mlops_starter.training.cv import CandidateResult
from mlops_starter.training.tuning import SearchResult

TRACKED_LIBRARIES = (
    "scikit-learn",
    "xgboost-cpu",
    "imbalanced-learn",
    "pandas",
    "numpy",
    "mlflow",
    "dvc",
)


def git_state(repo: str | Path = ".") -> dict[str, str]:
    """The commit the code was run from, and whether the work tree had uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 (argument list, no shell)
            ["git", *args],  # noqa: S607 (a tool found on PATH by design)
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    try:
        return {
            "git.commit": git("rev-parse", "HEAD"),
            "git.dirty": str(bool(git("status", "--porcelain"))),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}


def library_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[f"lib.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def start_run(experiment: str, run_name: str, tags: dict[str, str]) -> mlflow.ActiveRun:
    mlflow.set_experiment(experiment)
    return mlflow.start_run(run_name=run_name, tags=tags)


def log_candidate(result: CandidateResult, extra_params: dict[str, Any]) -> None:
    """One nested run per candidate: its params, every fold's scores, the CV summary, timing."""
    with mlflow.start_run(
        run_name=result.name, nested=True, tags={"candidate": result.name}
    ) as candidate_run:
        mlflow.log_params({**result.params, **extra_params})
        for fold, metrics in enumerate(result.fold_metrics):
            mlflow.log_metrics({f"fold_{k}": v for k, v in metrics.items()}, step=fold)
        mlflow.log_metrics(result.tracked_metrics())
        for search in result.searches:
            log_search(search, result.name, candidate_run)


def log_search(search: SearchResult, candidate: str, parent: mlflow.ActiveRun) -> None:
    """One run per trial, nested under `parent`: its parameters, each inner fold's score
    (as steps) and their mean. Written in one batch per trial: a search has many."""
    client = mlflow.MlflowClient()
    for trial in search.trials:
        run = client.create_run(
            parent.info.experiment_id,
            run_name=f"{candidate} {search.label} trial {trial.number}",
            tags={
                "mlflow.parentRunId": parent.info.run_id,
                "candidate": candidate,
                "search": search.label,
                "trial": str(trial.number),
            },
        )
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("inner_fold_score", s, now, step) for step, s in enumerate(trial.fold_scores)
            ]
            + [Metric("inner_cv_score", trial.score, now, 0)],
            params=[Param(k, str(v)) for k, v in trial.params.items()],
        )
        client.set_terminated(run.info.run_id)


# What loading a logged model imports: MLflow's sklearn flavour, skops, and the libraries
# of every type its file may hold (storage.trusted_types; a candidate's own are its
# `libraries`). Named rather than left to MLflow's inference, which reloads the model in
# a subprocess (4 s a training run) and listed pytest (loaded in the test process) but
# not xgboost.
MODEL_LIBRARIES = (
    "mlflow",
    "mlops-starter",
    "skops",
    "scikit-learn",
    "imbalanced-learn",
    "numpy",
    "pandas",
    "scipy",
)


def model_libraries() -> list[str]:
    """MODEL_LIBRARIES and every registered candidate's own, in a stable order."""
    listed = list(MODEL_LIBRARIES)
    for candidate in CANDIDATES.values():
        listed += [name for name in candidate.libraries if name not in listed]
    return listed


def model_requirements() -> list[str]:
    """The logged model's requirements.txt: model_libraries() as installed here."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in model_libraries()]


def log_model(
    pipeline: Any,
    example: pd.DataFrame,
    trusted_types: list[str],
    serving: dict[str, Any],
    predict_fn: str = "predict_proba",
) -> str:
    """Log the fitted pipeline in the safe skops format with signature and input example.

    The pyfunc flavour answers by `predict_fn`: class probabilities, or a regressor's
    value (predict). `serving` (threshold, positive label,
    feature profile, data hash) goes into the MLmodel file, so every registered version
    carries what a server needs to validate input and label its answers.
    """
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; ours never do in
        # training, and the signature must match what callers pass (it refuses int -> float).
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        signature = infer_signature(example, getattr(pipeline, predict_fn)(example))
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=signature,
        input_example=example,
        serialization_format="skops",
        skops_trusted_types=trusted_types,
        pyfunc_predict_fn=predict_fn,
        metadata=serving,
        pip_requirements=model_requirements(),
    )
    return str(info.model_uri)
