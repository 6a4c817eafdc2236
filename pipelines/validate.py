"""Stage validate: Great Expectations checks on the raw table; any violation stops the DAG."""

from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.errors import DataValidationError
from mlops_starter.runner import stage
from mlops_starter.storage import write_json
from mlops_starter.validation.validate import validate_table


@stage("validate")
def main() -> None:
    cfg = Config.from_yaml()
    report = validate_table(cfg)
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
