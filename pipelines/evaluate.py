"""Stage evaluate: score the refitted winner once on the untouched test set;
write DVC metrics and plots and add the same to the training run in MLflow."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.evaluation.evaluate import evaluate
from mlops_starter.runner import stage
from mlops_starter.storage import load_model, read_json, write_csv, write_json


@stage("evaluate")
def main() -> None:
    cfg = Config.from_yaml()
    model_dir = Path(cfg.paths.model_dir)
    model_info = read_json(model_dir / "model.json")
    model = load_model(model_dir / "model.skops")
    result = evaluate(model, model_info, pd.read_parquet(cfg.paths.test), cfg)
    write_json(Path(cfg.paths.metrics) / "test.json", result.metrics)
    for name, table in result.tables.items():
        write_csv(Path(cfg.paths.plots) / f"{name}.csv", table)


if __name__ == "__main__":
    main()
