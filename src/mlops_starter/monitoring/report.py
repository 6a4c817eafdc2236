"""The monitoring report as one self-contained HTML page: alerts first, then each
check's figures, with reference-vs-served plots (matplotlib, embedded as PNG).

Hand-written rather than Evidently: the checks and their thresholds are ours (the
same figures as the JSON summary), and a page of tables plus a few bar charts does
not justify a large dependency pinned against the rest of the stack."""

from __future__ import annotations

import base64
import html
import io
import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mlops_starter.config import MonitorConfig
from mlops_starter.monitoring.checks import CHECKS, WHAT_TO_DO, binned_shares, category_shares
from mlops_starter.monitoring.inputs import Reference, entries_of, feature_frame
from mlops_starter.monitoring.timeline import Chart, Point, trends, window_starts
from mlops_starter.storage import write_json, write_text

PLOTTED_FEATURES = 6


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _bars(title: str, labels: list[str], reference: np.ndarray, current: np.ndarray) -> str:
    figure, axis = plt.subplots(figsize=(5, 2.6))
    positions = np.arange(len(labels))
    axis.bar(positions - 0.2, reference, width=0.4, label="training / test set")
    axis.bar(positions + 0.2, current, width=0.4, label="served")
    axis.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
    axis.set_title(title, fontsize=9)
    axis.set_ylabel("share")
    axis.legend(fontsize=7)
    return _png(figure)


def _feature_plot(name: str, values: pd.Series, spec: dict[str, Any]) -> str:
    if spec["kind"] == "category":
        current, _ = category_shares(values.dropna(), spec["categories"])
        return _bars(
            name, list(spec["categories"]), np.array(list(spec["categories"].values())), current
        )
    edges = spec["bin_edges"]
    current, _ = binned_shares(pd.to_numeric(values, errors="coerce").dropna(), edges)
    labels = [f"{lo:.3g} to {hi:.3g}" for lo, hi in itertools.pairwise(edges)]
    return _bars(name, labels, np.array(spec["bin_shares"]), current)


def _cell(value: Any) -> str:
    """A figure as a person reads it: 4 significant digits, a dict of rows as a table
    with a column per key, another dict as a nested table, a list as its items."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        if value and all(isinstance(row, dict) for row in value.values()):
            columns = list(dict.fromkeys(key for row in value.values() for key in row))
            head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in columns)
            body = "".join(
                f"<tr><th>{html.escape(str(name))}</th>"
                + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns)
                + "</tr>"
                for name, row in value.items()
            )
            return f"<table><tr><th></th>{head}</tr>{body}</table>"
        return _table(value)
    if isinstance(value, list):
        return ", ".join(_cell(item) for item in value)
    return html.escape(str(value))


def _table(rows: dict[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(key).replace('_', ' '))}</th><td>{_cell(value)}</td></tr>"
        for key, value in rows.items()
    )
    return f"<table>{body}</table>"


def _field(points: list[tuple[int, Point]], name: str) -> np.ndarray:
    """One field of each point, NaN where it has none."""
    found = [getattr(point, name) for _, point in points]
    return np.array([np.nan if v is None else v for v in found], dtype=float)


def _trend_plot(chart: Chart, starts: np.ndarray, alerting: list[set[str]]) -> str:
    """One signal over the windows (`starts`, datetime64): its value, the band or
    threshold it alerts beyond, ± 1 standard error and the realized figure where known;
    red where it alerted."""
    figure, axis = plt.subplots(figsize=(5.5, 2.6))
    subjects = sorted(
        chart.series, key=lambda s: -max((abs(p.value) for p in chart.series[s] if p), default=0)
    )[:PLOTTED_FEATURES]
    for subject in subjects:
        shown = [(i, p) for i, p in enumerate(chart.series[subject]) if p is not None]
        times = starts[[i for i, _ in shown]]
        values = np.array([p.value for _, p in shown], dtype=float)

        (line,) = axis.plot(times, values, marker=".", label=subject)
        color = line.get_color()
        if not np.isnan(errors := _field(shown, "standard_error")).all():
            axis.errorbar(times, values, yerr=errors, fmt="none", color=color)
        for bound in ("lower", "upper"):
            if not np.isnan(limits := _field(shown, bound)).all():
                axis.plot(times, limits, linestyle="--", linewidth=0.8, color=color)
        if not np.isnan(realized := _field(shown, "realized")).all():
            axis.plot(times, realized, "x", color="black", label="realized")
        red = np.array([subject in alerting[i] for i, _ in shown], dtype=bool)
        if red.any():
            axis.plot(times[red], values[red], "o", color="red", fillstyle="none", markersize=9)
    axis.set_title(f"{chart.title}: dashed, its thresholds; red, an alert", fontsize=9)
    axis.tick_params(axis="x", labelsize=7, rotation=30)
    axis.legend(fontsize=7)
    return _png(figure)


def write_report(
    report: dict[str, Any], log: pd.DataFrame, reference: Reference, folder: str | Path
) -> Path:
    """`monitoring.json` (the figures of each window) and `monitoring.html` (the page)
    in `folder`; the page's distributions are the current window's entries of `log`.
    Returns the page."""
    folder = Path(folder)
    write_json(folder / "monitoring.json", report)
    current = report["windows"][report["current"]]
    served = entries_of(log, reference.version)
    served = served[
        window_starts(served["timestamp"], report["window"]) == pd.Timestamp(current["start"])
    ]
    answers = reference.answers
    profile = reference.score_profile
    # Binary's reference is one series' bins; another task's names a series each.
    bins = profile.get("series", {"probability": profile})
    settings_used = MonitorConfig.model_validate(report["settings"])
    _render(
        report,
        trends(report, settings_used),
        feature_frame(served),
        answers.drift_series(answers.from_log(served)),
        reference.feature_profile,
        bins,
        folder / "monitoring.html",
    )
    return folder / "monitoring.html"


def _when(timestamp: str) -> str:
    """A window's start as a person reads it: date and minute, UTC."""
    return html.escape(timestamp[:16].replace("T", " "))


def _alert_table(alerts: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(a['check'].replace('_', ' '))}</td>"
        f"<td>{html.escape(a['subject'])}</td><td>{html.escape(a['message'])}</td>"
        f"<td>{_when(a['began'])}</td><td>{_when(a['window'])}</td>"
        f"<td>{html.escape(WHAT_TO_DO.get(a['check'], ''))}</td></tr>"
        for a in alerts
    )
    head = (
        "<tr><th>check</th><th>subject</th><th>what</th><th>since the window from</th>"
        "<th>up to the window from</th><th>what to do</th></tr>"
    )
    return f'<table class="alerts">{head}{rows}</table>'


def _retrain_line(retrain: dict[str, Any]) -> str:
    """Whether monitor.retrain_when holds, and on which windows."""
    if not retrain["due"]:
        return f'<p class="retrain">Retrain not due ({html.escape(retrain["rule"])}).</p>'
    windows = ", ".join(_when(start) for start in retrain["alerting_windows"])
    return (
        f'<p class="retrain"><b>Retrain due</b>: {html.escape(retrain["rule"])} holds, on '
        f"the windows from {windows}. The scheduled workflow starts retrain.yml; its version "
        "must pass the gate, then a shadow experiment, before it can be promoted.</p>"
    )


def _window_table(report: dict[str, Any]) -> str:
    rows = ""
    for index, window in enumerate(report["windows"]):
        alerts = window["alerts"]
        said = ", ".join(
            sorted({f"{a['check'].replace('_', ' ')}: {a['subject']}" for a in alerts})
        )
        css = ' class="alerting"' if alerts else ""
        mark = " (current)" if index == report["current"] else ""
        rows += (
            f"<tr{css}><td>{_when(window['start'])}{mark}</td>"
            f"<td>{window['records']}</td><td>{len(alerts)}</td><td>{html.escape(said)}</td></tr>"
        )
    head = "<tr><th>window from</th><th>records</th><th>alerts</th><th>on</th></tr>"
    return f'<table class="windows">{head}{rows}</table>'


def _render(
    report: dict[str, Any],
    charts: list[Chart],
    features: pd.DataFrame,
    series: dict[str, np.ndarray],
    profile: dict[str, dict[str, Any]],
    bins: dict[str, dict[str, Any]],
    path: Path,
) -> None:
    windows = report["windows"]
    current = windows[report["current"]]
    when = _when(current["start"])
    alerts = report["alerts"]
    status = f"{len(alerts)} alert(s)" if alerts else "no alerts"
    starts = pd.to_datetime([w["start"] for w in windows]).to_numpy()
    trend_plots = ""
    for chart in charts:
        alerting = [
            {a["subject"] for a in w["alerts"] if a["check"] == chart.check} for w in windows
        ]
        trend_plots += _trend_plot(chart, starts, alerting)
    ranked = list(current.get("data_drift", {}))[:PLOTTED_FEATURES]
    plots = "".join(_feature_plot(n, features[n], profile[n]) for n in ranked if n in features)
    score_plot = ""
    for name, values in series.items():
        edges = bins[name]["bin_edges"]
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
        score_plot += _bars(
            f"predicted {name}",
            [f"{lo:.3g} to {hi:.3g}" for lo, hi in itertools.pairwise(edges)],
            np.array(bins[name]["bin_shares"]),
            counts / max(len(values), 1),
        )
    sections = "".join(
        f"<h3>{name.replace('_', ' ')}</h3>{_cell(current[name])}"
        for name in CHECKS
        if name in current
    )
    if "experiment" in report:
        sections += f"<h2>experiment</h2>{_cell(report['experiment'])}"
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Monitoring: {html.escape(report["model"])} version {html.escape(report["version"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}}
.alerts td,.windows tr.alerting td{{background:#fde8e8}} img{{margin:4px}}</style></head><body>
<h1>{html.escape(report["model"])} version {html.escape(report["version"])}: {status}</h1>
<p>{report["records"]} served records in {len(windows)} window(s) of {html.escape(report["window"])}
from {_when(windows[0]["start"])} (UTC). Each check is judged on its newest window with enough
records, or, for performance, with enough labels.</p>
{_alert_table(alerts)}
{_retrain_line(report["retrain"])}
<h2>Over time</h2>{_window_table(report)}{trend_plots}
<h2>The window from {when}: {current["records"]} records</h2>
{score_plot}{plots}
{sections}
</body></html>"""
    write_text(path, page)
