"""Stage evaluate: score the refitted winner once on the untouched test set;
write DVC metrics and plots and add the same to the training run in MLflow."""

import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data import encode_target
from mlops_starter.evaluation import classification_metrics, curve_tables
from mlops_starter.models import load_model
from mlops_starter.profile import score_profile
from mlops_starter.runner import stage
from mlops_starter.storage import file_md5, read_json, write_csv, write_json


@stage("evaluate")
def main() -> None:
    cfg = Config.from_yaml()
    info = read_json(Path(cfg.paths.model_dir) / "model.json")
    model = load_model(Path(cfg.paths.model_dir) / "model.skops")
    test = pd.read_parquet(cfg.paths.test)
    features = info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    y = encode_target(test[cfg.data.target], cfg.data.positive_label).to_numpy()
    proba = model.predict_proba(test[features])[:, 1]

    metrics = {
        "model": info["winner"],
        "rows": len(test),
        **classification_metrics(y, proba, info["threshold"]),
    }
    write_json(Path(cfg.paths.metrics) / "test.json", metrics)
    tables = curve_tables(y, proba, info["threshold"])
    for name, table in tables.items():
        write_csv(Path(cfg.paths.plots) / f"{name}.csv", table)

    with mlflow.start_run(run_id=info["mlflow_run_id"]):
        mlflow.set_tag("data.test_md5", file_md5(cfg.paths.test))
        mlflow.log_metrics(
            {f"test_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        )
        with tempfile.TemporaryDirectory() as scratch:
            for name, table in tables.items():
                table.to_csv(Path(scratch) / f"{name}.csv", index=False)
            mlflow.log_artifacts(scratch, artifact_path="test_plots")
        mlflow.log_dict(metrics, "test_metrics.json")
        # Monitoring compares served scores with these (prediction drift).
        mlflow.log_dict(score_profile(proba, info["threshold"]), "reference_scores.json")


if __name__ == "__main__":
    main()
