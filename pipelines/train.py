"""Stage train: cross-validate the candidates, refit the winner, save it and log it to MLflow."""

from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.runner import stage
from mlops_starter.storage import write_bytes, write_json
from mlops_starter.training.train import train_table


@stage("train")
def main() -> None:
    cfg = Config.from_yaml()
    outcome = train_table(cfg)
    model_dir = Path(cfg.paths.model_dir)
    write_bytes(model_dir / "model.skops", outcome.model_file)
    write_json(model_dir / "model.json", outcome.model_info)
    write_json(Path(cfg.paths.metrics) / "cv.json", outcome.cv_metrics)


if __name__ == "__main__":
    main()
