"""Stage train: cross-validate the candidates, refit the winner, save it and log it to MLflow."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.runner import stage
from mlops_starter.storage import write_bytes, write_json
from mlops_starter.training.train import train


@stage("train")
def main() -> None:
    cfg = Config.from_yaml()
    if cfg.scale.mode == "streaming":
        from mlops_starter.training.train_streaming import train_streaming

        outcome = train_streaming(cfg)
    elif cfg.scale.mode == "dask":
        from mlops_starter.training.train_dask import train_dask

        outcome = train_dask(cfg)
    else:
        outcome = train(pd.read_parquet(cfg.paths.train), cfg)
    model_dir = Path(cfg.paths.model_dir)
    write_bytes(model_dir / "model.skops", outcome.model_file)
    write_json(model_dir / "model.json", outcome.model_info)
    write_json(Path(cfg.paths.metrics) / "cv.json", outcome.cv_metrics)


if __name__ == "__main__":
    main()
