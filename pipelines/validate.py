"""Stage validate: Great Expectations checks on the raw table; any violation stops the DAG."""

import logging
from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.errors import ConfigError, DataValidationError
from mlops_starter.runner import stage
from mlops_starter.storage import read_json, write_json
from mlops_starter.validation import config_expectations, run_suite


@stage("validate")
def main() -> None:
    cfg = Config.from_yaml()
    checks = cfg.validate_
    expectations = config_expectations(
        cfg.data.target,
        cfg.data.positive_label,
        cfg.data.id_column,
        cfg.data.time_column,
        checks.min_rows,
        checks.positive_rate_min,
        checks.positive_rate_max,
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

    report = run_suite(pd.read_parquet(cfg.paths.raw), expectations)
    write_json(
        Path(cfg.paths.reports) / "validation.json", {"suite": checks.suite, **report.to_dict()}
    )
    if not report.success:
        listed = "\n  - ".join(report.failures)
        raise DataValidationError(
            f"{len(report.failures)} of {len(report.checks)} checks failed "
            f"(report: {cfg.paths.reports}/validation.json):\n  - {listed}"
        )


if __name__ == "__main__":
    main()
