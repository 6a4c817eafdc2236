"""Slice metrics find the rows where a model is weak, importance finds what drives it,
and the gate can hold a bar on the weakest slice."""

import numpy as np
import pandas as pd
import pytest

from mlops_starter.config import SliceConfig
from mlops_starter.evaluation.slices import feature_importance, slice_metrics
from mlops_starter.registry.gate import worst_slice_check


class FirstColumnModel:
    """Scores by the `signal` column: a stand-in whose behaviour per slice is known."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-X["signal"].to_numpy()))
        return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 6000
    y = (rng.random(n) < 0.15).astype(int)
    region = rng.choice(["north", "south", "east"], n)
    # Informative everywhere except in the south, where the signal is pure noise.
    signal = np.where(region == "south", rng.normal(size=n), 2.0 * y + rng.normal(size=n))
    X = pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=n),
            "region": region,
            "tiny": np.where(np.arange(n) < 50, "rare", "common"),
        }
    )
    return X, y


def test_the_weak_slice_is_worst_and_flagged_and_small_slices_are_not_scored(table):
    X, y = table
    proba = FirstColumnModel().predict_proba(X)[:, 1]
    result = slice_metrics(X, y, proba, 0.5, ["region", "tiny"], ["noise"], SliceConfig())
    assert result["worst"]["feature"] == "region" and result["worst"]["slice"] == "south"
    assert result["worst"]["roc_auc"] == pytest.approx(0.5, abs=0.05)
    assert [(s["feature"], s["slice"]) for s in result["flagged"]] == [("region", "south")]
    rare = next(s for s in result["slices"] if s["slice"] == "rare")
    assert rare["assessed"] is False and "roc_auc" not in rare
    assert sum(s["feature"] == "noise" for s in result["slices"]) == 4  # quantile bins
    assert result["overall"]["roc_auc"] > 0.75


def test_permutation_importance_ranks_the_signal_first_per_original_feature(table):
    X, y = table
    found = feature_importance(FirstColumnModel(), X, y, "roc_auc", repeats=3, seed=0)
    assert found["feature"].iloc[0] == "signal"
    assert set(found["feature"]) == set(X.columns)
    assert found.set_index("feature").loc["noise", "importance"] == pytest.approx(0, abs=1e-9)


def test_the_gate_bar_on_the_worst_slice(table):
    X, y = table
    proba = FirstColumnModel().predict_proba(X)[:, 1]
    slices = slice_metrics(X, y, proba, 0.5, ["region"], [], SliceConfig())
    failed = worst_slice_check(slices, 0.65)
    assert not failed.passed and "region = south" in failed.detail
    assert worst_slice_check(slices, 0.40).passed
    nothing = slice_metrics(X, y, proba, 0.5, ["region"], [], SliceConfig(min_rows=5000))
    unassessable = worst_slice_check(nothing, 0.40)
    assert not unassessable.passed and "min_rows" in unassessable.detail
