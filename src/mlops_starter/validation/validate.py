"""The validate stage: the checks params.yaml implies plus the profiled suite, run on the raw table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.errors import ConfigError
from mlops_starter.storage import read_json
from mlops_starter.validation.run import ValidationReport, run_suite
from mlops_starter.validation.suite import config_expectations


def validate_table(frame: pd.DataFrame, cfg: Config) -> ValidationReport:
    """Every expectation for `frame`: those from params.yaml, then the suite file's, if any."""
    return run_suite(frame, table_expectations(cfg))


def table_expectations(cfg: Config) -> list[dict]:
    """The checks params.yaml implies, then the suite file's, if any."""
    checks = cfg.validate_
    expectations = config_expectations(
        cfg.data.target,
        cfg.data.positive_label,
        cfg.data.id_column,
        cfg.data.time_column,
        checks.min_rows,
        checks.positive_rate_min,
        checks.positive_rate_max,
        cfg.data.positive_vs_rest,
    )
    if checks.suite:
        if not Path(checks.suite).is_file():
            raise ConfigError(
                f"validate.suite: {checks.suite} not found; create it from a trusted table with "
                "`make suite` or set validate.suite: null to run only the checks from params.yaml"
            )
        expectations += read_json(checks.suite)["expectations"]
    else:
        logging.getLogger("validate").warning(
            "validate.suite is null: only the checks from params.yaml run"
        )
    return expectations
