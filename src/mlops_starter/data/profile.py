"""The training set's per-feature profile: what each input looked like when the model
learned from it. Logged inside the MLflow model, so it travels with every registered
version; serving builds its input schema and quality checks from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_starter.data.schema import FeatureSchema
from mlops_starter.errors import DataError

PROFILE_BINS = 10


def _numeric_profile(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().astype(float)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, PROFILE_BINS + 1)))
    counts, _ = np.histogram(present.clip(edges[0], edges[-1]), bins=edges)
    return {
        "kind": "integer" if pd.api.types.is_integer_dtype(values) else "float",
        "nullable": bool(values.isna().any()),
        "missing_rate": float(values.isna().mean()),
        "min": float(present.min()),
        "max": float(present.max()),
        "bin_edges": [float(e) for e in edges],
        "bin_shares": [float(c) for c in counts / max(len(present), 1)],
    }


def _categorical_profile(values: pd.Series) -> dict[str, Any]:
    shares = values.dropna().astype(str).value_counts(normalize=True).sort_index()
    return {
        "kind": "category",
        "nullable": bool(values.isna().any()),
        "missing_rate": float(values.isna().mean()),
        "categories": {str(k): float(v) for k, v in shares.items()},
    }


def feature_profile(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, dict[str, Any]]:
    """Per feature: kind, nullability, missing rate, and range and decile bins
    (numeric) or category shares (categorical). Plain JSON types only."""
    profile: dict[str, dict[str, Any]] = {}
    for column in schema.numeric:
        if frame[column].notna().sum() == 0:
            raise DataError(f"feature '{column}' has no values in the training set")
        profile[column] = _numeric_profile(frame[column])
    for column in schema.categorical:
        profile[column] = _categorical_profile(frame[column])
    return profile


def score_profile(probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """The test-set score distribution at evaluation time: the reference for
    prediction drift (decile bins of the probability, predicted positive rate)."""
    edges = np.unique(np.quantile(probabilities, np.linspace(0, 1, PROFILE_BINS + 1)))
    edges[0], edges[-1] = 0.0, 1.0
    counts, _ = np.histogram(probabilities, bins=edges)
    return {
        "bin_edges": [float(e) for e in edges],
        "bin_shares": [float(c) for c in counts / len(probabilities)],
        "predicted_positive_rate": float(np.mean(probabilities >= threshold)),
        "rows": len(probabilities),
    }


def answer_profile(series: dict[str, np.ndarray], labels: np.ndarray | None) -> dict[str, Any]:
    """Another task's test-set answers at evaluation time, the reference for prediction
    drift: decile bins of each number answered (a class's probability, the value;
    Answers.drift_series), and each class's share of the decided labels."""
    profile: dict[str, Any] = {"series": {}, "rows": len(next(iter(series.values())))}
    for name, values in series.items():
        edges = np.unique(np.quantile(values, np.linspace(0, 1, PROFILE_BINS + 1)))
        counts, _ = np.histogram(values, bins=edges)
        profile["series"][name] = {
            "bin_edges": [float(e) for e in edges],
            "bin_shares": [float(c) for c in counts / len(values)],
        }
    if labels is not None:
        found, counts = np.unique(labels.astype(str), return_counts=True)
        profile["label_shares"] = {
            str(label): float(count / len(labels))
            for label, count in zip(found, counts, strict=True)
        }
    return profile
