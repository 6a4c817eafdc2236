"""Data validation with Great Expectations (GX Core 1.x).

A suite has two parts: checks that follow from params.yaml (target and id not
null, id unique, enough rows, and the task's own: a positive rate in a band, rows
per class, or a finite number in range) and a
*profile* built once from a trusted table and kept in the repository as a
readable JSON file (columns, types, value ranges, category sets).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_starter.tasks.base import expectation

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
# A column may be missing up to this much more often than in the trusted table (absolute),
# plus half its observed rate again: noise passes, a feed that starts dropping values does not.
MISSING_RATE_SLACK = 0.01


def type_family(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def profile_suite(frame: pd.DataFrame, name: str, skip: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """Expectations learnt from a trusted table: what later tables must look like.

    Numeric ranges are widened by a quarter of the observed span, so fresh data
    from the same process passes while a unit change or a sentinel (-999, 1e6) does not.
    Each column's missing rate is learnt too: a later table may not lose values well
    beyond it.
    """
    expectations = []
    for column in frame.columns:
        series = frame[column]
        family = type_family(series)
        expectations.append(
            expectation("expect_column_to_exist", f"column '{column}' is present", column=column)
        )
        expectations.append(
            expectation(
                "expect_column_values_to_be_in_type_list",
                f"column '{column}' is {family}",
                column=column,
                type_list=TYPE_FAMILIES[family],
            )
        )
        if column in skip:
            continue
        observed = float(series.isna().mean())
        allowed = min(1.0, observed * 1.5 + MISSING_RATE_SLACK)
        if allowed < 1.0:
            expectations.append(
                expectation(
                    "expect_column_values_to_not_be_null",
                    f"column '{column}' is missing in at most {allowed:.1%} of rows "
                    f"(trusted table: {observed:.1%})",
                    column=column,
                    mostly=round(1.0 - allowed, 6),
                )
            )
        if family == "numeric" and series.notna().any():
            low, high = float(series.min()), float(series.max())
            margin = RANGE_MARGIN * (high - low) or 1.0
            expectations.append(
                expectation(
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
                    expectation(
                        "expect_column_values_to_be_in_set",
                        f"column '{column}' takes one of {len(levels)} known values",
                        column=column,
                        value_set=levels,
                    )
                )
    return {"name": name, "expectations": expectations, "meta": {"rows_profiled": len(frame)}}


def config_expectations(
    target: str,
    id_column: str | None,
    time_column: str | None,
    min_rows: int,
    target_checks: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Checks that follow from params.yaml alone, so they hold for any user's table;
    `target_checks` are the task's own (classes, rates or range: tasks/)."""
    checks = [
        expectation(
            "expect_table_row_count_to_be_between",
            f"at least {min_rows} rows",
            "validate.min_rows",
            min_value=min_rows,
        ),
        expectation(
            "expect_column_to_exist",
            f"target column '{target}' is present",
            "data.target",
            column=target,
        ),
        expectation(
            "expect_column_values_to_not_be_null",
            f"target '{target}' is never null",
            "data.target",
            column=target,
        ),
        *target_checks,
    ]
    if id_column:
        checks += [
            expectation(
                "expect_column_to_exist",
                f"id column '{id_column}' is present",
                "data.id_column",
                column=id_column,
            ),
            expectation(
                "expect_column_values_to_not_be_null",
                f"id '{id_column}' is never null",
                "data.id_column",
                column=id_column,
            ),
            expectation(
                "expect_column_values_to_be_unique",
                f"id '{id_column}' is unique",
                "data.id_column",
                column=id_column,
            ),
        ]
    if time_column:
        checks += [
            expectation(
                "expect_column_to_exist",
                f"time column '{time_column}' is present",
                "data.time_column",
                column=time_column,
            ),
            expectation(
                "expect_column_values_to_not_be_null",
                f"time '{time_column}' is never null",
                "data.time_column",
                column=time_column,
            ),
        ]
    return checks
