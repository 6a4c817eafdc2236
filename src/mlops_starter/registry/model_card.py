"""A model card for every registered version: one Markdown page that says what the model
is for, what it was trained on, why it won, how well it does (with the uncertainty of a
finite test set) and for whom less well, what drives it, what the gate checked and where
it should not be trusted. Written from the pipeline's own outputs, so it cannot drift
from them; logged with the version and served at GET /metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_starter.config import Config
from mlops_starter.metrics import bootstrap_intervals
from mlops_starter.registry.gate import GateCheck
from mlops_starter.storage import read_json
from mlops_starter.tasks import Binary, Task, resolve_task

TOP_FEATURES = 10
CARD_METRICS = ("roc_auc", "pr_auc", "recall", "precision", "brier")


@dataclass(frozen=True)
class CardInputs:
    """What the pipeline wrote that the card is made from."""

    model_info: dict[str, Any]  # models/model.json
    cv: dict[str, Any]  # metrics/cv.json
    test_metrics: dict[str, Any]  # metrics/test.json
    slices: dict[str, Any]  # reports/slices.json
    importance: pd.DataFrame  # plots/importance.csv
    task: Task
    y_test: np.ndarray  # encoded
    proba_test: np.ndarray  # probabilities (binary: the positive's), or a number's values

    @classmethod
    def read(cls, cfg: Config) -> CardInputs:
        """From the files the train and evaluate stages wrote (paths from params.yaml)."""
        paths = cfg.paths
        task = resolve_task(cfg.data, paths.test)
        answers = pd.read_parquet(Path(paths.model_dir) / "test_scores.parquet")
        return cls(
            read_json(Path(paths.model_dir) / "model.json"),
            read_json(Path(paths.metrics) / "cv.json"),
            read_json(Path(paths.metrics) / "test.json"),
            read_json(Path(paths.reports) / "slices.json"),
            pd.read_csv(Path(paths.plots) / "importance.csv"),
            task,
            *task.read_answers(answers),
        )


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _data_section(inputs: CardInputs, tags: dict[str, str], cfg: Config) -> list[str]:
    info, test = inputs.model_info, inputs.test_metrics
    schema = info["feature_schema"]
    binary = isinstance(inputs.task, Binary)
    rows = [
        ["source", cfg.data.source_label],
        ["raw table md5", tags.get("data.raw_md5", "unknown")],
        ["training table md5", info["data_train_md5"]],
        [
            "training rows",
            f"{info['train_rows']} (positive rate {info['train_positive_rate']:.2%})"
            if binary
            else str(info["train_rows"]),
        ],
        [
            "test rows",
            f"{test['rows']} (positive rate {test['positive_rate']:.2%})"
            if binary
            else str(test["rows"]),
        ],
        ["split", f"{cfg.split.strategy}, test share {cfg.split.test_size}"],
        ["features", f"{len(schema['numeric'])} numeric, {len(schema['categorical'])} categorical"],
    ]
    if span := info.get("time_span"):
        rows.append(["time span (training)", f"{span[0]} to {span[1]} ({cfg.data.time_column})"])
    if schema.get("left_out"):
        left_out = "; ".join(f"{k}: {v}" for k, v in schema["left_out"].items())
        rows.append(["left out", left_out])
    return ["## Data", "", *_table(["", ""], rows)]


def _candidates_section(inputs: CardInputs, cfg: Config) -> list[str]:
    cv, primary, task = inputs.cv, inputs.cv["primary_metric"], inputs.task
    higher = task.metrics[primary]
    ranked = sorted(
        cv["candidates"].items(), key=lambda item: item[1][f"cv_{primary}"], reverse=higher
    )
    shown = [primary, *(m for m in task.candidate_metrics if m != primary)]
    rows = [[name, *(scores[f"cv_{m}"] for m in shown)] for name, scores in ranked]
    lines = [
        "## Candidates",
        "",
        *_table(["candidate", *(f"CV {m}" for m in shown)], rows),
    ]
    lines += [
        "",
        f"**{cv['winner']}** won: the {'highest' if higher else 'lowest'} mean {primary} "
        f"over {cfg.train.cv_folds} "
        f"cross-validation folds of the training set (spread ±{cv[f'cv_{primary}_std']:.4f}).",
    ]
    if f"search_best_{primary}" in cv:
        lines.append(
            f"Its parameters were tuned ({cv['trials']} trials per search, nested CV): the CV "
            f"score above comes from outer folds no search saw; the search's own best, "
            f"{cv[f'search_best_{primary}']:.4f}, is optimistic and was not used to choose."
        )
    params = ", ".join(f"{k}={v}" for k, v in inputs.model_info["params"].items())
    lines += ["", f"Parameters: {params}."]
    return lines


def _task_test_section(inputs: CardInputs) -> list[str]:
    """Multi-class and regression: the task's test metrics, per class or with the interval."""
    test, task, info = inputs.test_metrics, inputs.task, inputs.model_info
    rows = [[m, float(test[m])] for m in task.summary_metrics if m in test]
    lines = [
        "## Test metrics",
        "",
        "Scored once on the untouched test set.",
        "",
        *_table(["metric", "value"], rows),
    ]
    if "per_class" in test:
        per_class = [
            [label, s["rows"], s["precision"], s["recall"], s["f1"]]
            for label, s in test["per_class"].items()
        ]
        lines += ["", *_table(["class", "rows", "precision", "recall", "f1"], per_class)]
        rule = "least expected cost (train.cost_matrix)" if info["cost_matrix"] else "most probable"
        lines += [
            "",
            f"Probabilities calibrated by temperature {info['temperature']:g} (fitted on "
            f"out-of-fold predictions); the answer is the {rule} class.",
        ]
    if "interval_coverage" in test:
        lines += [
            "",
            f"Conformal interval: the value ± {info['interval_half_width']:g}, set from "
            f"out-of-fold errors to hold {info['interval_coverage']:.0%} of new values; it "
            f"held {test['interval_coverage']:.1%} of the test set's.",
        ]
    return lines


def _test_section(inputs: CardInputs, cfg: Config) -> list[str]:
    if not isinstance(inputs.task, Binary):
        return _task_test_section(inputs)
    test, gate = inputs.test_metrics, cfg.gate
    intervals = bootstrap_intervals(
        inputs.y_test,
        inputs.proba_test,
        test["threshold"],
        gate.bootstrap_rounds,
        gate.confidence,
        gate.seed,
    )
    rows = [
        [m, float(test[m]), f"[{intervals[m][0]:.4f}, {intervals[m][1]:.4f}]"] for m in CARD_METRICS
    ]
    return [
        "## Test metrics",
        "",
        f"Scored once on the untouched test set; {gate.confidence:.0%} bootstrap intervals "
        f"over {gate.bootstrap_rounds} resamples of its rows.",
        "",
        *_table(["metric", "value", "interval"], rows),
        "",
        f"Label threshold {test['threshold']:.4f} (F{cfg.train.threshold_fbeta:g} on out-of-fold "
        f"predictions). Calibration: {inputs.model_info['calibration']}; expected calibration "
        f"error {test['ece']:.4f}, Brier skill against the base rate {test['brier_skill']:.4f}.",
    ]


def _slices_section(inputs: CardInputs) -> list[str]:
    slices = inputs.slices
    metric = slices["metric"]
    assessed = [s for s in slices["slices"] if s["assessed"]]
    # Binary slices also show recall and calibration; another task's, its own metric.
    extra = ["recall", "mean_predicted", "observed_rate"] if "recall" in slices["overall"] else []
    rows = [
        [
            s["feature"],
            s["slice"],
            s["rows"],
            s["positives"],
            s[metric],
            *(s[e] for e in extra),
            "**flagged**" if s["flagged"] else "",
        ]
        for s in sorted(assessed, key=lambda s: s[metric])
    ]
    counted = "positives" if extra else "rarest class" if inputs.task.has_classes else "rows"
    header = [
        "feature",
        "slice",
        "rows",
        counted,
        metric,
        *(e.replace("_", " ") for e in extra),
        "",
    ]
    lines = [
        "## Slices",
        "",
        f"Whole test set: {metric} {slices['overall'][metric]:.4f}. Worst slice first.",
        "",
    ]
    lines += _table(header, rows) if rows else ["No slice was large enough to assess."]
    if skipped := len(slices["slices"]) - len(assessed):
        lines += ["", f"{skipped} slices had too few rows or positives to assess."]
    return lines


def _features_section(inputs: CardInputs) -> list[str]:
    top = inputs.importance.head(TOP_FEATURES)
    rows = [
        [rank, feature, float(importance), float(spread)]
        for rank, (feature, importance, spread) in enumerate(
            zip(top["feature"], top["importance"], top["std"], strict=True), start=1
        )
    ]
    return [
        "## Top features",
        "",
        f"Permutation importance on the test set: the loss in {inputs.cv['primary_metric']} "
        "when the feature's values are shuffled.",
        "",
        *_table(["rank", "feature", "importance", "spread"], rows),
    ]


def _limits(inputs: CardInputs, cfg: Config) -> list[str]:
    limits = list(cfg.model_card.limitations)
    for s in inputs.slices["flagged"]:
        limits.append(
            f"Weaker on {s['feature']} = {s['slice']}: {inputs.slices['metric']} {s[inputs.slices['metric']]:.4f} "
            f"against {inputs.slices['overall'][inputs.slices['metric']]:.4f} overall."
        )
    if span := inputs.model_info.get("time_span"):
        limits.append(
            f"Trained on rows up to {span[1]}; later behaviour is untested until monitored."
        )
    limits.append(
        "Values outside the training ranges and unseen categories are scored but warned "
        "about by the service and counted by monitoring."
    )
    return ["## Known limits", "", *[f"- {limit}" for limit in limits]]


def model_card(
    cfg: Config,
    version: str,
    run_id: str,
    run_tags: dict[str, str],
    inputs: CardInputs,
    checks: list[GateCheck],
) -> str:
    """The card of registered version `version` of cfg.mlflow.registered_model."""
    passed = all(c.passed for c in checks)
    gate_rows = [[c.name, c.value, c.bar, "pass" if c.passed else "FAIL"] for c in checks]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Model card: {cfg.mlflow.registered_model} version {version}",
        "",
        f"Predicts `{cfg.data.target}` = {cfg.data.positive_label!r} with the "
        if isinstance(inputs.task, Binary)
        else f"Predicts `{cfg.data.target}` ({inputs.task.name}: {inputs.task.reason}) with the "
        f"{inputs.model_info['winner']} candidate. Training run `{run_id}`, git commit "
        f"`{run_tags.get('git.commit', 'unknown')}`; card written {generated}.",
        "",
        "## Intended use",
        "",
        cfg.model_card.intended_use,
    ]
    if cfg.model_card.out_of_scope:
        lines += ["", f"Out of scope: {cfg.model_card.out_of_scope}"]
    sections = [
        _data_section(inputs, run_tags, cfg),
        _candidates_section(inputs, cfg),
        _test_section(inputs, cfg),
        _slices_section(inputs),
        _features_section(inputs),
        [
            "## Gate",
            "",
            f"{'Passed' if passed else 'Failed'}: "
            + ("eligible for promotion." if passed else "never promoted."),
            "",
            *_table(["check", "value", "bar", "result"], gate_rows),
        ],
        _limits(inputs, cfg),
    ]
    for section in sections:
        lines += ["", *section]
    return "\n".join(lines) + "\n"
