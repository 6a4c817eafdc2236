"""The evaluate stage: score the refitted winner once on the untouched test set, and add
the metrics, curves and score profile to the training run in MLflow."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data.profile import score_profile
from mlops_starter.data.schema import FeatureSchema, target_of
from mlops_starter.evaluation.metrics import (
    calibration_metrics,
    classification_metrics,
    curve_tables,
    reliability_table,
)
from mlops_starter.storage import file_md5


@dataclass(frozen=True)
class Evaluation:
    """What the evaluate stage writes: metrics/test.json, one plot table per curve, and
    each test row's score (the register stage compares them with the champion's)."""

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame


def evaluate(
    model: Any, model_info: dict[str, Any], test: pd.DataFrame, cfg: Config, run_id: str
) -> Evaluation:
    """Score the test set once and add the results to the training run `run_id`."""
    y = target_of(test, cfg.data).to_numpy()
    proba = model.predict_proba(test[FeatureSchema(**model_info["feature_schema"]).columns])[:, 1]
    scores = pd.DataFrame({"actual": y, "probability": proba})
    if cfg.data.id_column:
        scores.insert(0, cfg.data.id_column, test[cfg.data.id_column].to_numpy())
    threshold = model_info["threshold"]
    metrics = {
        "model": model_info["winner"],
        "rows": len(test),
        "positive_rate": float(y.mean()),
        **classification_metrics(y, proba, threshold),
        **calibration_metrics(y, proba, model_info["train_positive_rate"]),
    }
    tables = curve_tables(y, proba, threshold) | {"calibration": reliability_table(y, proba)}
    with mlflow.start_run(run_id=run_id):
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
        mlflow.log_dict(score_profile(proba, threshold), "reference_scores.json")
    return Evaluation(metrics, tables, scores)
