"""One scored request, and everything built from it: the answer in the shape it was
asked in (records or columns) and its prediction-log entries. Both request shapes and
both paths (the fast one and the records API) end here, so they answer and log alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlops_starter.serving.prediction_log import LogBatch
from mlops_starter.serving.schema import issues_per_row
from mlops_starter.tasks import Answers

Shape = Literal["records", "columns"]


@dataclass(frozen=True)
class ScoredRequest:
    """A request's rows as scored. `issues` are accepted surprises in values and
    `ignored` the fields the model does not use, each `field:kind` -> the rows that have
    it; `features` are the rows as sent, a list per field, for the log. `decided` holds
    the answer's fields (Answers.decide), which `answers` turns into JSON."""

    request_id: str
    ids: Sequence[Any] | None
    features: Mapping[str, Sequence[Any]]
    answers: Answers
    decided: Mapping[str, np.ndarray]
    versions: list[str]
    issues: Mapping[str, np.ndarray]
    ignored: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.versions)

    def warnings(self) -> dict[str, np.ndarray]:
        """What the answer warns of: every issue but a missing value (a nullable field
        left out is the contract working), and every field ignored."""
        shown = {k: m for k, m in self.issues.items() if not k.endswith(":missing")}
        return shown | dict(self.ignored)

    def answer(self, shape: Shape, served_version: str, per_row_versions: bool) -> Any:
        """The JSON answer. Records: a list, per record the task's fields (binary:
        probability and label), the version that answered, its id and warnings. Columns:
        `{"model_version", "columns": {<the task's fields>[, "id"][, "model_version"]},
        "warnings": {field:kind: [rows]}}`; `columns.model_version` only while a split runs."""
        warnings = self.warnings()
        if shape == "records":
            rows = len(self)
            fields = self.answers.per_row(dict(self.decided))
            names = list(fields)
            return [
                dict(zip(names, values, strict=True))
                | {"model_version": version, "id": identity, "warnings": row_warnings}
                for *values, version, identity, row_warnings in zip(
                    *fields.values(),
                    self.versions,
                    self.ids if self.ids is not None else [None] * rows,
                    issues_per_row(warnings, rows),
                    strict=True,
                )
            ]
        columns = self.answers.columns(dict(self.decided))
        if self.ids is not None:
            columns["id"] = self.ids
        if per_row_versions:
            columns["model_version"] = self.versions
        return {
            "model_version": served_version,
            "columns": columns,
            "warnings": {issue: np.flatnonzero(mask) for issue, mask in warnings.items()},
        }

    def log_batch(self, timestamp: str, keys: Mapping[str, Any]) -> LogBatch:
        """The request's prediction-log lines: `keys` (model, version, experiment arm)
        on each, with the rows as sent and their value issues."""
        return LogBatch(
            {"timestamp": timestamp, "request_id": self.request_id, **keys},
            self.ids,
            self.features,
            self.answers.per_row(dict(self.decided)),
            self.issues,
        )
