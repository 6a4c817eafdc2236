"""The validate stage: the checks params.yaml implies plus the profiled suite, run on the raw table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.batches import parquet_rows
from mlops_starter.errors import ConfigError
from mlops_starter.storage import read_json
from mlops_starter.tasks import resolve_task
from mlops_starter.validation.run import ValidationReport, run_suite
from mlops_starter.validation.suite import config_expectations
from mlops_starter.validation.validate_streaming import validate_batches


def validate_table(cfg: Config) -> ValidationReport:
    """Every expectation (`table_expectations`) on the raw table at cfg.paths.raw. A table
    that is one batch (scale.mode in_memory) is handed to GX whole, so any expectation
    runs; in batches, GX runs on each and the verdicts are merged (validate_streaming)."""
    expectations = table_expectations(cfg)
    if cfg.scale.mode == "in_memory":
        return run_suite(pd.read_parquet(cfg.paths.raw), expectations)
    # Refused by name past memory, whatever the table's size: an expectation whose merge
    # over batches is not known to be exact.
    return validate_batches(cfg.paths.raw, expectations, cfg.scale.batch_rows)


def table_expectations(cfg: Config) -> list[dict]:
    """The checks params.yaml implies, then the suite file's, if any."""
    checks = cfg.validate_
    task = resolve_task(cfg.data, cfg.paths.raw)
    expectations = config_expectations(
        cfg.data.target,
        cfg.data.id_column,
        cfg.data.time_column,
        checks.min_rows,
        task.expectations(parquet_rows(cfg.paths.raw), checks),
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
