"""Stage split: set the test set aside once, then audit the split for leakage."""

from pathlib import Path

import pandas as pd

from mlops_starter.config import Config
from mlops_starter.data import FeatureSchema, encode_target
from mlops_starter.errors import LeakageError
from mlops_starter.runner import stage
from mlops_starter.splitting import audit_leakage, split_holdout
from mlops_starter.storage import write_json, write_parquet


@stage("split")
def main() -> None:
    cfg = Config.from_yaml()
    frame = pd.read_parquet(cfg.paths.raw)
    if cfg.data.time_column:
        # Time order makes the time split, and time-series CV later, meaningful.
        frame = frame.sort_values(cfg.data.time_column, kind="stable").reset_index(drop=True)
    y = encode_target(frame[cfg.data.target], cfg.data.positive_label)
    train, test = split_holdout(
        frame,
        y,
        cfg.split.strategy,
        cfg.split.test_size,
        cfg.split.seed,
        cfg.data.time_column,
        cfg.split.group_column,
    )
    y_train = encode_target(train[cfg.data.target], cfg.data.positive_label)
    y_test = encode_target(test[cfg.data.target], cfg.data.positive_label)
    schema = FeatureSchema.infer(train, cfg.non_feature_columns, cfg.data.categorical_columns)
    checks = audit_leakage(
        train,
        test,
        y_train,
        schema.columns,
        cfg.data.id_column,
        cfg.data.time_column,
        check_time_order=cfg.split.strategy == "time",
        max_single_feature_auc=cfg.leakage.max_single_feature_auc,
        allowed_features=cfg.leakage.allowed_features,
        max_shared_feature_rows=cfg.leakage.max_shared_feature_rows,
    )
    failed = [c for c in checks if not c.passed]
    write_json(
        Path(cfg.paths.reports) / "leakage.json",
        {
            "passed": not failed,
            "strategy": cfg.split.strategy,
            "rows": {"train": len(train), "test": len(test)},
            "positive_rate": {
                "train": round(float(y_train.mean()), 5),
                "test": round(float(y_test.mean()), 5),
            },
            "checks": [c.to_dict() for c in checks],
        },
    )
    if failed:
        raise LeakageError("; ".join(f"{c.name}: {c.detail}" for c in failed))
    write_parquet(cfg.paths.train, train)
    write_parquet(cfg.paths.test, test)


if __name__ == "__main__":
    main()
