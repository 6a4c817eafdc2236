"""Which task a target asks for: data.task, or inferred from the column (`auto`)."""

from __future__ import annotations

import pyarrow.parquet as pq

from mlops_starter.config import DataConfig
from mlops_starter.errors import DataError
from mlops_starter.tasks.base import TASKS, TargetValues, Task


def _auto_choice(values: TargetValues, data: DataConfig) -> tuple[str, str]:
    """(task, why) by the rules of data.task: auto."""
    n, shown = values.n_distinct, values.shown()
    if n == 2 or data.positive_vs_rest:
        why = "two values" if n == 2 else f"{n} values and data.positive_vs_rest"
        return "binary", f"{why} ({shown})"
    if values.kind == "text":
        return "multiclass", f"text with {n} values ({shown})"
    whole = values.kind == "integer" or (values.kind == "float" and values.whole)
    if whole and n <= data.max_classes:
        return "multiclass", (
            f"whole numbers with {n} distinct values, at most data.max_classes "
            f"({data.max_classes}): {shown}"
        )
    if values.kind in ("integer", "float"):
        kind = "whole numbers" if whole else "numbers"
        return "regression", f"{kind} with {n} distinct values ({shown})"
    return "", ""


def infer_task(values: TargetValues, data: DataConfig) -> Task:
    """The task for a target of these `values`; a target no task can learn stops,
    naming the column, what it holds, and data.task."""
    column = values.column
    if values.n_distinct < 2:
        raise DataError(
            f"target column '{column}' holds {values.n_distinct} value(s) ({values.shown()}): "
            "there is nothing to learn"
        )
    if data.task == "auto":
        name, reason = _auto_choice(values, data)
        if not name:
            raise DataError(
                f"target column '{column}' holds {values.type_name} values ({values.shown()}), "
                "which no task learns: set data.task to binary, multiclass or regression, "
                "or name another data.target"
            )
    else:
        name, reason = data.task, f"set by data.task ({values.n_distinct} distinct values)"
    task = TASKS[name]
    if problem := task.fits(values, data):
        raise DataError(
            f"target column '{column}' cannot be learnt as {name} "
            f"({'data.task: auto chose it: ' + reason if data.task == 'auto' else 'data.task'}): "
            f"{problem}"
        )
    return task.of(values, data, reason)


def resolve_task(data: DataConfig, path: str) -> Task:
    """The task of the target column in the Parquet file at `path` (only that column is read)."""
    if data.target not in pq.read_schema(path).names:
        raise DataError(f"data.target '{data.target}' is no column of {path}")
    column = pq.read_table(path, columns=[data.target]).column(0)
    return infer_task(TargetValues.of(column, data.target), data)
