"""Stage ingest: the demo generator or the user's CSV/Parquet file -> raw Parquet table."""

import logging

from mlops_starter.config import Config
from mlops_starter.data.sources import ingest
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
