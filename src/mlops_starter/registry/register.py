"""The register stage: run the gate (absolute bars + paired bootstrap against the champion),
register the model as a new version tagged with its lineage and gate result, point
`challenger` at it, and make it champion if it is the first to pass (configurable).

The stage succeeds when the gate fails, so its report stays for inspection;
`mlops gate` is what exits non-zero in CI. Every version gets a model card.
"""

from __future__ import annotations

import getpass
import logging
import os
from functools import partial
from typing import Any

import numpy as np
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion

from mlops_starter.config import Config
from mlops_starter.data.batches import iter_parquet, parquet_columns, row_keys
from mlops_starter.lineage import MODEL_URI_TAG, trained_rows
from mlops_starter.registry.gate import (
    ComparedRows,
    GateCheck,
    brier_skill_check,
    champion_check,
    markdown_summary,
    paired_bootstrap,
    paired_bootstrap_task,
    threshold_checks,
    unfair_comparison_check,
    unseen_rows,
    worst_slice_check,
)
from mlops_starter.registry.model_card import CardInputs, model_card
from mlops_starter.registry.model_registry import GATE_TAG, Registry
from mlops_starter.rounding import round_sig
from mlops_starter.storage import LoggedModel
from mlops_starter.tasks import Binary, Task


def compare_with_champion(
    cfg: Config,
    registry: Registry,
    champion: ModelVersion,
    task: Task,
    y: np.ndarray,
    challenger_proba: np.ndarray,
) -> tuple[GateCheck, dict[str, Any] | None]:
    """Score the champion on the same test rows, read in batches of `scale.batch_rows`
    (only the columns it needs), rounded as evaluate rounds the challenger's, and
    bootstrap the difference in the task's compare metric on the rows the champion never
    trained on. Returns the check and what the comparison rested on (None when the
    champion could not score at all)."""
    metric, settings = task.compared(cfg.gate.compare_metric), cfg.gate
    model = LoggedModel.load(f"models:/{registry.name}/{champion.version}")
    columns = model.info.get_input_schema().input_names()
    test_columns = set(parquet_columns(cfg.paths.test))
    if missing := sorted(set(columns) - test_columns):
        return GateCheck(
            f"not_worse_than_champion_{metric}",
            None,
            "champion can score the test set",
            False,
            f"champion version {champion.version} needs columns missing from the test set: {missing}",
        ), None
    champion_proba = round_sig(
        np.concatenate(
            [
                task.predict_raw(model.pipeline, batch)
                for batch in iter_parquet(cfg.paths.test, cfg.scale.batch_rows, columns)
            ]
        )
    )
    if champion_proba.shape != challenger_proba.shape:
        return GateCheck(
            f"not_worse_than_champion_{metric}",
            None,
            f"champion answers a {task.name} task",
            False,
            f"champion version {champion.version} answers {champion_proba.shape[1:] or 'one value'}"
            f" per row, this {task.name} model {challenger_proba.shape[1:] or 'one value'}: "
            "another task's champion cannot be compared (register under another "
            "mlflow.registered_model)",
        ), None
    recorded = trained_rows(str(champion.run_id))
    if recorded is not None and set(recorded[0]) <= test_columns:
        key_columns, trained_keys = recorded
        unseen = unseen_rows(
            row_keys(cfg.paths.test, key_columns, cfg.scale.batch_rows), trained_keys
        )
    else:
        recorded, unseen = None, np.ones(len(y), dtype=bool)
    counted = {"binary": "positives", "multiclass": "rows of the rarest class"}
    rows = ComparedRows(
        str(champion.version),
        len(y),
        int(unseen.sum()),
        task.rarest_rows(y[unseen]),
        recorded is not None,
        counted.get(task.name, "rows"),
    )
    comparison: dict[str, Any] = rows.to_dict() | {
        "metric": metric,
        "champion_test_score": _float_tag(champion.tags.get(f"test.{metric}")),
    }
    if (
        rows.unseen_rows < settings.min_unseen_rows
        or rows.unseen_positives < settings.min_unseen_positives
    ):
        check = unfair_comparison_check(
            metric,
            rows,
            settings.min_unseen_rows,
            settings.min_unseen_positives,
            settings.too_few_unseen,
        )
        return check, comparison | {"assessed": False}
    bootstrap = (
        paired_bootstrap if isinstance(task, Binary) else partial(paired_bootstrap_task, task)
    )
    result = bootstrap(
        y[unseen],
        challenger_proba[unseen],
        champion_proba[unseen],
        metric,
        settings.bootstrap_rounds,
        settings.confidence,
        settings.seed,
    )
    comparison |= {
        "assessed": True,
        "champion_unseen_score": result.champion,
        "champion_unseen_interval": [result.champion_low, result.champion_high],
        "challenger_unseen_score": result.challenger,
    }
    return champion_check(result, settings.max_regression, rows), comparison


def _float_tag(value: str | None) -> float | None:
    return None if value is None else float(value)


def register(run: Run, inputs: CardInputs, cfg: Config) -> tuple[dict[str, Any], str, str]:
    """Gate the model that training `run` logged, register it with its model card and
    (first time) promote it; return the gate report, its Markdown and the card. All three
    name this machine's registry version."""
    registry = Registry.connect(cfg.mlflow.registered_model)
    test_metrics, model_info, task = inputs.test_metrics, inputs.model_info, inputs.task
    bars = task.bars(getattr(cfg.gate.min_test, task.name))
    compared = task.compared(cfg.gate.compare_metric)
    checks = threshold_checks(test_metrics, bars, task.metrics)
    if cfg.gate.min_brier_skill is not None and isinstance(task, Binary):  # one class's
        checks.append(brier_skill_check(test_metrics["brier_skill"], cfg.gate.min_brier_skill))
    if cfg.gate.min_worst_slice is not None:
        checks.append(worst_slice_check(inputs.slices, cfg.gate.min_worst_slice))
    champion = registry.champion()
    comparison = None
    if champion is not None:
        check, comparison = compare_with_champion(
            cfg, registry, champion, task, inputs.y_test, inputs.proba_test
        )
        checks.append(check)
    passed = all(c.passed for c in checks)

    run_id = run.info.run_id
    tags = {
        GATE_TAG: str(passed).lower(),
        "gate.failed_checks": ",".join(c.name for c in checks if not c.passed) or "none",
        "run_id": run_id,
        "git.commit": run.data.tags.get("git.commit", "unknown"),
        "data.train_md5": model_info["data_train_md5"],
        "threshold": str(model_info["threshold"]),
        "candidate": model_info["winner"],
        **{f"test.{k}": str(round(v, 5)) for k, v in test_metrics.items() if isinstance(v, float)},
    }
    log = logging.getLogger("register")
    unfinished = registry.unfinished_from_run(run_id)
    for abandoned in unfinished[:-1]:
        registry.mark(abandoned, "abandoned")
        log.warning("version %s was left half-made earlier: marked abandoned", abandoned.version)
    if unfinished:
        version = registry.resume(unfinished[-1], tags)
        log.warning(
            "version %s of %s (run %s) was left half-made by an interrupted register: completing it",
            version.version,
            registry.name,
            run_id,
        )
    else:
        version = registry.register(run.data.tags[MODEL_URI_TAG], run_id, tags)
    card = model_card(cfg, str(version.version), run_id, run.data.tags, inputs, checks)
    summary = (
        f"{model_info['winner']}; test {compared} "
        f"{test_metrics[compared]:.4f}; gate {'passed' if passed else 'FAILED'}."
    )
    registry.attach_card(version, card, summary)
    registry.mark(version, "complete")
    log.info(
        "registered %s version %s (challenger) with its model card; gate %s",
        registry.name,
        version.version,
        "passed" if passed else "FAILED",
    )
    if passed and champion is None and cfg.gate.auto_promote_first:
        actor = os.environ.get("GITHUB_ACTOR") or getpass.getuser()
        registry.promote(version.version, actor, "first version to pass the gate", automatic=True)
        log.info("no champion existed: version %s is now champion", version.version)

    report = {
        "model": registry.name,
        "version": version.version,
        "run_id": run_id,
        "passed": passed,
        "champion_before": str(champion.version) if champion else None,
        "champion_comparison": comparison,
        "checks": [c.to_dict() for c in checks],
    }
    return report, markdown_summary(checks, registry.name, version.version), card
