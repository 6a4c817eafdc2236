"""Running a suite against a table with Great Expectations (GX Core 1.x, in memory),
and a report whose every failure names the column and shows offending values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_starter.validation.suite import type_family

SAMPLE_VALUES = 5


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
    setting = expectation["meta"].get("setting")
    source = (
        f"set by {setting} in params.yaml"
        if setting
        else "from the suite file in validate.suite; `make suite` rebuilds it"
    )
    return f"{expectation['type']} failed on {where}: expected {described} ({source}); {detail}"


def run_suite(frame: pd.DataFrame, expectations: list[dict[str, Any]]) -> ValidationReport:
    """Run `expectations` (GX JSON form) against `frame` with an in-memory GX context."""
    # A check on a missing column only repeats "column missing" with a worse message: skip it.
    runnable = runnable_on(expectations, list(frame.columns))
    results = SuiteRunner(runnable).run(frame)
    checks = [make_check(e, *results[i]) for i, e in enumerate(runnable)]
    return ValidationReport(
        success=all(c["success"] for c in checks),
        checks=checks,
        skipped=len(expectations) - len(runnable),
    )


def runnable_on(expectations: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """The expectations whose column exists (or that check for it, or for the table)."""
    return [
        e
        for e in expectations
        if e["type"] == "expect_column_to_exist" or e["kwargs"].get("column") in (None, *columns)
    ]


RawResult = tuple[bool, dict[str, Any], str | None]  # GX's success, result and error message


class SuiteRunner:
    """One GX context and suite, run on as many frames (whole tables or batches) as given."""

    def __init__(self, expectations: list[dict[str, Any]]) -> None:
        import great_expectations as gx  # slow import: only the validating stage pays for it
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch = (
            context.data_sources.add_pandas("table")
            .add_dataframe_asset("table")
            .add_batch_definition_whole_dataframe("whole")
        )
        # GX does not return results in suite order; an index in `meta` pairs them up again.
        indexed = [
            {**e, "meta": {**e.get("meta", {}), "index": i}} for i, e in enumerate(expectations)
        ]
        suite = context.suites.add(gx.ExpectationSuite(name="checks", expectations=indexed))
        self.definition = context.validation_definitions.add(
            gx.ValidationDefinition(name="run", data=batch, suite=suite)
        )

    def run(self, frame: pd.DataFrame) -> dict[int, RawResult]:
        # GX 1.x cannot match pandas 3's `str` (or `category`) dtype in a type list; object it can.
        frame = frame.astype(
            {c: object for c in frame.columns if type_family(frame[c]) == "string"}
        )
        outcome = self.definition.run(
            batch_parameters={"dataframe": frame}, result_format="SUMMARY"
        )
        raw = {}
        for result in outcome.results:
            if not result.expectation_config:
                continue
            error = (
                (result.exception_info or {}).get("exception_message")
                if result.exception_info
                else None
            )
            raw[int(result.expectation_config.meta["index"])] = (
                bool(result.success),
                dict(result.result),
                error,
            )
        return raw


def make_check(
    expectation: dict[str, Any], success: bool, result: dict[str, Any], error: str | None
) -> dict[str, Any]:
    """One entry of the report: the verdict, what was observed and, on failure, a message
    naming the column with sample offending values."""
    success = success and not error
    check = {
        "expectation": expectation["type"],
        "column": expectation["kwargs"].get("column"),
        "description": expectation["meta"].get("description"),
        "success": success,
        "observed": _json_safe(result.get("observed_value")),
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_sample": _json_safe(result.get("partial_unexpected_list", [])[:SAMPLE_VALUES]),
    }
    check["message"] = "" if success else _describe_failure(expectation, result, error)
    return check
