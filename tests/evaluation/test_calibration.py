"""Calibration learnt from out-of-fold predictions turns inflated probabilities into
ones that match observed rates, without touching the ranking (sigmoid)."""

import numpy as np
import pytest
import skops.io
from sklearn.metrics import brier_score_loss, roc_auc_score

from mlops_starter.evaluation.calibration import CalibratedClassifier, CalibrationMap
from mlops_starter.metrics import calibration_metrics, reliability_table
from mlops_starter.storage import trusted_types


def inflated(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with a 5% base rate and scores that overstate the risk, as class weights do."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(0.5, 9.5, rows)
    y = (rng.random(rows) < truth).astype(int)
    return y, np.sqrt(truth)  # monotone, far too high


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_map_fitted_on_one_sample_calibrates_another(method):
    y_fit, raw_fit = inflated(20_000, seed=1)
    y_new, raw_new = inflated(20_000, seed=2)
    mapping = CalibrationMap.fit(raw_fit, y_fit, method)
    calibrated = mapping.apply(raw_new)
    base_rate = y_fit.mean()
    assert calibration_metrics(y_new, raw_new, base_rate)["brier_skill"] < 0
    after = calibration_metrics(y_new, calibrated, base_rate)
    assert after["brier_skill"] > 0 and after["ece"] < 0.01
    assert brier_score_loss(y_new, calibrated) < brier_score_loss(y_new, raw_new)


def test_sigmoid_keeps_the_ranking():
    y, raw = inflated(5_000, seed=3)
    calibrated = CalibrationMap.fit(raw, y, "sigmoid").apply(raw)
    assert roc_auc_score(y, calibrated) == pytest.approx(roc_auc_score(y, raw), abs=1e-12)


def test_calibrated_classifier_round_trips_through_skops_and_predicts():
    class Stub:
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            p = np.asarray(X, dtype=float)[:, 0]
            return np.column_stack([1 - p, p])

    y, raw = inflated(2_000, seed=4)
    model = CalibratedClassifier(Stub(), CalibrationMap.fit(raw, y, "isotonic"))
    mapping = skops.io.loads(skops.io.dumps(model.calibration), trusted=trusted_types())
    X = raw[:10, None]
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], mapping.apply(raw[:10]))
    assert set(model.predict(X)) <= {0, 1}


def test_reliability_table_and_ece_on_perfect_probabilities():
    rng = np.random.default_rng(5)
    p = rng.random(50_000)
    y = (rng.random(50_000) < p).astype(int)
    table = reliability_table(y, p)
    assert len(table) == 10 and table["rows"].sum() == 50_000
    assert calibration_metrics(y, p, y.mean())["ece"] < 0.01
    assert calibration_metrics(y, np.full(len(y), y.mean()), y.mean())["brier_skill"] == 0
