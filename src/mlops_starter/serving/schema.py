"""The served model's input contract, written once: one `FieldRule` per feature, from
the training profile and the policies, and everything that checks or describes input
made from those rules (the records model, the column-wise check, the OpenAPI schema).

Field names, types and nullability come from the training set: a field that was
never missing there is required and non-null. Three kinds of surprise are a matter of
policy (`serve:` in params.yaml):

- `unseen_category`, `out_of_range`: `accept` scores the record (an unseen category
  encodes like a rare one) and warns; `reject` answers 400 naming the record and field;
- `unknown_fields`: `ignore` scores the record without the fields the model does not
  use and warns naming them, so a client that sends a whole row, or a field a retrain
  left out, keeps working; `reject` answers 400.

Either way each issue is counted by field and kind, so monitoring sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, cast

import numpy as np
from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
)

from mlops_starter.config import ServeConfig

Policy = Literal["accept", "reject"]
UnknownFields = Literal["ignore", "reject"]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)  # estimators cast to float32: beyond is an error

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


@dataclass(frozen=True)
class FieldRule:
    """What one feature accepts on the wire: its JSON types, null or not, and either
    the only categories allowed or the bounds a number must keep (and what they are)."""

    column: str
    kind: str  # category | integer | float
    nullable: bool
    categories: tuple[str, ...] | None = None  # set: only these (unseen_category: reject)
    low: float | None = None
    high: float | None = None
    outside: str = ""  # the error message for a number beyond low or high

    @classmethod
    def of(
        cls, column: str, spec: Mapping[str, Any], unseen_category: Policy, out_of_range: Policy
    ) -> FieldRule:
        if spec["kind"] == "category":
            only = tuple(spec["categories"]) if unseen_category == "reject" else None
            return cls(column, "category", bool(spec["nullable"]), categories=only)
        kind = "integer" if spec["kind"] == "integer" else "float"
        if out_of_range == "reject":
            low, high = spec["min"], spec["max"]
            outside = f"must be within the training range [{low:g}, {high:g}]"
        elif kind == "integer":  # what the model's arrays hold
            low, high, outside = INT64_MIN, INT64_MAX, "must fit in a 64-bit integer"
        else:
            low, high, outside = -FLOAT32_MAX, FLOAT32_MAX, "must fit in a 32-bit float"
        return cls(column, kind, bool(spec["nullable"]), low=low, high=high, outside=outside)

    @property
    def json_types(self) -> tuple[type, ...]:
        """An integer may come as 12.0 (JSON has one number type, and a column with
        missing values is float in pandas and numpy); 12.5 is refused."""
        return {"category": (str,), "integer": (int, float), "float": (int, float)}[self.kind]

    def pydantic_field(self, description: str) -> tuple[Any, Any]:
        """(type, FieldInfo) for the records model; on the wire the field is `column`."""
        constraints: dict[str, Any] = {"description": description, "alias": self.column}
        if self.categories is not None:
            python_type: Any = Literal[self.categories]
        elif self.kind == "category":
            python_type, constraints["min_length"] = str, 1
        else:
            python_type = IntegerValue if self.kind == "integer" else float
            constraints |= {"ge": self.low, "le": self.high}
        if self.nullable:
            return python_type | None, Field(None, **constraints)
        return python_type, Field(..., **constraints)

    def errors(self, values: list[Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The column as the scorer takes it, and the errors of its values, each naming
        `["columns", column, row]` and the kind the records model gives the same value."""
        expected = {"category": "text", "integer": "a whole number", "float": "a number"}
        found = _typed(values, self.json_types, self.nullable, self.column, expected[self.kind])
        if self.kind == "category":
            array = np.array(values, dtype=object)
            if found:
                return array, found
            if self.categories is not None:
                unseen = ~_known(array, dict.fromkeys(self.categories)) & (array != None)  # noqa: E711
                return array, self._rows(unseen, "unseen_category", "not a training category")
            return array, self._rows(array == "", "wrong_type", "may not be empty")
        if found:
            return np.empty(0), found
        array = np.array(values, dtype=float)  # None becomes NaN
        found = self._rows(np.isinf(array), "not_finite", "must be finite")
        inexact = np.zeros(len(values), dtype=bool)
        if self.kind == "integer" and float in set(map(type, values)):
            floats = np.fromiter((type(v) is float for v in values), bool, len(values))
            with np.errstate(invalid="ignore"):
                whole = (array == np.floor(array)) & (np.abs(array) < _EXACT_FLOAT_INTEGERS)
            inexact = floats & np.isfinite(array) & ~whole
            message = "must be a whole number (beyond 2**53, with no decimal point)"
            found += self._rows(inexact, "wrong_type", message)
        with np.errstate(invalid="ignore"):
            suspect = np.isfinite(array) & ~inexact & ((array < self.low) | (array > self.high))
            if self.kind == "integer":  # a float64 cannot tell 2**63 - 1 from 2**63
                suspect |= ~inexact & (np.abs(array) >= 2.0**62)
        outside = np.zeros(len(values), dtype=bool)
        for row in np.flatnonzero(suspect):
            outside[row] = not self.low <= values[row] <= self.high
        return array, found + self._rows(outside, "out_of_range", self.outside)

    def _rows(self, mask: np.ndarray, kind: str, message: str) -> list[dict[str, Any]]:
        rows = np.flatnonzero(mask)[:_MAX_ERRORS_PER_COLUMN]
        return [_error(["columns", self.column, int(row)], kind, message) for row in rows]


# Beyond 2**53 a float is not exact: 2**63 + 1 sent as an integer and parsed as a float
# (orjson does, past 64 bits) would pass as 2**63. There, an integer must look like one.
_EXACT_FLOAT_INTEGERS = 2.0**53


def _whole_float_as_int(value: Any) -> Any:
    """12.0 -> 12 before the strict integer check; 12.5, a float beyond 2**53, text and
    booleans stay as they are, for it to refuse."""
    if type(value) is float and value.is_integer() and abs(value) < _EXACT_FLOAT_INTEGERS:
        return int(value)
    return value


WHOLE_FLOAT_AS_INT = BeforeValidator(_whole_float_as_int)
IntegerValue = Annotated[int, WHOLE_FLOAT_AS_INT]


class RecordBase(BaseModel):
    """Base of the generated record model: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    # Set by the server: called with (field, kind) for every refused value.
    on_rejected: ClassVar[Callable[[str, str], None] | None] = None
    # Column name -> the field that holds it (see InputContract.record_model).
    attribute_of: ClassVar[dict[str, str]] = {}

    def value(self, column: str) -> Any:
        """This record's value of `column`, by the column's own name."""
        return getattr(self, self.attribute_of[column])

    def unknown_fields(self) -> list[str]:
        """The fields sent that the model does not use (kept only when ignored)."""
        return list(self.__pydantic_extra__ or ())


class IgnoringRecordBase(RecordBase):
    """Base of the record model under `unknown_fields: ignore`: unknown fields are kept
    aside (pydantic's `extra`), so the answer can name them, and never reach the model."""

    model_config = ConfigDict(extra="allow")


def _count_refusals(records: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Around the validation of a request's records (one Python call per request, so
    the records themselves validate in pydantic-core): report each refused value."""
    try:
        return handler(records)
    except ValidationError as error:
        if RecordBase.on_rejected is not None:
            for detail in error.errors(include_url=False):
                loc = detail["loc"]
                RecordBase.on_rejected(
                    str(loc[1]) if len(loc) > 1 else "records", error_kind(detail)
                )
        raise


@dataclass(frozen=True)
class Checked:
    """A body that meets the contract: scorer `Columns`, the ids (or None), and the
    fields sent that the model does not use (ignored)."""

    columns: dict[str, np.ndarray]
    ids: list[Any] | None
    unknown: list[str]


@dataclass(frozen=True)
class InputContract:
    """The whole input contract of one served version."""

    profile: Mapping[str, Mapping[str, Any]]
    id_field: str | None
    unseen_category: Policy = "accept"
    out_of_range: Policy = "accept"
    unknown_fields: UnknownFields = "ignore"
    max_records: int = 1000

    @cached_property
    def rules(self) -> dict[str, FieldRule]:
        return {
            name: FieldRule.of(name, spec, self.unseen_category, self.out_of_range)
            for name, spec in self.profile.items()
        }

    def record_model(self) -> type[RecordBase]:
        """A pydantic model with one field per feature (plus the optional id, which is
        logged for joining labels later but never reaches the model).

        On the wire each field is named by its column, whatever the name (`self`, `_id`,
        `model_config`, spaces, dots, unicode): the column is the field's alias, and the
        field itself has a plain name of ours that no pydantic or Python name can clash with.
        """
        fields: dict[str, Any] = {}
        attribute_of: dict[str, str] = {}
        if self.id_field:
            attribute_of[self.id_field] = "record_id"
            fields["record_id"] = (
                str | Annotated[int, Ge(INT64_MIN), Le(INT64_MAX), WHOLE_FLOAT_AS_INT] | None,
                Field(
                    None,
                    alias=self.id_field,
                    description="passed through to the prediction log, not a feature",
                ),
            )
        for position, (name, rule) in enumerate(self.rules.items()):
            attribute_of[name] = f"feature_{position}"
            fields[attribute_of[name]] = rule.pydantic_field(_describe(self.profile[name]))
        base = IgnoringRecordBase if self.unknown_fields == "ignore" else RecordBase
        model = cast(type[RecordBase], create_model("FeatureRecord", __base__=base, **fields))
        model.attribute_of = attribute_of
        return model

    def records_type(self, record: type[RecordBase]) -> Any:
        """The type of a request's `records`: 1 to `max_records` records, refusals counted."""
        return Annotated[
            list[record],  # type: ignore[valid-type]
            Field(min_length=1, max_length=self.max_records),
            WrapValidator(_count_refusals),
        ]

    def check_columns(self, body: Any) -> Checked:
        """The contract of a record, checked per column over the whole body at once:
        `{field: [values...]}` -> `Checked`. Raises ColumnsInvalid whose errors name
        `["columns", field, row]` and the same kinds the records path counts
        (missing_field, unknown_field, null, wrong_type, not_finite, unseen_category,
        out_of_range, no_records, too_many_records), or wrong_length."""
        if not isinstance(body, dict) or not all(isinstance(v, list) for v in body.values()):
            raise ColumnsInvalid(
                [_error(["columns"], "wrong_type", "must map each field to a list of values")]
            )
        rules = self.rules
        unknown = [name for name in body if name not in rules and name != self.id_field]
        errors = [
            _error(["columns", name], "unknown_field", "not a feature of this model")
            for name in (unknown if self.unknown_fields == "reject" else [])
        ]
        errors += [
            _error(["columns", name], "missing_field", "required")
            for name, rule in rules.items()
            if name not in body and not rule.nullable
        ]
        used = {name: values for name, values in body.items() if name not in unknown}
        # An ignored column is still a row's field, logged as sent: one value per row.
        errors += _shape_errors(body if self.unknown_fields == "ignore" else used, self.max_records)
        if errors:
            raise ColumnsInvalid(errors)
        rows = len(next(iter(used.values()))) if used else 0
        columns: dict[str, np.ndarray] = {}
        for name, rule in rules.items():
            columns[name], found = rule.errors(body.get(name, [None] * rows))
            errors += found
        ids = body.get(self.id_field) if self.id_field else None
        if ids is not None:
            ids = [_whole_float_as_int(i) for i in ids]
            errors += _id_errors(ids, self.id_field)  # type: ignore[arg-type]
        if errors:
            raise ColumnsInvalid(errors)
        return Checked(columns, ids, unknown)


def contract_of(
    profile: Mapping[str, Mapping[str, Any]], id_field: str | None, settings: ServeConfig
) -> InputContract:
    """The contract a version is served under: its profile and id, `serve:`'s policies."""
    return InputContract(
        profile,
        id_field,
        settings.unseen_category,
        settings.out_of_range,
        settings.unknown_fields,
        settings.max_records,
    )


def breaking_changes(
    served: Mapping[str, Any], candidate: Mapping[str, Any], unknown_fields: UnknownFields
) -> list[str]:
    """What a client of the `served` version would meet as a 400 once `candidate` is
    served in its place, each naming the fields (empty: every request still answered).
    Each argument is a version's serving metadata (`feature_profile`, `id_column`).

    Survived: a feature left out (ignored, unless unknown_fields is reject), a new
    nullable feature, a category or range that widened. Not survived: a new required
    feature, a nullable one become required, a number become a category or back."""
    ours, theirs = served["feature_profile"], candidate["feature_profile"]
    numeric = {"integer", "float", "number"}
    changes = []
    if added := sorted(n for n, s in theirs.items() if n not in ours and not s["nullable"]):
        changes.append(f"new required fields, which today's requests lack: {added}")
    if tightened := sorted(
        n for n, s in theirs.items() if n in ours and ours[n]["nullable"] and not s["nullable"]
    ):
        changes.append(f"fields that may be null today and will be required: {tightened}")
    if retyped := sorted(
        n
        for n in set(ours) & set(theirs)
        if (ours[n]["kind"] in numeric) != (theirs[n]["kind"] in numeric)
    ):
        changes.append(f"fields that change between number and category: {retyped}")
    if unknown_fields == "reject" and (dropped := sorted(set(ours) - set(theirs))):
        changes.append(
            f"fields it does not use, refused under serve.unknown_fields: reject: {dropped}"
        )
    if served.get("id_column") != candidate.get("id_column"):
        changes.append(
            f"the id field changes from {served.get('id_column')!r} to "
            f"{candidate.get('id_column')!r}"
        )
    return changes


def _id_errors(ids: list[Any], name: str) -> list[dict[str, Any]]:
    """Ids are text or 64-bit integers (the prediction log's JSON holds no larger)."""
    found = _typed(ids, (str, int), True, name, "text or an integer")
    large = [row for row, i in enumerate(ids) if type(i) is int and not INT64_MIN <= i <= INT64_MAX]
    message = "must fit in a 64-bit integer"
    return (
        found
        + [_error(["columns", name, row], "out_of_range", message) for row in large][
            :_MAX_ERRORS_PER_COLUMN
        ]
    )


def _shape_errors(body: Mapping[str, list[Any]], max_records: int) -> list[dict[str, Any]]:
    """Columns of unequal length, and too few or too many rows."""
    lengths = {len(values) for values in body.values()}
    rows = max(lengths, default=0)
    errors = []
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
    return errors


def _describe(spec: Mapping[str, Any]) -> str:
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
    values: list[Any], allowed: tuple[type, ...], nullable: bool, name: str, expected: str
) -> list[dict[str, Any]]:
    """Errors for values of a disallowed JSON type (one C-level pass when all are fine)."""
    if set(map(type, values)) <= set(allowed) | ({type(None)} if nullable else set()):
        return []
    errors = []
    for row, value in enumerate(values):
        if value is None and not nullable:
            errors.append(_error(["columns", name, row], "null", "may not be null"))
        elif value is not None and type(value) not in allowed:
            errors.append(_error(["columns", name, row], "wrong_type", f"must be {expected}"))
        if len(errors) == _MAX_ERRORS_PER_COLUMN:
            break
    return errors
