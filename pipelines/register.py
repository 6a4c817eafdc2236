"""Stage register: gate the evaluated model, register it as a version (alias `challenger`),
and write the gate's report. A failed gate does not fail the stage: `mlops gate` does."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.lineage import stamp, training_run
from mlops_starter.registry.register import register
from mlops_starter.runner import stage
from mlops_starter.storage import atomic_path, read_json, write_json


@stage("register")
def main() -> None:
    cfg = Config.from_yaml()
    model_dir, reports = Path(cfg.paths.model_dir), Path(cfg.paths.reports)
    run = training_run(model_dir / "model.skops", cfg.mlflow.experiment)
    test = pd.read_parquet(cfg.paths.test)
    challenger_proba = pd.read_parquet(model_dir / "test_scores.parquet")["probability"]
    metrics = read_json(Path(cfg.paths.metrics) / "test.json")
    model_info = read_json(model_dir / "model.json")
    report, markdown = register(run, model_info, metrics, test, challenger_proba.to_numpy(), cfg)
    write_json(reports / "gate.json", report)
    with atomic_path(reports / "gate.md") as tmp:
        tmp.write_text(markdown)
    write_json(
        model_dir / "registered.json",
        stamp("register", cfg.mlflow.registered_model, model_dir / "model.skops"),
    )


if __name__ == "__main__":
    main()
