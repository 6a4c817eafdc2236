"""Files the stages write: atomically (a failed stage leaves the previous output or nothing,
never half a file), and models in skops, the format that runs no code on load."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it over `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def file_md5(path: str | Path) -> str:
    """The content hash DVC 3 records for a file, so MLflow runs can point back to DVC data."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Types skops may load from a model file we wrote (beyond its built-in safe set).
# tests/training/test_candidates.py checks that every candidate needs no type outside this list.
SKOPS_TRUSTED_TYPES = [
    "mlops_starter.evaluation.calibration.CalibratedClassifier",
    "mlops_starter.evaluation.calibration.CalibrationMap",
    "imblearn.pipeline.Pipeline",
    "numpy.dtype",
    "imblearn.over_sampling._smote.base.SMOTE",
    "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]


def save_model(pipeline: Any, path: str | Path) -> None:
    """Persist a fitted pipeline with skops: loading it later runs no arbitrary code (unlike pickle)."""
    import skops.io  # 2 s of imports (sklearn): only for the commands that touch model files

    with atomic_path(path) as tmp:
        skops.io.dump(pipeline, tmp)


def load_model(path: str | Path) -> Any:
    """Load a pipeline saved by `save_model`, trusting only the types listed above."""
    import skops.io

    return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
