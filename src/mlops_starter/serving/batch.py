"""The batch scorer: a table in (any source ingest reads: CSV, Parquet, a database
table or query; any size), a Parquet of scores out.

It reads the input in chunks through the same table source as ingest (data/sources.py:
the same CSV dialect, the same missing-value markers), so memory stays at one chunk whatever the table's
size; scores each chunk with the same scorer the service uses (compiled and checked
against the registered pipeline first, for a binary model); and writes the id, the
columns the service answers (binary: probability and label; multi-class: label and a
`probabilities` struct of each class's; regression: value, lower and upper) and the model
version beside each other in a temporary file that replaces the output only when every
row is scored, so a failed run leaves an earlier output whole.

Values the service would refuse with a 400 cannot stop a batch of millions halfway:
they are scored as missing and counted, per column and kind, with the accepted
surprises (missing, unseen categories, out of range), in the summary it returns.
A required feature column absent from the input stops the job before anything is written.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from mlops_starter.data.ingest import missing_markers
from mlops_starter.data.sources import TableSource
from mlops_starter.errors import DataError
from mlops_starter.registry.model_registry import Registry
from mlops_starter.serving.schema import FLOAT32_MAX, issue_masks
from mlops_starter.serving.scorer import build_scorer
from mlops_starter.storage import LoggedModel

log = logging.getLogger(__name__)


_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0, "True": 1.0, "False": 0.0, "TRUE": 1.0, "FALSE": 0.0}


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values) or values.dtype == object


def _is_boolean(values: pd.Series) -> bool:
    """Booleans, as a bool column (Parquet) or true/false text (CSV)."""
    if pd.api.types.is_bool_dtype(values):
        return True
    present = values.dropna()
    if not _is_text(values) or present.empty:
        return False
    return bool(present.map(lambda v: isinstance(v, bool) or v in _BOOLEAN_TEXT).all())


def _as_columns(
    chunk: pd.DataFrame,
    profile: dict[str, dict[str, Any]],
    issues: Counter[str],
    na_values: list[str],
) -> dict[str, np.ndarray]:
    """Scorer `Columns` from a chunk, counting what the service would refuse; the
    missing-value markers ingest reads as missing (data.na_values) are missing here too."""
    columns: dict[str, np.ndarray] = {}
    rows = len(chunk)
    for name, spec in profile.items():
        values = chunk[name] if name in chunk else pd.Series([None] * rows, dtype=object)
        values = values.where(~missing_markers(values, na_values), None)
        present = values.notna().to_numpy()
        if spec["kind"] == "category":
            if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
                values = values.astype("Int64")  # integer codes as text, as ingest wrote them
            text = values.astype("string").astype(object).where(values.notna(), None)
            columns[name] = text.to_numpy()
            issues[f"{name}:wrong_type"] += int(np.sum(columns[name] == ""))
            continue
        if _is_boolean(values):
            values = values.map(
                _BOOLEAN_TEXT.get if _is_text(values) else float
            )  # 0/1, as ingest made them
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(
            dtype=float, na_value=np.nan, copy=True
        )
        unusable = {
            "wrong_type": present & np.isnan(numbers),
            "not_finite": np.isinf(numbers),
            "out_of_range": np.isfinite(numbers) & (np.abs(numbers) > FLOAT32_MAX),
        }
        for kind, mask in unusable.items():
            issues[f"{name}:{kind}"] += int(mask.sum())
            numbers[mask] = np.nan
        columns[name] = numbers
    return columns


def _arrow(values: Any) -> Any:
    """A column of the answer as Parquet holds it: per-class columns as one struct."""
    if isinstance(values, dict):
        return pa.StructArray.from_arrays([pa.array(v) for v in values.values()], list(values))
    return values


def score_file(
    registry: Registry,
    version_ref: str,
    table: TableSource,
    output_path: str | Path,
    chunk_rows: int = 100_000,
    na_values: list[str] = (),  # type: ignore[assignment]
    progress: bool = True,
) -> dict[str, Any]:
    """Score every row of `table` (a file or database table opened by
    `data.sources.open_table`, read as ingest reads it) with registry version
    `version_ref` (a number, champion or challenger) into `output_path` (Parquet).
    Returns the run's summary."""
    target = Path(output_path)
    if chunk_rows < 1:
        raise DataError(f"--chunk-rows must be at least 1, not {chunk_rows}")
    header = table.columns()
    version = registry.version(version_ref)
    uri = f"models:/{registry.name}/{version.version}"
    metadata = mlflow.models.get_model_info(uri).metadata or {}
    answers = registry.answers(version, metadata)
    profile: dict[str, dict[str, Any]] = metadata["feature_profile"]
    id_column = metadata.get("id_column")
    if missing := [n for n, s in profile.items() if not s["nullable"] and n not in header]:
        raise DataError(
            f"{table.label()} lacks required feature column(s) {missing} of {registry.name} "
            f"version {version.version}; it has {header}"
        )
    scorer, check = build_scorer(LoggedModel.load(uri).pipeline, profile, answers=answers)
    wanted = [c for c in [id_column, *profile] if c and c in header]
    issues: Counter[str] = Counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        total = table.total_rows()
        with tqdm(total=total, unit="rows", disable=not progress, desc="scoring") as bar:
            for chunk in table.batches(wanted, chunk_rows):
                columns = _as_columns(chunk, profile, issues, list(na_values))
                for issue, mask in issue_masks(columns, profile).items():
                    issues[issue] += int(mask.sum())
                answer = answers.columns(answers.decide(scorer.predict(columns)))
                scored: dict[Any, Any] = {
                    **({id_column: chunk[id_column].to_numpy()} if id_column in chunk else {}),
                    **{name: _arrow(values) for name, values in answer.items()},
                    "model_version": np.full(len(chunk), str(version.version)),
                }
                written = pa.table(scored)
                if writer is None:
                    writer = pq.ParquetWriter(partial, written.schema)
                writer.write_table(written)
                rows += len(chunk)
                bar.update(len(chunk))
        if writer is None:
            raise DataError(f"{table.label()} has no rows to score")
        writer.close()
        writer = None
        os.replace(partial, target)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    per_column: dict[str, dict[str, int]] = {}
    for issue, count in sorted(issues.items()):
        if count:
            name, kind = issue.split(":", 1)
            per_column.setdefault(name, {})[kind] = count
    return {
        "input": table.label(),
        "output": str(target),
        "rows": rows,
        "model": registry.name,
        "version": str(version.version),
        "scorer": {"kind": scorer.kind, "detail": scorer.detail, **check},
        "issues": per_column,
    }
