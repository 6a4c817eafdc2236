"""Stage validate: Great Expectations checks on the raw table; any violation stops the DAG."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.errors import DataValidationError
from mlops_starter.runner import stage
from mlops_starter.storage import write_json
from mlops_starter.validation.validate import table_expectations, validate_table
from mlops_starter.validation.validate_streaming import validate_batches


@stage("validate")
def main() -> None:
    cfg = Config.from_yaml()
    if cfg.scale.mode == "in_memory":
        report = validate_table(pd.read_parquet(cfg.paths.raw), cfg)
    else:
        report = validate_batches(cfg.paths.raw, table_expectations(cfg), cfg.scale.batch_rows)
    path = Path(cfg.paths.reports) / "validation.json"
    write_json(path, {"suite": cfg.validate_.suite, **report.to_dict()})
    if not report.success:
        listed = "\n  - ".join(report.failures)
        raise DataValidationError(
            f"{len(report.failures)} of {len(report.checks)} checks failed "
            f"(report: {path}):\n  - {listed}"
        )


if __name__ == "__main__":
    main()
