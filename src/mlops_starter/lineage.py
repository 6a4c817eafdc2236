"""How a model file finds its MLflow run: by its content hash.

The train stage tags its run with the md5 of the model file it wrote (the hash DVC
records in dvc.lock). Later stages look the run up by that hash instead of reading a
run id from a file, so nothing committed to git names a run of one machine's store.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from mlops_starter.errors import PipelineError
from mlops_starter.storage import file_md5

MODEL_MD5_TAG = "mlops.model_md5"
MODEL_URI_TAG = "mlops.model_uri"
# The training run's record of which rows it trained on (data.batches.row_keys): the
# keys as keys.npy and the columns they were computed from as columns.json.
TRAINING_ROWS_ARTIFACT = "training_rows"


def training_runs(model_file: str | Path, experiment: str, newest: int = 1000) -> list[Run]:
    """The runs in `experiment` that logged this exact model file, newest first. There are
    several when training reran and produced the same file (results are reproducible):
    DVC then skips the stages after it, so only older runs were evaluated and registered."""
    md5 = file_md5(model_file)
    found = mlflow.get_experiment_by_name(experiment)
    runs = (
        mlflow.MlflowClient().search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{MODEL_MD5_TAG}` = '{md5}'",
            order_by=["attributes.start_time DESC"],
            max_results=newest,
        )
        if found
        else []
    )
    if not runs:
        raise PipelineError(
            f"no run in MLflow experiment '{experiment}' at {mlflow.get_tracking_uri()} logged "
            f"{model_file} (md5 {md5}): the store was changed or reset after training; "
            "retrain with `dvc repro --force train`"
        )
    return list(runs)


def training_run(model_file: str | Path, experiment: str) -> Run:
    """The newest run in `experiment` that logged this exact model file."""
    return training_runs(model_file, experiment, newest=1)[0]


def stamp(stage: str, registered_model: str, model_file: str | Path) -> dict[str, str]:
    """What the register and package stages give DVC as their output: that `stage` took
    this model file to this registered model. It is the same on every machine, so
    dvc.lock is too, and git ignores it, so a fresh clone lacks it and reruns the stage
    against its own registry. The version and bento made are this machine's:
    reports/gate.json, models/bento.json, the registry and the BentoML store say which.
    (Naming the stage keeps the two stamps apart: DVC restores an output from its cache,
    instead of running the stage, when a file with the same hash is already there.)"""
    return {"stage": stage, "registered_model": registered_model, "model_md5": file_md5(model_file)}


def log_training_rows(keys: np.ndarray, columns: list[str]) -> None:
    """Record in the active run which rows it trained on: their keys, sorted and unique,
    and the columns the keys were computed from. No data leaves the table. `keys` is
    sorted in place: np.unique would hold three copies of a streamed table's keys."""
    keys.sort()
    distinct = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "keys.npy", distinct)
        (Path(folder) / "columns.json").write_text(json.dumps(columns))
        mlflow.log_artifacts(folder, TRAINING_ROWS_ARTIFACT)


def trained_rows(run_id: str) -> tuple[list[str], np.ndarray] | None:
    """The columns and sorted keys of the rows run `run_id` trained on, or None for a run
    that recorded none (one logged before this record existed)."""
    try:
        folder = Path(
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TRAINING_ROWS_ARTIFACT)
        )
        columns = json.loads((folder / "columns.json").read_text())
        return columns, np.load(folder / "keys.npy", allow_pickle=False)
    except (MlflowException, OSError):
        return None
