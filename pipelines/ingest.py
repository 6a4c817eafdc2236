"""Stage ingest: the table data.source names (demo, a file, a database) -> raw Parquet table."""

import logging

from mlops_starter.config import Config
from mlops_starter.data.ingest import ingest
from mlops_starter.runner import stage


@stage("ingest")
def main() -> None:
    cfg = Config.from_yaml()
    rows = ingest(cfg.data, cfg.paths.raw)
    logging.getLogger("ingest").info(
        "wrote %d rows from %s to %s", rows, cfg.data.source_label, cfg.paths.raw
    )


if __name__ == "__main__":
    main()
