"""Files the stages write: atomically (a failed stage leaves the previous output or nothing,
never half a file), and models in skops, the format that runs no code on load."""

from __future__ import annotations

import contextlib
import dataclasses
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

from mlops_starter.candidates import CANDIDATES
from mlops_starter.errors import ModelFileError


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


def write_tables(folder: str | Path, tables: dict[str, pd.DataFrame]) -> None:
    """Each table as `<name>.csv` in `folder`, and no other CSV file left there: a task's
    plots replace another task's, never sit beside them."""
    for name, table in tables.items():
        write_csv(Path(folder) / f"{name}.csv", table)
    for stale in Path(folder).glob("*.csv"):
        if stale.stem not in tables:
            stale.unlink()


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records, missing values as None: what a client sends. Not
    DataFrame.to_json, whose C encoder cuts a column name at a NUL character."""
    import orjson

    def plain(value: Any) -> Any:
        if pd.isna(value):
            return None
        return value.item() if hasattr(value, "item") else str(value)

    rows = frame.to_dict(orient="records")
    return list(orjson.loads(orjson.dumps(rows, default=plain, option=orjson.OPT_SERIALIZE_NUMPY)))


def file_md5(path: str | Path) -> str:
    """The content hash DVC 3 records for a file, so MLflow runs can point back to DVC data."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Types skops may load from a model file we wrote (beyond its built-in safe set): those of
# the shared pipeline here, and each registered candidate's (candidates.py).
# tests/training/test_candidates.py checks that every candidate needs no type outside them.
PIPELINE_TRUSTED_TYPES = (
    "mlops_starter.evaluation.calibration.CalibratedClassifier",
    "mlops_starter.evaluation.calibration.CalibrationMap",
    "mlops_starter.tasks.multiclass.CalibratedMulticlass",
    "mlops_starter.tasks.regression.IntervalRegressor",
    "imblearn.pipeline.Pipeline",
    "numpy.dtype",
    "imblearn.over_sampling._smote.base.SMOTE",
    "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
)


def trusted_types() -> list[str]:
    """Every type a model file of ours may hold: the pipeline's and the candidates'."""
    listed = [*PIPELINE_TRUSTED_TYPES]
    for candidate in CANDIDATES.values():
        listed += [t for t in candidate.trusted_types if t not in listed]
    return listed


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
            content = written.read(old_name)
            if new_name.endswith(".npy"):
                content = _padding_zeroed(content)
            out.writestr(zipfile.ZipInfo(new_name, fixed_time), content)
        out.writestr(zipfile.ZipInfo("schema.json", fixed_time), json.dumps(schema, indent=2))
    return canonical.getvalue()


def _padding_zeroed(npy: bytes) -> bytes:
    """An .npy file of a record array with its padding bytes zeroed. A tree's node array
    (sklearn's Tree) has 7 bytes of padding per node that nothing writes, so they hold
    whatever memory held before: two fits of the same forest differed there alone."""
    import numpy as np

    stream = io.BytesIO(npy)
    version = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    _, _, dtype = read_header(stream)
    if dtype.fields is None or dtype.itemsize == sum(
        field[0].itemsize for field in dtype.fields.values()
    ):
        return npy
    stored = np.load(io.BytesIO(npy), allow_pickle=False)
    zeroed = np.zeros(stored.shape, dtype)
    for name in dtype.fields:
        zeroed[name] = stored[name]
    out = io.BytesIO()
    np.lib.format.write_array(out, zeroed, version, allow_pickle=False)
    return out.getvalue()


def write_bytes(path: str | Path, content: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def load_model(path: str | Path) -> Any:
    """Load a pipeline written from `model_bytes`: the one way any model file is loaded.

    skops, unlike pickle, runs no code on load, but it rebuilds any type the file names
    and the caller trusts. Only `trusted_types()` (and skops's own safe set) are
    trusted; a file naming anything else (`os.system`, `builtins.eval`, a class of
    another package) is refused, naming those types."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=trusted_types())
    except UntrustedTypesFoundException:
        named = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted_types()))
        raise ModelFileError(
            f"{path} names types outside the allow-list (storage.trusted_types), so it "
            f"was not loaded: {', '.join(named)}"
        ) from None
    except (zipfile.BadZipFile, KeyError, ValueError) as unreadable:
        raise ModelFileError(f"{path} is not a skops model file: {unreadable}") from None


@dataclasses.dataclass(frozen=True)
class LoggedModel:
    """An MLflow model (a registry version or a folder, as in the bento), its pipeline
    loaded by `load_model`: never by MLflow's loader, which trusts whatever types the
    model's own MLmodel file lists, and unpickles models stored in other formats."""

    pipeline: Any
    info: Any  # mlflow.models.Model: signature, metadata, input example
    folder: Path

    @classmethod
    def load(cls, uri_or_folder: str | Path) -> LoggedModel:
        import mlflow

        folder = Path(uri_or_folder)
        if not folder.is_dir():
            folder = Path(mlflow.artifacts.download_artifacts(str(uri_or_folder)))
        info = mlflow.models.Model.load(str(folder / "MLmodel"))
        flavor = info.flavors.get("sklearn", {})
        stored = flavor.get("serialization_format", "no sklearn flavour")
        if stored != "skops":
            raise ModelFileError(
                f"{uri_or_folder} is stored as {stored}, not skops: refused, since loading "
                "a pickle runs whatever code it holds"
            )
        model_file = (folder / flavor["pickled_model"]).resolve()
        if folder.resolve() not in model_file.parents:
            raise ModelFileError(f"{uri_or_folder} points its model file outside its folder")
        return cls(load_model(model_file), info, folder)

    def input_example(self) -> pd.DataFrame:
        return self.info.load_input_example(str(self.folder))
