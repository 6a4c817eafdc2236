"""The service's own Prometheus metrics, beside BentoML's request metrics on /metrics,
and the calls that feed them. The Grafana dashboard (deploy/grafana/) reads these names."""

from __future__ import annotations

from collections.abc import Mapping

import bentoml
import numpy as np

from mlops_starter.serving.histogram import observe_all
from mlops_starter.serving.routing import Decided, ServedVersion

QUALITY_ISSUES = bentoml.metrics.Counter(
    name="mlops_input_quality_issues",
    documentation="Input values outside the contract or the training profile, by field, kind "
    "and outcome (accepted, rejected, or ignored: a field the model does not use)",
    labelnames=["field", "kind", "outcome"],
)
# Per version and arm (champion, challenger, or shadow: scored but not answered).
PREDICTED_PROBABILITY = bentoml.metrics.Histogram(
    name="mlops_predicted_probability",
    documentation="Predicted probability of the positive class, by version and arm",
    labelnames=["version", "arm"],
    buckets=[round(0.05 * i, 2) for i in range(1, 21)],
)
# A regression's answers: their count and sum, so a dashboard plots the mean value. Its
# range is the table's, so the one bucket set in advance is at 0 (the negative values).
PREDICTED_VALUE = bentoml.metrics.Histogram(
    name="mlops_predicted_value",
    documentation="Predicted value of a regression, by version and arm",
    labelnames=["version", "arm"],
    buckets=[0.0, float("inf")],
)
PREDICTIONS = bentoml.metrics.Counter(
    name="mlops_predictions",
    documentation="Scored records by version, arm and predicted label",
    labelnames=["version", "arm", "label"],
)
SCORING_SECONDS = bentoml.metrics.Histogram(
    name="mlops_scoring_seconds",
    documentation="Time to score one batch, by version and arm; its count is batches scored",
    labelnames=["version", "arm"],
    buckets=[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
)
MODEL_INFO = bentoml.metrics.Gauge(
    name="mlops_model_info",
    documentation="The served model versions and their arms (value is always 1)",
    labelnames=["model", "version", "run_id", "arm"],
    multiprocess_mode="max",
)
EXPERIMENT_ACTIVE = bentoml.metrics.Gauge(
    name="mlops_experiment_active",
    documentation="1 while the challenger takes part, 0 when the experiment is off or failed",
    labelnames=["experiment", "mode"],
    multiprocess_mode="min",
)
UNAUTHORIZED = bentoml.metrics.Counter(
    name="mlops_unauthorized_requests",
    documentation="Requests refused (401) for a missing or wrong API key",
)
LOG_DROPPED = bentoml.metrics.Counter(
    name="mlops_prediction_log_dropped",
    documentation="Prediction-log entries dropped (queue full or write failed)",
)
SHADOW_DROPPED = bentoml.metrics.Counter(
    name="mlops_shadow_dropped",
    documentation="Rows the shadow challenger did not score (queue full or scoring failed)",
)


def observe(version: ServedVersion, arm: str, decided: Decided, seconds: float) -> None:
    """Count one scored batch in the per-version metrics."""
    version_arm = {"version": version.version, "arm": arm}
    SCORING_SECONDS.labels(**version_arm).observe(seconds)
    if "probability" in decided:
        observe_all(PREDICTED_PROBABILITY.labels(**version_arm), decided["probability"])
    if "value" in decided:
        observe_all(PREDICTED_VALUE.labels(**version_arm), decided["value"])
    if "label" in decided:
        for label, count in zip(*np.unique(decided["label"], return_counts=True), strict=True):
            PREDICTIONS.labels(**version_arm, label=str(label)).inc(int(count))


def count_rejection(field: str, kind: str) -> None:
    QUALITY_ISSUES.labels(field=field, kind=kind, outcome="rejected").inc()


def count_issues(masks: Mapping[str, np.ndarray], outcome: str) -> None:
    """Count `field:kind` -> rows masks (accepted surprises, or ignored fields)."""
    for issue, mask in masks.items():
        field, kind = issue.rsplit(":", 1)
        QUALITY_ISSUES.labels(field=field, kind=kind, outcome=outcome).inc(int(mask.sum()))
