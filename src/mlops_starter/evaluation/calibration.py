"""Probabilities that mean what they say.

Class weights and resampling help a model rank a rare class, and inflate its
probabilities on the way. The cure is a monotone map from the model's score to the
observed rate, learnt from out-of-fold predictions on the training set: rows that
the fold's model never saw, so the map is not fooled by the model's overfitting. The
test set plays no part in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from mlops_starter.rounding import round_sig

_EDGE = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EDGE, 1 - _EDGE)
    return np.log(p / (1 - p))


class CalibrationMap:
    """A monotone map from raw to calibrated probability, stored as plain numbers
    (isotonic: knots for linear interpolation; sigmoid: slope and intercept on the
    logit), so a model holding it stays safe to load with skops and cheap to apply. The
    numbers are rounded (rounding.py): the Platt fit's last bits are the BLAS
    kernel's, and the model file must not be."""

    def __init__(self, method: str, knots: np.ndarray) -> None:
        self.method = method
        self.knots = knots

    @classmethod
    def fit(cls, oof_proba: np.ndarray, y: np.ndarray, method: str) -> CalibrationMap:
        """Learn the map (`method`: isotonic or sigmoid) from out-of-fold probabilities and labels."""
        if method not in ("isotonic", "sigmoid"):
            raise ValueError(f"calibration method must be isotonic or sigmoid, got {method!r}")
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof_proba, y)
            return cls(method, round_sig(np.vstack([iso.X_thresholds_, iso.y_thresholds_])))
        platt = LogisticRegression(C=1e6).fit(_logit(oof_proba)[:, None], y)
        return cls(method, round_sig(np.array([platt.coef_[0, 0], platt.intercept_[0]])))

    def apply(self, proba: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(proba, self.knots[0], self.knots[1])
        slope, intercept = self.knots
        return 1.0 / (1.0 + np.exp(-(slope * _logit(proba) + intercept)))


class CalibratedClassifier:
    """A fitted classifier followed by its calibration map, with the sklearn prediction API."""

    def __init__(self, classifier: Any, calibration: CalibrationMap) -> None:
        self.classifier = classifier
        self.calibration = calibration

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classifier.classes_)

    def predict_proba(self, X: Any) -> np.ndarray:
        positive = self.calibration.apply(self.classifier.predict_proba(X)[:, 1])
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
