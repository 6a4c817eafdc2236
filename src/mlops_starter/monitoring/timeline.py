"""Monitoring over time: the checks run on each window of the log (a day by default,
`monitor.window`), so every signal has a trend, every alert the window it began in,
and realized performance stands beside the estimate for the windows whose labels
have arrived.

The verdict is each check's newest assessed window: the newest with enough records
(`monitor.min_rows`), so a run early in the day still judges yesterday; for
performance, the newest window the labels cover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from mlops_starter.config import MonitorConfig
from mlops_starter.monitoring.checks import CHECKS, run_checks
from mlops_starter.monitoring.inputs import MonitorError, Reference, entries_of


def window_starts(timestamps: pd.Series, window: str) -> pd.Series:
    """Each entry's window, named by its start: time floored to the span, in UTC."""
    return timestamps.dt.floor(pd.Timedelta(window))


def run_over_time(
    log: pd.DataFrame,
    reference: Reference,
    settings: MonitorConfig,
    labels: pd.DataFrame | None = None,
    target: str | None = None,
    metrics_text: str | None = None,
) -> dict[str, Any]:
    """Every check on each window of `reference.version`'s log entries. The report
    holds each window's figures and alerts (`windows`), which one is current (the
    newest with enough records: the page details it), and the alerts of each check's
    newest assessed window, each with the start of the run of windows it has held in.
    The service's /metrics (`metrics_text`) describe now, so only the newest window
    reads them."""
    served = entries_of(log, reference.version)
    groups = list(served.groupby(window_starts(served["timestamp"], settings.window), sort=True))
    windows = [
        window_report(
            rows,
            start,
            reference,
            settings,
            labels,
            target,
            metrics_text if index == len(groups) - 1 else None,
        )
        for index, (start, rows) in enumerate(groups)
    ]
    return summarize(windows, reference, settings)


def window_report(
    rows: pd.DataFrame,
    start: pd.Timestamp,
    reference: Reference,
    settings: MonitorConfig,
    labels: pd.DataFrame | None,
    target: str | None,
    metrics_text: str | None,
) -> dict[str, Any]:
    """Every check on one window's entries, in a fixed order (time, then request, each
    request's records as logged), so the figures do not depend on which file or read
    brought a line: the estimate's and the bootstrap's draws follow the rows."""
    ordered = rows.sort_values(["timestamp", "request_id"], kind="stable")
    found = run_checks(ordered, reference, settings, labels, target, metrics_text)
    end = start + pd.Timedelta(settings.window)
    return {"start": start.isoformat(), "end": end.isoformat()} | {
        k: v for k, v in found.items() if k not in ("model", "version")
    }


def summarize(
    windows: list[dict[str, Any]], reference: Reference, settings: MonitorConfig
) -> dict[str, Any]:
    """The report over `windows` (in time order): which is current, and the alerts of
    each check's newest assessed window with when each began."""
    assessed = [i for i, w in enumerate(windows) if w["records"] >= settings.min_rows]
    current = assessed[-1] if assessed else len(windows) - 1
    alerts = []
    for check in dict.fromkeys(a["check"] for w in windows for a in w["alerts"]):
        newest = cast(int, newest_assessed(windows, check, settings))  # a window alerted
        alerts += [
            alert | {"began": _began(windows, newest, alert), "window": windows[newest]["start"]}
            for alert in windows[newest]["alerts"]
            if alert["check"] == check
        ]
    return {
        "model": reference.model,
        "version": reference.version,
        "window": settings.window,
        "settings": settings.model_dump(),  # the thresholds the alerts were judged by
        "records": sum(w["records"] for w in windows),
        "current": current,
        "windows": windows,
        "alerts": alerts,
        "retrain": retrain_decision(windows, settings),
    }


def retrain_decision(windows: list[dict[str, Any]], settings: MonitorConfig) -> dict[str, Any]:
    """Whether `monitor.retrain_when` holds: any of its checks alerted in at least
    `alerting_windows` of the last `of_last` windows with enough records."""
    rule = settings.retrain_when
    if unknown := [check for check in rule.checks if check not in CHECKS]:
        raise MonitorError(
            f"monitor.retrain_when.checks names {unknown}, which no check is; the checks: "
            f"{sorted(CHECKS)}"
        )
    assessed = [w for w in windows if w["records"] >= settings.min_rows][-rule.of_last :]
    alerting = [w["start"] for w in assessed if any(a["check"] in rule.checks for a in w["alerts"])]
    return {
        "due": len(alerting) >= rule.alerting_windows,
        "rule": f"{' or '.join(rule.checks)} alerting in {rule.alerting_windows} of the last "
        f"{rule.of_last} windows",
        "alerting_windows": alerting,
    }


def newest_assessed(
    windows: list[dict[str, Any]], check: str, settings: MonitorConfig
) -> int | None:
    """The newest window with enough records in which `check` was assessed (for
    performance, whose labels come late, the newest window they cover); None if none."""
    return next(
        (
            i
            for i in reversed(range(len(windows)))
            if (
                windows[i]["records"] >= settings.min_rows
                and check in windows[i]
                and "note" not in windows[i][check]
            )
            or any(a["check"] == check for a in windows[i]["alerts"])
        ),
        None,
    )


def _began(windows: list[dict[str, Any]], current: int, alert: dict[str, Any]) -> str:
    """The start of the unbroken run of windows, ending at `current`, in which the same
    check alerted on the same subject."""
    key = (alert["check"], alert["subject"])
    first = current
    while first > 0 and key in {(a["check"], a["subject"]) for a in windows[first - 1]["alerts"]}:
        first -= 1
    return str(windows[first]["start"])


@dataclass(frozen=True)
class Point:
    """One window's value of a signal, and the bounds beyond which it alerts."""

    value: float
    lower: float | None = None
    upper: float | None = None
    standard_error: float | None = None
    realized: float | None = None  # estimated performance: the labels' figure, once known


@dataclass
class Chart:
    """One trend plot: a line per subject (as the check's alerts name it), a point per
    window, None where the window did not assess it."""

    title: str
    check: str
    series: dict[str, list[Point | None]]


def trends(report: dict[str, Any], settings: MonitorConfig) -> list[Chart]:
    """The signals worth a trend line, from each window's figures."""
    windows = report["windows"]
    charts: dict[str, Chart] = {}

    def add(title: str, check: str, subject: str, index: int, point: Point) -> None:
        chart = charts.setdefault(title, Chart(title, check, {}))
        chart.series.setdefault(subject, [None] * len(windows))[index] = point

    for index, window in enumerate(windows):
        add("records per window", "system_health", "records", index, Point(window["records"]))
        realized = window.get("performance", {}).get("metrics", {})
        for name, score in window.get("estimated_performance", {}).get("scores", {}).items():
            floor = settings.min_estimated.get(name, float("-inf"))
            point = Point(
                score["estimate"],
                lower=max(score["lower_threshold"], floor),
                upper=score["upper_threshold"],
                standard_error=score["standard_error"],
                realized=realized.get(name),
            )
            add(f"estimated {name}", "estimated_performance", name, index, point)
        for name, row in window.get("data_drift", {}).items():
            point = Point(row["psi"], upper=settings.psi_threshold)
            add("data drift (PSI)", "data_drift", name, index, point)
        drift = window.get("prediction_drift", {})
        if "score_psi" in drift:  # binary
            point = Point(drift["score_psi"], upper=settings.psi_threshold)
            add("prediction drift (PSI)", "prediction_drift", "probability", index, point)
            allowed = drift["allowed_shift"]
            point = Point(drift["positive_rate_shift"], lower=-allowed, upper=allowed)
            add("predicted share shift", "prediction_drift", "positive_rate", index, point)
        for name, value in drift.get("psi", {}).items():
            point = Point(value, upper=settings.psi_threshold)
            add("prediction drift (PSI)", "prediction_drift", name, index, point)
        for label, value in drift.get("label_share_shift", {}).items():
            allowed = drift["allowed_share_shift"][label]
            point = Point(value, lower=-allowed, upper=allowed)
            add("predicted share shift", "prediction_drift", f"share of {label}", index, point)
    return list(charts.values())
