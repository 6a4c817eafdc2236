"""Stage evaluate: score the refitted winner once on the untouched test set;
write DVC metrics, plots, slice metrics and the test scores, and add the same to the
training run in MLflow."""

from pathlib import Path

from mlops_starter.config import Config
from mlops_starter.evaluation.evaluate import evaluate
from mlops_starter.lineage import training_run
from mlops_starter.runner import stage
from mlops_starter.storage import load_model, read_json, write_json, write_parquet, write_tables


@stage("evaluate")
def main() -> None:
    cfg = Config.from_yaml()
    model_dir = Path(cfg.paths.model_dir)
    run = training_run(model_dir / "model.skops", cfg.mlflow.experiment)
    model = load_model(model_dir / "model.skops")
    info = read_json(model_dir / "model.json")
    result = evaluate(model, info, cfg, run.info.run_id)
    write_json(Path(cfg.paths.metrics) / "test.json", result.metrics)
    write_tables(cfg.paths.plots, result.tables)
    write_parquet(model_dir / "test_scores.parquet", result.scores)
    write_json(Path(cfg.paths.reports) / "slices.json", result.slices)


if __name__ == "__main__":
    main()
