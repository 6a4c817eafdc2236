"""Data validation with Great Expectations (GX Core 1.x).

A suite has two parts: checks that follow from params.yaml (target and id not
null, id unique, two classes, positive rate in a band, enough rows) and a
*profile* built once from a trusted table and kept in the repository as a
readable JSON file (columns, types, value ranges, category sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Type names as GX reports them for pandas columns, grouped so that a profile
# says "numeric" rather than pinning int64 when a new file brings int32.
TYPE_FAMILIES: dict[str, list[str]] = {
    "numeric": [
        *(f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)),
        *(f"{p}Int{b}" for p in ("", "U") for b in (8, 16, 32, 64)),
        "float32",
        "float64",
        "Float32",
        "Float64",
    ],
    # run_suite hands GX every text/categorical column as object; GX then checks each value's type.
    "string": ["object", "str"],
    "datetime": [
        "datetime64",
        "datetime64[ns]",
        "datetime64[us]",
        "datetime64[ms]",
        "datetime64[s]",
    ],
    "boolean": ["bool", "boolean"],
}
MAX_CATEGORY_LEVELS = 50
RANGE_MARGIN = 0.25
SAMPLE_VALUES = 5


def _type_family(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def _expectation(kind: str, description: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"description": description}}


def profile_suite(frame: pd.DataFrame, name: str, skip: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """Expectations learnt from a trusted table: what later tables must look like.

    Numeric ranges are widened by a quarter of the observed span, so fresh data
    from the same process passes while a unit change or a sentinel (-999, 1e6) does not.
    """
    expectations = []
    for column in frame.columns:
        series = frame[column]
        family = _type_family(series)
        expectations.append(
            _expectation("expect_column_to_exist", f"column '{column}' is present", column=column)
        )
        expectations.append(
            _expectation(
                "expect_column_values_to_be_in_type_list",
                f"column '{column}' is {family}",
                column=column,
                type_list=TYPE_FAMILIES[family],
            )
        )
        if column in skip:
            continue
        if family == "numeric" and series.notna().any():
            low, high = float(series.min()), float(series.max())
            margin = RANGE_MARGIN * (high - low) or 1.0
            expectations.append(
                _expectation(
                    "expect_column_values_to_be_between",
                    f"column '{column}' lies in [{low - margin:.6g}, {high + margin:.6g}]",
                    column=column,
                    min_value=round(low - margin, 6),
                    max_value=round(high + margin, 6),
                )
            )
        elif family == "string":
            levels = sorted(map(str, series.dropna().unique()))
            if len(levels) <= MAX_CATEGORY_LEVELS:
                expectations.append(
                    _expectation(
                        "expect_column_values_to_be_in_set",
                        f"column '{column}' takes one of {len(levels)} known values",
                        column=column,
                        value_set=levels,
                    )
                )
    return {"name": name, "expectations": expectations, "meta": {"rows_profiled": len(frame)}}


def config_expectations(
    target: str,
    positive_label: str | int | bool,
    id_column: str | None,
    time_column: str | None,
    min_rows: int,
    positive_rate_min: float,
    positive_rate_max: float,
) -> list[dict[str, Any]]:
    """Checks that follow from params.yaml alone, so they hold for any user's table."""
    checks = [
        _expectation(
            "expect_table_row_count_to_be_between", f"at least {min_rows} rows", min_value=min_rows
        ),
        _expectation(
            "expect_column_to_exist", f"target column '{target}' is present", column=target
        ),
        _expectation(
            "expect_column_values_to_not_be_null", f"target '{target}' is never null", column=target
        ),
        _expectation(
            "expect_column_unique_value_count_to_be_between",
            f"target '{target}' has exactly two classes",
            column=target,
            min_value=2,
            max_value=2,
        ),
        # Rate band as two "mostly" checks: share of positives >= min, share of negatives >= 1 - max.
        _expectation(
            "expect_column_values_to_be_in_set",
            f"positive rate of '{target}' is at least {positive_rate_min:g}",
            column=target,
            value_set=[positive_label],
            mostly=positive_rate_min,
        ),
        _expectation(
            "expect_column_values_to_not_be_in_set",
            f"positive rate of '{target}' is at most {positive_rate_max:g}",
            column=target,
            value_set=[positive_label],
            mostly=round(1 - positive_rate_max, 6),
        ),
    ]
    if id_column:
        checks += [
            _expectation(
                "expect_column_to_exist", f"id column '{id_column}' is present", column=id_column
            ),
            _expectation(
                "expect_column_values_to_not_be_null",
                f"id '{id_column}' is never null",
                column=id_column,
            ),
            _expectation(
                "expect_column_values_to_be_unique", f"id '{id_column}' is unique", column=id_column
            ),
        ]
    if time_column:
        checks += [
            _expectation(
                "expect_column_to_exist",
                f"time column '{time_column}' is present",
                column=time_column,
            ),
            _expectation(
                "expect_column_values_to_not_be_null",
                f"time '{time_column}' is never null",
                column=time_column,
            ),
        ]
    return checks


@dataclass
class ValidationReport:
    success: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    @property
    def failures(self) -> list[str]:
        return [check["message"] for check in self.checks if not check["success"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "evaluated": len(self.checks),
            "skipped_for_missing_columns": self.skipped,
            "failed": len(self.failures),
            "failures": self.failures,
            "checks": self.checks,
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _describe_failure(
    expectation: dict[str, Any], result: dict[str, Any], error: str | None
) -> str:
    column = expectation["kwargs"].get("column")
    where = f"column '{column}'" if column else "table"
    described = expectation["meta"].get("description", expectation["type"])
    if expectation["type"] == "expect_column_to_exist":
        detail = "the table has no such column"
    elif error:
        detail = error.splitlines()[0]
    elif "unexpected_count" in result:
        share = result.get("unexpected_percent")
        share_text = f" ({share:.2f}%)" if isinstance(share, (int, float)) else ""
        samples = _json_safe(result.get("partial_unexpected_list", [])[:SAMPLE_VALUES])
        detail = f"{result['unexpected_count']} offending rows{share_text}, e.g. {samples}"
    else:
        detail = f"observed {_json_safe(result.get('observed_value'))}"
    return f"{expectation['type']} failed on {where}: expected {described}; {detail}"


def run_suite(frame: pd.DataFrame, expectations: list[dict[str, Any]]) -> ValidationReport:
    """Run `expectations` (GX JSON form) against `frame` with an in-memory GX context."""
    import great_expectations as gx  # slow import: only the validating stage pays for it
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX 1.x cannot match pandas 3's `str` (or `category`) dtype in a type list; object it can.
    frame = frame.astype({c: object for c in frame.columns if _type_family(frame[c]) == "string"})
    # A check on a missing column only repeats "column missing" with a worse message: skip it.
    runnable = [
        e
        for e in expectations
        if e["type"] == "expect_column_to_exist"
        or e["kwargs"].get("column") in (None, *frame.columns)
    ]
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("table")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
    )
    # GX does not return results in suite order; an index in `meta` pairs them up again.
    indexed = [{**e, "meta": {**e.get("meta", {}), "index": i}} for i, e in enumerate(runnable)]
    suite = context.suites.add(gx.ExpectationSuite(name="checks", expectations=indexed))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="run", data=batch, suite=suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")

    results = {
        int(r.expectation_config.meta["index"]): r for r in outcome.results if r.expectation_config
    }
    checks = []
    for index, expectation in enumerate(runnable):
        result = results[index]
        error = (
            (result.exception_info or {}).get("exception_message")
            if result.exception_info
            else None
        )
        success = bool(result.success) and not error
        check = {
            "expectation": expectation["type"],
            "column": expectation["kwargs"].get("column"),
            "description": expectation["meta"].get("description"),
            "success": success,
            "observed": _json_safe(result.result.get("observed_value")),
            "unexpected_count": result.result.get("unexpected_count"),
            "unexpected_sample": _json_safe(
                result.result.get("partial_unexpected_list", [])[:SAMPLE_VALUES]
            ),
        }
        check["message"] = "" if success else _describe_failure(expectation, result.result, error)
        checks.append(check)
    skipped = len(expectations) - len(runnable)
    return ValidationReport(
        success=all(c["success"] for c in checks), checks=checks, skipped=skipped
    )
