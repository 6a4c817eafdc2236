"""Files the stages write: atomically (a failed stage leaves the previous output or nothing,
never half a file), and models in skops, the format that runs no code on load."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
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


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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


def model_bytes(pipeline: Any) -> bytes:
    """The pipeline in skops format, byte for byte the same for the same fitted model.

    skops names the arrays in its zip file after Python object ids and stamps each entry
    with the time. Renaming them in order of appearance and fixing the time makes a
    retrain on the same data, code and params give the same file, so dvc.lock (which
    records its hash) stays as committed on every machine.
    """
    import skops.io  # 2 s of imports (sklearn): only for the commands that touch model files

    written = zipfile.ZipFile(io.BytesIO(skops.io.dumps(pipeline)))
    schema = json.loads(written.read("schema.json"))
    object_ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def renumber(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = object_ids.setdefault(value, len(object_ids))
                elif key == "file" and isinstance(value, str):
                    node[key] = files.setdefault(value, f"{len(files):05d}{Path(value).suffix}")
                else:
                    renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    renumber(schema)
    fixed_time = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
    canonical = io.BytesIO()
    with zipfile.ZipFile(canonical, "w") as out:
        for old_name, new_name in sorted(files.items(), key=lambda item: item[1]):
            out.writestr(zipfile.ZipInfo(new_name, fixed_time), written.read(old_name))
        out.writestr(zipfile.ZipInfo("schema.json", fixed_time), json.dumps(schema, indent=2))
    return canonical.getvalue()


def write_bytes(path: str | Path, content: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def load_model(path: str | Path) -> Any:
    """Load a pipeline written from `model_bytes`, trusting only the types listed above.
    skops, unlike pickle, runs no arbitrary code on load."""
    import skops.io

    return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
