"""The served model's input contract, generated from the training profile.

Field names, types and nullability come from the training set: a field that was
never missing there is required and non-null. Two kinds of surprise are a matter of
policy (`serve.unseen_category`, `serve.out_of_range` in params.yaml):

- `accept`: the record is scored (an unseen category encodes like a rare one), and
  the prediction carries a warning;
- `reject`: the request gets 400 naming the record and field.

Either way each issue is counted by field and kind, so monitoring sees it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
)

Policy = Literal["accept", "reject"]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Set per request by the server's middleware; read when a record is validated, so a
# record keeps its request id through adaptive batching.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# pydantic error types -> the kinds counted in metrics and written to the log.
_ERROR_KINDS = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "literal_error": "unseen_category",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "not_finite",
    "too_long": "too_many_records",
    "too_short": "no_records",
}


def error_kind(error: Mapping[str, Any]) -> str:
    """Name a pydantic error the way the metrics do: a null where none is allowed is
    `null`, a wrong JSON type is `wrong_type`."""
    if error["type"] in _ERROR_KINDS:
        return _ERROR_KINDS[error["type"]]
    if error.get("input", "") is None:
        return "null"
    return "wrong_type"


class RecordBase(BaseModel):
    """Base of the generated record model: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    _request_id: str = PrivateAttr(default="")
    # Set by the server: called with (field, kind) for every refused value.
    on_rejected: ClassVar[Callable[[str, str], None] | None] = None

    @property
    def request_id(self) -> str:
        return str(self.__pydantic_private__["_request_id"])  # type: ignore[index]


def _count_and_stamp(records: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Around the validation of a request's records (one Python call per request, so
    the records themselves validate in pydantic-core): report each refused value,
    and stamp accepted records with the request id."""
    try:
        validated = handler(records)
    except ValidationError as error:
        if RecordBase.on_rejected is not None:
            for detail in error.errors(include_url=False):
                loc = detail["loc"]
                RecordBase.on_rejected(
                    str(loc[1]) if len(loc) > 1 else "records", error_kind(detail)
                )
        raise
    request_id = REQUEST_ID.get()
    for record in validated:  # straight into pydantic's private dict: this runs per record
        record.__pydantic_private__["_request_id"] = request_id
    return validated


def records_type(record: type[RecordBase], max_records: int) -> Any:
    """The type of a request's `records`: 1 to `max_records` records, counted and stamped."""
    return Annotated[
        list[record],  # type: ignore[valid-type]
        Field(min_length=1, max_length=max_records),
        WrapValidator(_count_and_stamp),
    ]


def _field(spec: dict[str, Any], unseen_category: Policy, out_of_range: Policy) -> tuple[Any, Any]:
    """(type, FieldInfo) for one feature, following its profile and the policies."""
    constraints: dict[str, Any] = {"description": _describe(spec)}
    if spec["kind"] == "category":
        if unseen_category == "reject":
            python_type: Any = Literal[tuple(spec["categories"])]
        else:
            python_type, constraints["min_length"] = str, 1
    else:
        python_type = int if spec["kind"] == "integer" else float
        if out_of_range == "reject":
            constraints |= {"ge": spec["min"], "le": spec["max"]}
        elif spec["kind"] == "integer":
            constraints |= {"ge": INT64_MIN, "le": INT64_MAX}  # what the model's arrays hold
    if spec["nullable"]:
        return python_type | None, Field(None, **constraints)
    return python_type, Field(..., **constraints)


def record_model(
    profile: dict[str, dict[str, Any]],
    id_field: str | None,
    unseen_category: Policy,
    out_of_range: Policy,
) -> type[RecordBase]:
    """A pydantic model with one field per feature (plus the optional id, which is
    logged for joining labels later but never reaches the model)."""
    fields: dict[str, Any] = {}
    if id_field:
        fields[id_field] = (
            str | int | None,
            Field(None, description="passed through to the prediction log, not a feature"),
        )
    for name, spec in profile.items():
        fields[name] = _field(spec, unseen_category, out_of_range)
    return create_model("FeatureRecord", __base__=RecordBase, **fields)


def _describe(spec: dict[str, Any]) -> str:
    if spec["kind"] == "category":
        known = ", ".join(spec["categories"])
        text = f"one of: {known}"
    else:
        text = f"{spec['kind']}; training range [{spec['min']:g}, {spec['max']:g}]"
    return text + ("; may be null" if spec["nullable"] else "; required")


def records_to_frame(records: list[RecordBase], profile: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One DataFrame for a whole adaptive batch, with the training set's column order
    and dtypes; an integer column holding a null becomes float, as in training."""
    data: dict[str, Any] = {}
    for column, spec in profile.items():
        values = [getattr(record, column) for record in records]
        if spec["kind"] == "category":
            data[column] = pd.Series(values, dtype="str")
        elif spec["kind"] == "integer" and None not in values:
            data[column] = np.array(values, dtype=np.int64)
        else:
            data[column] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return pd.DataFrame(data)


def quality_issues(frame: pd.DataFrame, profile: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Per row, the accepted surprises: unseen categories, values outside the training
    range, nulls. Each issue reads `field:kind`."""
    issues: list[list[str]] = [[] for _ in range(len(frame))]
    for column, spec in profile.items():
        values = frame[column]
        flagged = {"missing": values.isna().to_numpy()}
        if spec["kind"] == "category":
            flagged["unseen_category"] = (
                values.notna() & ~values.isin(list(spec["categories"]))
            ).to_numpy()
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            flagged["out_of_range"] = ((numbers < spec["min"]) | (numbers > spec["max"])).to_numpy()
        for kind, mask in flagged.items():
            for row in np.flatnonzero(mask):
                issues[row].append(f"{column}:{kind}")
    return issues
