"""The monitor's verdict as Prometheus metrics, for the Grafana dashboard: `mlops monitor
--follow --export-metrics HOST:PORT` serves them, and Prometheus keeps their history, so
each window's figures become a step in a time series beside the service's own.

Every figure is the one the page shows: a check's value from its newest assessed window
(timeline.newest_assessed), the estimate with its error and learned threshold, the
realized score once labels cover a window, and the alerts per check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mlops_starter.config import MonitorConfig
from mlops_starter.monitoring.checks import CHECKS
from mlops_starter.monitoring.timeline import newest_assessed

PREFIX = "mlops_monitor_"


class ReportMetrics(Collector):
    """Collects from the newest report at each scrape: `update` swaps it in whole."""

    def __init__(self, settings: MonitorConfig) -> None:
        self.settings = settings
        self.report: dict[str, Any] | None = None
        self.updated = 0.0

    def update(self, report: dict[str, Any]) -> None:
        self.report = report
        self.updated = time.time()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        report = self.report
        if report is None:
            return
        windows = report["windows"]
        current = windows[report["current"]]
        yield _gauge(
            "last_pass_timestamp_seconds", "when the monitor last read the log", self.updated
        )
        yield _gauge(
            "window_start_timestamp_seconds",
            "start of the current window (the newest with monitor.min_rows records)",
            pd.Timestamp(current["start"]).timestamp(),
        )
        yield _gauge("window_records", "records in the current window", current["records"])
        alerts = GaugeMetricFamily(
            PREFIX + "alerts", "alerts each check raises now", labels=["check"]
        )
        for check in CHECKS:
            alerts.add_metric([check], sum(a["check"] == check for a in report["alerts"]))
        yield alerts
        yield _gauge(
            "retrain_due", "1 while monitor.retrain_when holds", float(report["retrain"]["due"])
        )
        yield from self._drift(windows)
        yield from self._performance(windows)

    def _assessed(self, windows: list[dict[str, Any]], check: str) -> dict[str, Any] | None:
        newest = newest_assessed(windows, check, self.settings)
        return None if newest is None else windows[newest].get(check)

    def _drift(self, windows: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
        features = self._assessed(windows, "data_drift") or {}
        psi = GaugeMetricFamily(
            PREFIX + "feature_psi", "each feature's PSI against training", labels=["feature"]
        )
        for feature, figures in features.items():
            if isinstance(figures, dict) and "psi" in figures:
                psi.add_metric([feature], figures["psi"])
        yield psi
        predictions = self._assessed(windows, "prediction_drift") or {}
        # Binary's one score, or each number another task answers (a class's
        # probability, the value).
        answered = {"probability": predictions["score_psi"]} if "score_psi" in predictions else {}
        answered |= predictions.get("psi", {})
        answers = GaugeMetricFamily(
            PREFIX + "prediction_psi",
            "each answered number's PSI against the test set's",
            labels=["answer"],
        )
        for answer, value in answered.items():
            answers.add_metric([answer], value)
        yield answers

    def _performance(self, windows: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
        estimated = (self._assessed(windows, "estimated_performance") or {}).get("scores", {})
        families = {
            "estimate": ("estimated_score", "performance estimated before labels (CBPE)"),
            "standard_error": ("estimated_score_standard_error", "the estimate's sampling error"),
            "lower_threshold": ("estimated_score_lower_threshold", "an estimate below alerts"),
        }
        for key, (name, documentation) in families.items():
            family = GaugeMetricFamily(PREFIX + name, documentation, labels=["metric"])
            for metric, figures in estimated.items():
                if figures.get(key) is not None:
                    family.add_metric([metric], figures[key])
            yield family
        realized = (self._assessed(windows, "performance") or {}).get("metrics", {})
        family = GaugeMetricFamily(
            PREFIX + "realized_score",
            "performance on the labels, in the newest window they cover",
            labels=["metric"],
        )
        for metric, value in realized.items():
            if isinstance(value, int | float):
                family.add_metric([metric], value)
        yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value)


def serve_metrics(listen: str, metrics: ReportMetrics) -> None:
    """Serve `metrics` on http://HOST:PORT/metrics from a daemon thread."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    start_http_server(int(port), addr=host, registry=registry)
