"""Stage ingest: the demo generator or the user's CSV/Parquet file -> raw Parquet table."""

import logging

from mlops_starter.config import Config
from mlops_starter.data import generate_demo_table, iter_table_batches, write_batches_to_parquet
from mlops_starter.runner import stage


@stage("ingest")
def main() -> None:
    cfg = Config.from_yaml()
    data = cfg.data
    if data.is_demo:
        batches = iter(
            [generate_demo_table(data.demo.n_rows, data.demo.seed, data.demo.positive_rate)]
        )
    else:
        batches = iter_table_batches(data.source, data.read_chunk_rows)
    required = [c for c in (data.target, data.id_column, data.time_column) if c]
    rows = write_batches_to_parquet(
        batches, cfg.paths.raw, required, data.drop_columns, data.time_column
    )
    logging.getLogger("ingest").info(
        "wrote %d rows from %s to %s", rows, data.source, cfg.paths.raw
    )


if __name__ == "__main__":
    main()
