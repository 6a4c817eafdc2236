"""Which of two served versions is better, decided on delayed labels (issue 27).

Only rows whose labels have matured count. Each row gives a utility, higher is better:
minus its log loss (a regression's: minus its squared error), or a business outcome from
the labels (a conversion, revenue). The
verdict rests on a per-row effect whose mean is the challenger's gain:

- shadow (both versions scored every row): the challenger's utility minus the champion's;
- split (one version answered each row, the challenger with known probability `share`):
  the inverse-probability-weighted utility, u * (Z / share - (1 - Z) / (1 - share)),
  whose mean is the difference between the arms' mean utilities.

Around that mean goes an asymptotic confidence sequence (the normal-mixture boundary of
Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and
asymptotic confidence sequences", 2023): it holds at every sample size at once, so the
report may be read after every new batch of labels, with no state kept between reports,
without raising the false-verdict rate above `alpha`. Better when it lies above 0, worse
when below, otherwise not yet decided, with the rows still needed to detect
`min_detectable_effect` with `power`.

Alongside, for this look only (they do not decide): in shadow, the paired bootstrap of
the gate's metric (registry/gate.py) and McNemar's test on the two versions' labels
(statsmodels: its exact binomial form when few rows disagree; not for a regression); in
split, each arm's metric. Each task's answers (tasks/: Answers) say how a logged row
is read, scored and weighed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from mlops_starter.config import ExperimentConfig
from mlops_starter.monitoring.inputs import MonitorError
from mlops_starter.registry.gate import BootstrapResult, paired_bootstrap, paired_bootstrap_task
from mlops_starter.tasks import TASKS, Answers


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    rows: int
    sd: float


def confidence_sequence(effects: np.ndarray, alpha: float, tuned_rows: int) -> Interval:
    """The (1 - alpha) asymptotic confidence sequence for the mean of `effects` at their
    current count, its boundary tightest near `tuned_rows` (fixed before any data)."""
    t = len(effects)
    if t < 2:
        return Interval(float("nan"), -math.inf, math.inf, t, float("nan"))
    mean, sd = float(np.mean(effects)), float(np.std(effects, ddof=1))
    half = sd * half_width_factor(t, mixture_rho2(alpha, tuned_rows), alpha)
    return Interval(mean, mean - half, mean + half, t, sd)


def mixture_rho2(alpha: float, tuned_rows: int) -> float:
    """The mixture's variance that makes the boundary tightest at `tuned_rows`."""
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuned_rows


def half_width_factor(t: int, rho2: float, alpha: float) -> float:
    return math.sqrt(
        2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha)
    )


def rows_for_power(sd: float, settings: ExperimentConfig) -> int | None:
    """The fewest rows at which a true gain of `min_detectable_effect` puts the
    confidence sequence above 0 with probability `power` (None: sd unknown or 0)."""
    if not sd > 0:
        return None
    rho2 = mixture_rho2(settings.alpha, settings.planned_rows)
    z = float(norm.ppf(settings.power))

    def enough(t: int) -> bool:
        half = sd * half_width_factor(t, rho2, settings.alpha)
        return half + z * sd / math.sqrt(t) <= settings.min_detectable_effect

    high = 2
    while not enough(high):
        high *= 2
        if high > 10**12:
            return None
    low = high // 2
    while low + 1 < high:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def matured(
    log: pd.DataFrame,
    labels: pd.DataFrame,
    target: str,
    settings: ExperimentConfig,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """The log's rows whose labels have matured: scored at least `maturation_hours` ago
    and present in `labels` (by id). Adds `y` and, when configured, `outcome`."""
    wanted = ["id", target] + ([settings.outcome] if settings.outcome != "log_loss" else [])
    if missing := [c for c in wanted if c not in labels.columns]:
        raise MonitorError(f"the labels table lacks {missing}; it has {list(labels.columns)}")
    old_enough = log["timestamp"] <= now - pd.Timedelta(hours=settings.maturation_hours)
    truth = labels[wanted].astype({"id": str}).drop_duplicates("id", keep="last")
    truth.columns = ["id", "y", *(["outcome"] if len(wanted) > 2 else [])]
    return log[old_enough].astype({"id": str}).merge(truth, on="id", how="inner")


def decide(
    rows: pd.DataFrame,
    mode: str,
    champion: str,
    challenger: str,
    settings: ExperimentConfig,
    metric: str,
    answers: Answers,
    evidence: bool = True,
) -> dict[str, Any]:
    """The verdict over matured `rows` (the log joined to its labels), whose answers
    `answers` reads; with `evidence`, also this look's bootstrap and McNemar (shadow) or
    per-arm metrics (split)."""
    rows = rows.assign(y=answers.actual(rows["y"]))
    version = rows["model_version"].astype(str)
    if mode == "shadow":
        effects, extra = _shadow_effects(
            rows, version, champion, challenger, settings, metric, answers, evidence
        )
    elif mode == "split":
        effects, extra = _split_effects(
            rows, version, champion, challenger, settings, metric, answers, evidence
        )
    else:
        raise MonitorError(f"an experiment is shadow or split, not {mode!r}")
    interval = confidence_sequence(effects, settings.alpha, settings.planned_rows)
    needed = rows_for_power(interval.sd, settings)
    verdict = "better" if interval.low > 0 else "worse" if interval.high < 0 else "undecided"
    own_loss = settings.outcome == "log_loss"
    return {
        "experiment": settings.name,
        "mode": mode,
        "champion": champion,
        "challenger": challenger,
        "verdict": verdict,
        "matured_rows": interval.rows,
        "rows_needed": needed,
        "rows_still_needed": None if needed is None else max(0, needed - interval.rows),
        # Undecided, but any true difference is smaller than the gain worth finding: more
        # rows would not change the decision to make, only how long it takes to make it.
        "within_min_detectable_effect": -settings.min_detectable_effect
        < interval.low
        <= interval.high
        < settings.min_detectable_effect,
        "effect": {
            **asdict(interval),
            "alpha": settings.alpha,
            "per_row": f"minus {answers.loss_name}" if own_loss else settings.outcome,
            "meaning": "challenger minus champion, higher is better; the interval holds at "
            "every look (anytime-valid)",
        },
        **extra,
    }


def _utility(rows: pd.DataFrame, settings: ExperimentConfig, answers: Answers) -> np.ndarray:
    if settings.outcome == "log_loss":  # the model's own loss, whatever the task
        return answers.utility(answers.from_log(rows), rows["y"].to_numpy())
    return pd.to_numeric(rows["outcome"], errors="coerce").fillna(0.0).to_numpy(dtype=float)


def _bootstrap(
    answers: Answers,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    metric: str,
    confidence: float,
) -> BootstrapResult:
    if answers.task == "binary":
        return paired_bootstrap(y, challenger, champion, metric, 1000, confidence, seed=0)
    task = TASKS[answers.task]
    return paired_bootstrap_task(task, y, challenger, champion, metric, 1000, confidence, 0)


def _scorable(answers: Answers, y: np.ndarray) -> bool:
    """Whether `y` can be scored by the task's metric: known labels of both classes or of
    every class, or finite numbers."""
    if answers.task == "regression":
        return len(y) > 1 and bool(np.isfinite(y).all())
    classes = 2 if answers.task == "binary" else len(answers.described()["classes"])
    return bool((y >= 0).all()) and len(np.unique(y)) == classes


def _shadow_effects(
    rows: pd.DataFrame,
    version: pd.Series,
    champion: str,
    challenger: str,
    settings: ExperimentConfig,
    metric: str,
    answers: Answers,
    evidence: bool,
) -> tuple[np.ndarray, dict[str, Any]]:
    keys = ["request_id", "id"]
    fields = list(answers.fields())
    a = rows[version == champion].drop_duplicates(keys)
    b = rows[version == challenger].drop_duplicates(keys)
    paired = a.merge(b[[*keys, *fields]], on=keys, suffixes=("", "_challenger"))
    if paired.empty:
        raise MonitorError(
            f"no matured row was scored by both version {champion} and version {challenger}: "
            "a shadow experiment logs both scores of each request"
        )
    challenged = paired.assign(**{name: paired[f"{name}_challenger"] for name in fields})
    effects = _utility(challenged, settings, answers) - _utility(paired, settings, answers)
    y = paired["y"].to_numpy()
    extra: dict[str, Any] = {"paired_rows": len(paired)}
    if not evidence:
        return effects, extra
    ours, theirs = answers.from_log(paired), answers.from_log(challenged)
    if _scorable(answers, y):
        boot = _bootstrap(
            answers, y, answers.raw(theirs), answers.raw(ours), metric, 1 - settings.alpha
        )
        extra["gate_metric"] = {
            "metric": metric,
            "challenger": boot.challenger,
            "champion": boot.champion,
            "difference_low": boot.low,
            "difference_high": boot.high,
            "note": "paired bootstrap at this look only; the verdict uses the sequence above",
        }
    right_a, right_b = answers.correct(ours, y), answers.correct(theirs, y)
    if right_a is None or right_b is None:
        return effects, extra
    from statsmodels.stats.contingency_tables import mcnemar

    table = [
        [int((right_a & right_b).sum()), int((right_a & ~right_b).sum())],
        [int((~right_a & right_b).sum()), int((~right_a & ~right_b).sum())],
    ]
    discordant = table[0][1] + table[1][0]
    test = mcnemar(table, exact=discordant < 25, correction=True)
    extra["mcnemar"] = {
        "only_champion_right": table[0][1],
        "only_challenger_right": table[1][0],
        "p_value": float(test.pvalue),
        "note": "the labels at each version's decision rule, at this look only",
    }
    return effects, extra


def _split_effects(
    rows: pd.DataFrame,
    version: pd.Series,
    champion: str,
    challenger: str,
    settings: ExperimentConfig,
    metric: str,
    answers: Answers,
    evidence: bool,
) -> tuple[np.ndarray, dict[str, Any]]:
    arms = rows[version.isin([champion, challenger])]
    if arms.empty:
        raise MonitorError(f"no matured row was answered by version {champion} or {challenger}")
    to_challenger = (arms["model_version"].astype(str) == challenger).to_numpy()
    share = settings.challenger_share
    effects = _utility(arms, settings, answers) * np.where(
        to_challenger, 1 / share, -1 / (1 - share)
    )
    extra: dict[str, Any] = {"arms": {}}
    if not evidence:
        return effects, extra
    for name, mask in ((champion, ~to_challenger), (challenger, to_challenger)):
        arm = arms[mask]
        figures: dict[str, Any] = {"rows": int(mask.sum())}
        y = arm["y"].to_numpy()
        if _scorable(answers, y):
            raw = answers.raw(answers.from_log(arm))
            figures[metric] = float(TASKS[answers.task].score(metric, y, raw))
        extra["arms"][name] = figures
    return effects, extra
