"""Stage register: gate the evaluated model, register it as a version (alias `challenger`),
and write the gate's report. A failed gate does not fail the stage: `mlops gate` does."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.schema import FeatureSchema
from mlops_starter.registry.register import register
from mlops_starter.runner import stage
from mlops_starter.storage import atomic_path, load_model, read_json, write_json


@stage("register")
def main() -> None:
    cfg = Config.from_yaml()
    model_dir = Path(cfg.paths.model_dir)
    model_info = read_json(model_dir / "model.json")
    test = pd.read_parquet(cfg.paths.test)
    model = load_model(model_dir / "model.skops")
    challenger_proba = model.predict_proba(
        test[FeatureSchema(**model_info["feature_schema"]).columns]
    )[:, 1]
    metrics = read_json(Path(cfg.paths.metrics) / "test.json")
    report, markdown = register(model_info, metrics, test, challenger_proba, cfg)
    reports = Path(cfg.paths.reports)
    write_json(reports / "gate.json", report)
    with atomic_path(reports / "gate.md") as tmp:
        tmp.write_text(markdown)


if __name__ == "__main__":
    main()
