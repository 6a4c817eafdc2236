"""The built-in demo table (a churn table with the traits of real data) and production
batches drawn from it with a chosen kind of drift, for the monitoring demo and tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from mlops_starter.errors import DataError

DEMO_TARGET = "churned"
DEMO_POSITIVE_LABEL = "yes"
DEMO_ID = "customer_id"
DEMO_TIME = "signup_date"
_DEMO_START = pd.Timestamp("2023-01-01")
_DEMO_SPAN_DAYS = 730


def _demo_features(n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    days = rng.integers(0, _DEMO_SPAN_DAYS, n_rows)
    signup = _DEMO_START + pd.to_timedelta(days, unit="D")
    plan = rng.choice(["basic", "standard", "premium"], n_rows, p=[0.5, 0.35, 0.15])
    base_charge = pd.Series(plan).map({"basic": 30.0, "standard": 60.0, "premium": 95.0}).to_numpy()
    frame = pd.DataFrame(
        {
            DEMO_ID: [f"C{i:07d}" for i in rng.permutation(n_rows) + 1],
            DEMO_TIME: signup,
            "tenure_months": rng.integers(1, 73, n_rows),
            "monthly_charges": np.round(base_charge + rng.normal(0, 8, n_rows), 2),
            "support_calls": rng.poisson(1.2, n_rows),
            "data_usage_gb": np.round(rng.lognormal(2.5, 0.8, n_rows), 2),
            "age": rng.integers(18, 81, n_rows).astype(float),
            "plan": plan,
            "contract": rng.choice(
                ["month-to-month", "one-year", "two-year"], n_rows, p=[0.55, 0.25, 0.2]
            ),
            "region": rng.choice(["north", "south", "east", "west"], n_rows),
            "payment_method": rng.choice(
                ["card", "bank-transfer", "e-check", "paper-check"],
                n_rows,
                p=[0.4, 0.25, 0.25, 0.1],
            ).astype(object),
        }
    )
    frame.loc[rng.random(n_rows) < 0.08, "data_usage_gb"] = np.nan
    frame.loc[rng.random(n_rows) < 0.03, "age"] = np.nan
    frame.loc[rng.random(n_rows) < 0.02, "payment_method"] = None
    return frame


def demo_churn_logit(frame: pd.DataFrame) -> np.ndarray:
    """The true signal (before the intercept): the shape models have to find.

    Linear in tenure and charges, a step in support calls, an interaction between
    the premium plan and many calls, and low or missing usage as a risk sign:
    a linear model gets part of it, trees get more.
    """
    calls = frame["support_calls"].to_numpy()
    usage = frame["data_usage_gb"].to_numpy()
    return (
        -0.035 * frame["tenure_months"].to_numpy()
        + 0.02 * (frame["monthly_charges"].to_numpy() - 60.0)
        + 1.3 * (calls >= 3)
        + 1.5 * ((frame["plan"] == "premium").to_numpy() & (calls >= 3))
        + 1.4 * (frame["contract"] == "month-to-month").to_numpy()
        + 0.7 * (frame["payment_method"] == "e-check").to_numpy()
        + 1.0 * np.nan_to_num(usage < 3.0, nan=0.0)
        + 0.8 * np.isnan(usage)
    )


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """Bisection on the intercept so that the mean churn probability equals `rate`."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) > rate:
            high = mid
        else:
            low = mid
    return (low + high) / 2


def generate_demo_table(n_rows: int, seed: int, positive_rate: float = 0.05) -> pd.DataFrame:
    """A churn table with the traits of real data: id, timestamp, numeric and
    categorical columns, missing values, a rare positive class given as "yes"/"no"."""
    rng = np.random.default_rng(seed)
    frame = _demo_features(n_rows, rng)
    logit = demo_churn_logit(frame)
    probability = 1 / (1 + np.exp(-(logit + _intercept_for_rate(logit, positive_rate))))
    churned = rng.random(n_rows) < probability
    frame.insert(2, DEMO_TARGET, np.where(churned, "yes", "no"))
    return frame


DRIFT_SCENARIOS = ("none", "covariate", "prior", "concept", "broken")


class DemoTable:
    """The generated demo as a table source (data/sources.py): one batch, in memory."""

    def __init__(self, n_rows: int, seed: int, positive_rate: float) -> None:
        self.n_rows, self.seed, self.positive_rate = n_rows, seed, positive_rate

    @cached_property
    def _frame(self) -> pd.DataFrame:
        return generate_demo_table(self.n_rows, self.seed, self.positive_rate)

    def label(self) -> str:
        return "demo"

    def columns(self) -> list[str]:
        return list(self._frame.columns)

    def batches(
        self, columns: list[str], chunk_rows: int, order_by: Sequence[str] = ()
    ) -> Iterator[pd.DataFrame]:
        yield self._frame[columns]

    def total_rows(self) -> int | None:
        return self.n_rows

    def fingerprint(self, columns: list[str], chunk_rows: int) -> dict[str, Any] | None:
        return None


def generate_production_batch(
    n_rows: int,
    seed: int,
    scenario: str = "none",
    shifted_features: tuple[str, ...] = ("monthly_charges", "tenure_months"),
    positive_rate: float = 0.05,
) -> pd.DataFrame:
    """Rows as production might send them, with a chosen kind of drift from the demo
    training data (which `generate_demo_table` makes with the same `positive_rate`):

    - none: same distributions, same relation to the label;
    - covariate: named features shift (charges up by a third, tenure down by half,
      others scaled up by half); the label still follows the same true signal;
    - prior: three times the positive rate, each class's features unchanged;
    - concept: same inputs, but churn now follows another signal;
    - broken: unseen spellings of `region`, `age` given in months (out of range)
      and mostly missing: input-quality problems that barely move the scores.
    """
    if scenario not in DRIFT_SCENARIOS:
        raise DataError(f"scenario '{scenario}' is not one of {list(DRIFT_SCENARIOS)}")
    rng = np.random.default_rng(seed)
    pool = _demo_features(n_rows * 4 if scenario == "prior" else n_rows, rng)
    base_logit = demo_churn_logit(pool)
    intercept = _intercept_for_rate(base_logit, positive_rate)
    if scenario == "covariate":
        for column in shifted_features:
            if column == "monthly_charges":
                pool[column] = (pool[column] * 1.33).round(2)
            elif column == "tenure_months":
                pool[column] = np.maximum(1, pool[column] // 2)
            else:
                pool[column] = pool[column] * 1.5
    logit = demo_churn_logit(pool)
    if scenario == "concept":
        # Tenure and contract no longer protect; age and region now drive churn.
        logit = (
            0.04 * (pool["age"].fillna(45).to_numpy() - 45)
            + 1.5 * (pool["region"] == "south").to_numpy()
            + 1.0 * (pool["support_calls"].to_numpy() == 0)
        )
        intercept = _intercept_for_rate(logit, positive_rate)
    churned = rng.random(len(pool)) < 1 / (1 + np.exp(-(logit + intercept)))
    pool.insert(2, DEMO_TARGET, np.where(churned, "yes", "no"))
    if scenario == "prior":
        positives = pool[churned].head(int(n_rows * positive_rate * 3))
        negatives = pool[~churned].head(n_rows - len(positives))
        pool = pd.concat([positives, negatives]).sample(frac=1.0, random_state=seed)
    if scenario == "broken":
        broken = rng.random(len(pool)) < 0.5
        pool.loc[broken, "region"] = pool.loc[broken, "region"].str.upper()
        pool.loc[broken, "age"] = pool.loc[broken, "age"] * 12
        pool.loc[rng.random(len(pool)) < 0.4, "age"] = np.nan
    return pool.reset_index(drop=True)
