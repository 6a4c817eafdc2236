"""Stage train: cross-validate every candidate on the training set, pick the winner
by mean CV score, refit it on all training rows, save it and log it to MLflow."""

import logging
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.base import clone

from mlops_starter import tracking
from mlops_starter.config import Config
from mlops_starter.data import FeatureSchema, encode_target
from mlops_starter.models import SKOPS_TRUSTED_TYPES, build_pipeline, save_model
from mlops_starter.profile import feature_profile
from mlops_starter.runner import stage
from mlops_starter.storage import file_md5, write_json
from mlops_starter.training import cv_folds, run_candidates, select_winner


@stage("train")
def main() -> None:
    cfg = Config.from_yaml()
    settings = cfg.train
    train = pd.read_parquet(cfg.paths.train)
    y = encode_target(train[cfg.data.target], cfg.data.positive_label)
    schema = FeatureSchema.infer(train, cfg.non_feature_columns, cfg.data.categorical_columns)
    X = train[schema.columns]
    groups = train[cfg.split.group_column] if cfg.split.group_column else None
    folds = cv_folds(y, settings.cv_folds, settings.seed, cfg.split.strategy, groups)
    candidates = {
        name: (
            params.model_dump(),
            build_pipeline(
                name,
                params.model_dump(),
                schema,
                settings.resampling,
                settings.seed,
                settings.n_jobs,
            ),
        )
        for name, params in settings.candidates.enabled().items()
    }
    lineage = {
        **tracking.git_state(),
        **tracking.library_versions(),
        "data.train_md5": file_md5(cfg.paths.train),
        "data.raw_md5": file_md5(cfg.paths.raw),
        "data.source": cfg.data.source,
    }
    with tracking.start_run(cfg.mlflow.experiment, "train", lineage) as run:
        shared = {
            "cv_folds": settings.cv_folds,
            "resampling": settings.resampling,
            "split": cfg.split.strategy,
        }
        results = run_candidates(candidates, X, y, folds, settings.threshold_fbeta)
        for result in results:
            tracking.log_candidate(result, shared)
        winner = select_winner(results, settings.primary_metric)
        logging.getLogger("train").info(
            "winner %s: mean CV %s %.4f",
            winner.name,
            settings.primary_metric,
            winner.mean(settings.primary_metric),
        )
        model = clone(candidates[winner.name][1]).fit(X, y)
        save_model(model, Path(cfg.paths.model_dir) / "model.skops")
        mlflow.set_tags({"winner": winner.name, "primary_metric": settings.primary_metric})
        mlflow.log_params(
            {**shared, "winner": winner.name, "threshold_fbeta": settings.threshold_fbeta}
        )
        mlflow.log_metrics(winner.summary())
        serving = {
            "threshold": winner.threshold,
            "positive_label": cfg.data.positive_label,
            "id_column": cfg.data.id_column,
            "feature_profile": feature_profile(X, schema),
            "data_train_md5": lineage["data.train_md5"],
        }
        model_uri = tracking.log_model(model, X.head(5), SKOPS_TRUSTED_TYPES, serving)

    write_json(
        Path(cfg.paths.model_dir) / "model.json",
        {
            "winner": winner.name,
            "params": {k: v for k, v in winner.params.items() if k != "enabled"},
            "threshold": winner.threshold,
            "feature_schema": schema.to_dict(),
            "mlflow_run_id": run.info.run_id,
            "mlflow_model_uri": model_uri,
            "data_train_md5": lineage["data.train_md5"],
        },
    )
    write_json(
        Path(cfg.paths.metrics) / "cv.json",
        {
            "winner": winner.name,
            "primary_metric": settings.primary_metric,
            **winner.summary(),
            "candidates": {
                r.name: {"cv_roc_auc": r.mean("roc_auc"), "cv_pr_auc": r.mean("pr_auc")}
                for r in results
            },
        },
    )


if __name__ == "__main__":
    main()
