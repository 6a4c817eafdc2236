"""Stage split: set the test set aside once, then audit the split for leakage."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.errors import LeakageError
from mlops_starter.runner import stage
from mlops_starter.storage import write_json, write_parquet
from mlops_starter.training.split import split_table
from mlops_starter.training.split_streaming import split_streaming


@stage("split")
def main() -> None:
    cfg = Config.from_yaml()
    if cfg.scale.mode != "in_memory":
        split_streaming(cfg)
        return
    outcome = split_table(pd.read_parquet(cfg.paths.raw), cfg)
    write_json(Path(cfg.paths.reports) / "leakage.json", outcome.report)
    if outcome.failed:
        raise LeakageError("; ".join(f"{c.name}: {c.detail}" for c in outcome.failed))
    write_parquet(cfg.paths.train, outcome.train)
    write_parquet(cfg.paths.test, outcome.test)


if __name__ == "__main__":
    main()
