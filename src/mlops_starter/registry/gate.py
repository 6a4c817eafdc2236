"""The validation gate: absolute bars on the test metrics, and a paired bootstrap
against the current champion scored on the same test rows, leaving out the rows the
champion trained on (another split puts them in the test set, where they flatter it).

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

from mlops_starter.metrics import RANKING_SCORERS, bootstrap_draws, weighted_scores
from mlops_starter.tasks import Task


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None
    bar: str
    passed: bool
    detail: str = ""
    assessed: bool = True  # False: the check could not be made fairly; `passed` is the policy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_checks(
    metrics: Mapping[str, float], bars: Mapping[str, float], higher_is_better: Mapping[str, bool]
) -> list[GateCheck]:
    """One check per bar: a score must reach it (`min_<metric>`), an error must not pass
    it (`max_<metric>`)."""
    checks = []
    for metric, bar in bars.items():
        value = float(metrics[metric])
        if higher_is_better[metric]:
            checks.append(GateCheck(f"min_{metric}", round(value, 4), f">= {bar}", value >= bar))
        else:
            checks.append(GateCheck(f"max_{metric}", round(value, 4), f"<= {bar}", value <= bar))
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
    champion_low: float  # the champion's own interval, from the same resamples
    champion_high: float


@dataclass(frozen=True)
class ComparedRows:
    """Which test rows the champion is judged on: those it never trained on."""

    champion_version: str
    test_rows: int
    unseen_rows: int
    unseen_positives: int  # positives (binary), rows of the rarest class, or rows
    recorded: bool  # False: the champion's run kept no record of its training rows
    counted: str = "positives"  # what unseen_positives counts, for the notes

    @property
    def excluded_rows(self) -> int:
        return self.test_rows - self.unseen_rows

    def note(self) -> str:
        if not self.recorded:
            return (
                f"champion version {self.champion_version} kept no record of its training "
                f"rows (registered before records were kept), so all {self.test_rows} test "
                "rows were used; any it trained on flatter it"
            )
        return (
            f"compared on the {self.unseen_rows} of {self.test_rows} test rows that champion "
            f"version {self.champion_version} never trained on ({self.unseen_positives} "
            f"{self.counted}); the {self.excluded_rows} rows it trained on were left out"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"excluded_rows": self.excluded_rows}


def unseen_rows(test_keys: np.ndarray, trained_keys: np.ndarray) -> np.ndarray:
    """True for each test row whose key is not among the sorted `trained_keys`."""
    return ~np.isin(test_keys, trained_keys)


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
    deltas, champions = [], []
    for draws in bootstrap_draws(y, rounds, seed):
        champion_scores = weighted_scores(y, np.asarray(champion, dtype=float), 0.5, draws)[metric]
        challenger_scores = weighted_scores(y, np.asarray(challenger, dtype=float), 0.5, draws)
        deltas.append(challenger_scores[metric] - champion_scores)
        champions.append(champion_scores)
    a, b = float(score(y, challenger)), float(score(y, champion))
    return _bootstrap_result(
        metric, a, b, a - b, np.concatenate(deltas), np.concatenate(champions), confidence
    )


def _bootstrap_result(
    metric: str,
    challenger: float,
    champion: float,
    delta: float,
    deltas: np.ndarray,
    champions: np.ndarray,
    confidence: float,
) -> BootstrapResult:
    """The whole-set scores and difference, with the percentile intervals of the
    resampled differences and of the champion's own scores."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    champion_low, champion_high = np.quantile(champions, [tail, 1 - tail])
    return BootstrapResult(
        metric,
        challenger,
        champion,
        delta,
        float(low),
        float(high),
        confidence,
        len(deltas),
        float(champion_low),
        float(champion_high),
    )


def paired_bootstrap_task(
    task: Task | type[Task],
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    metric: str,
    rounds: int,
    confidence: float,
    seed: int,
) -> BootstrapResult:
    """The same interval for a multi-class or regression `task`: its own metric on the
    same resampled rows for both. For an error (log loss, RMSE) the difference is
    champion minus challenger, so that below zero is worse whatever the metric. A
    resample missing a class has no one-against-rest score and is drawn again."""
    rng = np.random.default_rng(seed)
    sign = 1.0 if task.metrics[metric] else -1.0
    classes = len(np.unique(y)) if task.has_classes else 0
    deltas, champions = [], []
    for _ in range(rounds):
        rows = rng.integers(0, len(y), len(y))
        if classes and len(np.unique(y[rows])) < classes:
            continue
        theirs = task.score(metric, y[rows], champion[rows])
        deltas.append(sign * (task.score(metric, y[rows], challenger[rows]) - theirs))
        champions.append(theirs)
    a, b = task.score(metric, y, challenger), task.score(metric, y, champion)
    return _bootstrap_result(
        metric, a, b, sign * (a - b), np.array(deltas), np.array(champions), confidence
    )


def champion_check(
    result: BootstrapResult, max_regression: float, rows: ComparedRows | None = None
) -> GateCheck:
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
    if rows is not None:
        detail = f"{rows.note()}. {detail}"
    return GateCheck(
        f"not_worse_than_champion_{result.metric}",
        round(result.delta, 4),
        f"interval upper bound >= -{max_regression}",
        not worse,
        detail,
    )


def unfair_comparison_check(
    metric: str, rows: ComparedRows, min_rows: int, min_positives: int, policy: str
) -> GateCheck:
    """Too few test rows the champion never saw for a bootstrap to mean anything: say so,
    never call the challenger worse, and pass or fail by `policy` (gate.too_few_unseen)."""
    every_row = rows.counted == "rows"  # regression: no class to count
    detail = (
        f"Not compared fairly: only {rows.unseen_rows} of {rows.test_rows} test rows "
        + ("" if every_row else f"({rows.unseen_positives} {rows.counted}) ")
        + f"are rows champion version {rows.champion_version} never trained on; the other "
        f"{rows.excluded_rows} were in its training set and would flatter it. A fair "
        f"comparison needs {min_rows} rows"
        + (
            " (gate.min_unseen_rows). "
            if every_row
            else f" and {min_positives} {rows.counted} (gate.min_unseen_rows, "
            "gate.min_unseen_positives). "
        )
        + "Keep the champion's split (split.seed, split.test_size, split.strategy, scale.mode "
        "as when it was trained) or score both on fresh labelled data. "
        + (
            "gate.too_few_unseen is warn: this does not hold the challenger back."
            if policy == "warn"
            else "gate.too_few_unseen is fail: the challenger is held back until it can be compared."
        )
    )
    return GateCheck(
        f"not_worse_than_champion_{metric}",
        None,
        f"{min_rows} unseen rows" + ("" if every_row else f", {min_positives} {rows.counted}"),
        policy == "warn",
        detail,
        assessed=False,
    )


def markdown_summary(checks: list[GateCheck], model: str, version: str | None) -> str:
    """A short table CI can post as a job summary or pull-request comment; a check that
    could not be made fairly is said so in words above the table."""
    passed = all(c.passed for c in checks)
    lines = [
        f"### Validation gate: {'PASSED' if passed else 'FAILED'} ({model} version {version or 'unregistered'})",
        "",
    ]
    lines += [
        f"> **Warning: {c.name} was not assessed.** {c.detail}\n" for c in checks if not c.assessed
    ]
    lines += ["| check | value | bar | result |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {c.value} | {c.bar} | {_result(c)} |" for c in checks]
    lines += [f"\n{c.detail}" for c in checks if c.detail and c.assessed]
    return "\n".join(lines) + "\n"


def _result(check: GateCheck) -> str:
    if not check.assessed:
        return "not assessed (pass by policy)" if check.passed else "**FAIL** (not assessed)"
    return "pass" if check.passed else "**FAIL**"
