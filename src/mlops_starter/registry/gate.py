"""The validation gate: absolute bars on the test metrics, and a paired bootstrap
against the current champion scored on the same test rows.

A paired bootstrap resamples test rows once per round and scores both models on
the same rows, so the noise shared by the two cancels and the interval is about
the difference itself. A challenger is called worse only when the whole interval
lies below -max_regression: a gap within noise is neither a regression nor a win.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlops_starter.config import TestMetric
from mlops_starter.evaluation.metrics import RANKING_SCORERS, bootstrap_draws, weighted_scores


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None
    bar: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_checks(
    metrics: Mapping[str, float], minimums: Mapping[TestMetric, float]
) -> list[GateCheck]:
    """One check per `min_<metric>` bar: the test metric must reach it."""
    checks = []
    for metric, bar in minimums.items():
        value = float(metrics[metric])
        checks.append(GateCheck(f"min_{metric}", round(value, 4), f">= {bar}", value >= bar))
    return checks


def brier_skill_check(brier_skill: float, minimum: float) -> GateCheck:
    """Probabilities must beat always predicting the base rate (skill above `minimum`)."""
    return GateCheck(
        "brier_skill_above_base_rate",
        round(brier_skill, 4),
        f"> {minimum}",
        brier_skill > minimum,
        "Brier skill score against predicting the training positive rate for every row; "
        "at or below 0 the served probabilities are worse than no model (gate.min_brier_skill)",
    )


def worst_slice_check(slices: Mapping[str, Any], minimum: float) -> GateCheck:
    """The weakest assessed slice of the test set must reach `minimum` on the slice metric."""
    metric, worst = slices["metric"], slices["worst"]
    name = f"min_worst_slice_{metric}"
    if worst is None:
        return GateCheck(
            name,
            None,
            f">= {minimum}",
            False,
            "no slice was large enough to assess: lower evaluate.slices.min_rows or min_positives",
        )
    value = float(worst[metric])
    return GateCheck(
        name,
        round(value, 4),
        f">= {minimum}",
        value >= minimum,
        f"worst slice: {worst['feature']} = {worst['slice']} ({worst['rows']} rows, "
        f"{worst['positives']} positives); whole test set {slices['overall'][metric]:.4f} "
        "(gate.min_worst_slice)",
    )


@dataclass(frozen=True)
class BootstrapResult:
    metric: str
    challenger: float
    champion: float
    delta: float
    low: float
    high: float
    confidence: float
    rounds: int


def paired_bootstrap(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    metric: str,
    rounds: int,
    confidence: float,
    seed: int,
) -> BootstrapResult:
    """Interval of (challenger - champion) for `metric`, resampling the same rows for both."""
    score: Callable[[np.ndarray, np.ndarray], float] = RANKING_SCORERS[metric]
    y = np.asarray(y)
    deltas = np.concatenate(
        [
            weighted_scores(y, np.asarray(challenger, dtype=float), 0.5, draws)[metric]
            - weighted_scores(y, np.asarray(champion, dtype=float), 0.5, draws)[metric]
            for draws in bootstrap_draws(y, rounds, seed)
        ]
    )
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    a, b = float(score(y, challenger)), float(score(y, champion))
    return BootstrapResult(metric, a, b, a - b, float(low), float(high), confidence, len(deltas))


def champion_check(result: BootstrapResult, max_regression: float) -> GateCheck:
    """Fail only when the challenger is worse beyond noise and beyond the allowed margin."""
    worse = result.high < -max_regression
    if worse:
        verdict = "worse than the champion"
    elif result.low > 0:
        verdict = "better than the champion"
    else:
        verdict = "no difference beyond noise"
    detail = (
        f"{result.metric}: challenger {result.challenger:.4f} vs champion {result.champion:.4f}, "
        f"difference {result.delta:+.4f}, {result.confidence:.0%} interval "
        f"[{result.low:+.4f}, {result.high:+.4f}] over {result.rounds} paired resamples: {verdict}"
    )
    return GateCheck(
        f"not_worse_than_champion_{result.metric}",
        round(result.delta, 4),
        f"interval upper bound >= -{max_regression}",
        not worse,
        detail,
    )


def markdown_summary(checks: list[GateCheck], model: str, version: str | None) -> str:
    """A short table CI can post as a job summary or pull-request comment."""
    passed = all(c.passed for c in checks)
    lines = [
        f"### Validation gate: {'PASSED' if passed else 'FAILED'} ({model} version {version or 'unregistered'})",
        "",
        "| check | value | bar | result |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {c.value} | {c.bar} | {'pass' if c.passed else '**FAIL**'} |" for c in checks
    ]
    lines += [f"\n{c.detail}" for c in checks if c.detail]
    return "\n".join(lines) + "\n"
