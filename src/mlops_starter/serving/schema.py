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
FLOAT32_MAX = float(np.finfo(np.float32).max)  # estimators cast to float32: beyond is an error

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
    # Column name -> the field that holds it (see record_model).
    attribute_of: ClassVar[dict[str, str]] = {}

    @property
    def request_id(self) -> str:
        return str(self.__pydantic_private__["_request_id"])  # type: ignore[index]

    def value(self, column: str) -> Any:
        """This record's value of `column`, by the column's own name."""
        return getattr(self, self.attribute_of[column])


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


def _field(
    spec: dict[str, Any], unseen_category: Policy, out_of_range: Policy, column: str
) -> tuple[Any, Any]:
    """(type, FieldInfo) for one feature, following its profile and the policies; on the
    wire the field is called `column`."""
    constraints: dict[str, Any] = {"description": _describe(spec), "alias": column}
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
        else:
            constraints |= {"ge": -FLOAT32_MAX, "le": FLOAT32_MAX}
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
    logged for joining labels later but never reaches the model).

    On the wire each field is named by its column, whatever the name (`self`, `_id`,
    `model_config`, spaces, dots, unicode): the column is the field's alias, and the
    field itself has a plain name of ours that no pydantic or Python name can clash with.
    """
    fields: dict[str, Any] = {}
    attribute_of: dict[str, str] = {}
    if id_field:
        attribute_of[id_field] = "record_id"
        fields["record_id"] = (
            str | int | None,
            Field(
                None,
                alias=id_field,
                description="passed through to the prediction log, not a feature",
            ),
        )
    for position, (name, spec) in enumerate(profile.items()):
        attribute_of[name] = f"feature_{position}"
        fields[attribute_of[name]] = _field(spec, unseen_category, out_of_range, name)
    model = create_model("FeatureRecord", __base__=RecordBase, **fields)
    model.attribute_of = attribute_of
    return model


def _describe(spec: dict[str, Any]) -> str:
    if spec["kind"] == "category":
        known = ", ".join(spec["categories"])
        text = f"one of: {known}"
    else:
        text = f"{spec['kind']}; training range [{spec['min']:g}, {spec['max']:g}]"
    return text + ("; may be null" if spec["nullable"] else "; required")


def records_to_columns(
    records: list[RecordBase], profile: dict[str, dict[str, Any]]
) -> dict[str, np.ndarray]:
    """A whole adaptive batch of records as scorer `Columns`: numbers as float64 (NaN for
    null), text as an object array (None for null)."""
    columns: dict[str, np.ndarray] = {}
    for column, spec in profile.items():
        values = [record.value(column) for record in records]
        columns[column] = (
            np.array(values, dtype=object)
            if spec["kind"] == "category"
            else np.array(values, dtype=float)  # None becomes NaN
        )
    return columns


def records_as_columns(records: Any) -> dict[str, list[Any]] | None:
    """A parsed `records` list as a columnar body (a field a record lacks is null there),
    for the column-wise check; None when it is not a non-empty list of objects."""
    if not isinstance(records, list) or not records:
        return None
    if not all(type(record) is dict for record in records):
        return None
    fields: dict[str, None] = {}
    for record in records:
        fields.update(dict.fromkeys(record))
    return {field: [record.get(field) for record in records] for field in fields}


def _known(values: np.ndarray, categories: Mapping[str, Any]) -> np.ndarray:
    """Which values are training categories (a hash lookup per value: text and None mix)."""
    return np.fromiter(map(categories.__contains__, values), dtype=bool, count=len(values))


def issue_masks(
    columns: Mapping[str, np.ndarray], profile: dict[str, dict[str, Any]]
) -> dict[str, np.ndarray]:
    """The accepted surprises, vectorised: `field:kind` -> which rows have it (missing
    values, unseen categories, numbers outside the training range). Only kinds that
    occur are returned."""
    masks: dict[str, np.ndarray] = {}
    for column, spec in profile.items():
        values = columns[column]
        if spec["kind"] == "category":
            missing = values == None  # noqa: E711  (elementwise on an object array)
            known = _known(values, spec["categories"])
            flagged = {"missing": missing, "unseen_category": ~missing & ~known}
        else:
            with np.errstate(invalid="ignore"):
                outside = (values < spec["min"]) | (values > spec["max"])
            flagged = {"missing": np.isnan(values), "out_of_range": outside}
        for kind, mask in flagged.items():
            if mask.any():
                masks[f"{column}:{kind}"] = mask
    return masks


def issues_per_row(masks: Mapping[str, np.ndarray], rows: int) -> list[list[str]]:
    """The masks as one list of `field:kind` per row (empty for most rows)."""
    issues: list[list[str]] = [[] for _ in range(rows)]
    for issue, mask in masks.items():
        for row in np.flatnonzero(mask):
            issues[row].append(issue)
    return issues


class ColumnsInvalid(ValueError):
    """A columnar body that breaks the contract; `errors` name column, row and kind."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid value(s)")
        self.errors = errors


_MAX_ERRORS_PER_COLUMN = 10


def _error(loc: list[Any], kind: str, message: str) -> dict[str, Any]:
    return {"loc": loc, "type": kind, "msg": message}


def _typed(
    values: list[Any], allowed: tuple[type, ...], nullable: bool, name: str
) -> list[dict[str, Any]]:
    """Errors for values of a disallowed JSON type (one C-level pass when all are fine)."""
    if set(map(type, values)) <= set(allowed) | ({type(None)} if nullable else set()):
        return []
    errors = []
    for row, value in enumerate(values):
        if value is None and not nullable:
            errors.append(_error(["columns", name, row], "null", "may not be null"))
        elif value is not None and type(value) not in allowed:
            expected = " or ".join(t.__name__ for t in allowed)
            errors.append(_error(["columns", name, row], "wrong_type", f"must be {expected}"))
        if len(errors) == _MAX_ERRORS_PER_COLUMN:
            break
    return errors


def _rows_error(rows: np.ndarray, name: str, kind: str, message: str) -> list[dict[str, Any]]:
    return [_error(["columns", name, int(r)], kind, message) for r in rows[:_MAX_ERRORS_PER_COLUMN]]


def _numeric_errors(
    values: list[Any], array: np.ndarray, spec: dict[str, Any], name: str, out_of_range: Policy
) -> list[dict[str, Any]]:
    """Non-finite numbers, and numbers outside the training range (policy `reject`) or
    outside what an int64 holds (integers, checked exactly where floats can't tell)."""
    found = _rows_error(np.flatnonzero(np.isinf(array)), name, "not_finite", "must be finite")
    if out_of_range == "reject":
        with np.errstate(invalid="ignore"):
            outside = np.flatnonzero((array < spec["min"]) | (array > spec["max"]))
        message = f"must be within the training range [{spec['min']:g}, {spec['max']:g}]"
        return found + _rows_error(outside, name, "out_of_range", message)
    if spec["kind"] == "integer":
        large = np.flatnonzero(np.abs(array) >= 2.0**62)
        outside = np.array([r for r in large if not INT64_MIN <= values[r] <= INT64_MAX], dtype=int)
        return found + _rows_error(outside, name, "out_of_range", "must fit in a 64-bit integer")
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero(np.isfinite(array) & (np.abs(array) > FLOAT32_MAX))
    return found + _rows_error(outside, name, "out_of_range", "must fit in a 32-bit float")


def validate_columns(
    body: Any,
    profile: dict[str, dict[str, Any]],
    id_field: str | None,
    unseen_category: Policy,
    out_of_range: Policy,
    max_records: int,
) -> tuple[dict[str, np.ndarray], list[Any] | None]:
    """The contract of a record, checked per column over the whole body at once:
    `{"columns": {field: [values...]}}` -> (scorer `Columns`, ids or None). Raises
    ColumnsInvalid whose errors name `["columns", field, row]` and the same kinds the
    records path counts (missing_field, unknown_field, null, wrong_type, not_finite,
    unseen_category, out_of_range, no_records, too_many_records)."""
    if not isinstance(body, dict) or not all(isinstance(v, list) for v in body.values()):
        raise ColumnsInvalid(
            [_error(["columns"], "wrong_type", "must map each field to a list of values")]
        )
    errors = [
        _error(["columns", name], "unknown_field", "not a feature of this model")
        for name in body
        if name not in profile and name != id_field
    ]
    errors += [
        _error(["columns", name], "missing_field", "required")
        for name, spec in profile.items()
        if name not in body and not spec["nullable"]
    ]
    lengths = {len(values) for values in body.values()}
    rows = max(lengths, default=0)
    if len(lengths) > 1:
        errors += [
            _error(
                ["columns", name],
                "wrong_length",
                f"has {len(values)} values; the longest column has {rows}",
            )
            for name, values in body.items()
            if len(values) != rows
        ]
    if rows == 0:
        errors.append(_error(["columns"], "no_records", "at least one row is required"))
    elif rows > max_records:
        errors.append(
            _error(
                ["columns"],
                "too_many_records",
                f"{rows} rows; at most {max_records} (serve.max_records)",
            )
        )
    if errors:
        raise ColumnsInvalid(errors)

    columns: dict[str, np.ndarray] = {}
    for name, spec in profile.items():
        values = body.get(name, [None] * rows)
        if spec["kind"] == "category":
            found = _typed(values, (str,), spec["nullable"], name)
            array = np.array(values, dtype=object)
            if not found:
                unseen = ~_known(array, spec["categories"]) & (array != None)  # noqa: E711
                if unseen_category == "reject":
                    found = _rows_error(
                        np.flatnonzero(unseen), name, "unseen_category", "not a training category"
                    )
                else:
                    found = _rows_error(
                        np.flatnonzero(array == ""), name, "wrong_type", "may not be empty"
                    )
        else:
            allowed = (int,) if spec["kind"] == "integer" else (int, float)
            found = _typed(values, allowed, spec["nullable"], name)
            array = np.array(values, dtype=float) if not found else np.empty(0)
            if not found:
                found = _numeric_errors(values, array, spec, name, out_of_range)
        errors += found
        columns[name] = array
    ids = body.get(id_field) if id_field else None
    if ids is not None:
        errors += _typed(ids, (str, int), True, id_field)  # type: ignore[arg-type]
    if errors:
        raise ColumnsInvalid(errors)
    return columns, ids
