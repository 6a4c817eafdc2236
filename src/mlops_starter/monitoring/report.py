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

from mlops_starter.monitoring.checks import CHECKS, binned_shares, category_shares
from mlops_starter.monitoring.inputs import Reference, entries_of, feature_frame
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


def write_report(
    report: dict[str, Any], log: pd.DataFrame, reference: Reference, folder: str | Path
) -> Path:
    """`monitoring.json` (the figures) and `monitoring.html` (the page) in `folder`,
    for the entries of `log` that `reference.version` answered; returns the page."""
    folder = Path(folder)
    served = entries_of(log, reference.version)
    write_json(folder / "monitoring.json", report)
    answers = reference.answers
    profile = reference.score_profile
    # Binary's reference is one series' bins; another task's names a series each.
    bins = profile.get("series", {"probability": profile})
    _render(
        report,
        feature_frame(served),
        answers.drift_series(answers.from_log(served)),
        reference.feature_profile,
        bins,
        folder / "monitoring.html",
    )
    return folder / "monitoring.html"


def _render(
    report: dict[str, Any],
    features: pd.DataFrame,
    series: dict[str, np.ndarray],
    profile: dict[str, dict[str, Any]],
    bins: dict[str, dict[str, Any]],
    path: Path,
) -> None:
    alerts = report["alerts"]
    alert_rows = "".join(
        f"<tr><td>{html.escape(a['check'])}</td><td>{html.escape(a['subject'])}</td>"
        f"<td>{html.escape(a['message'])}</td></tr>"
        for a in alerts
    )
    status = f"{len(alerts)} alert(s)" if alerts else "no alerts"
    ranked = list(report.get("data_drift", {}))[:PLOTTED_FEATURES]
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
        f"<h2>{name.replace('_', ' ')}</h2>{_cell(report[name])}"
        for name in [*CHECKS, "experiment"]
        if name in report
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Monitoring: {html.escape(report["model"])} version {html.escape(report["version"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}}
.alerts td{{background:#fde8e8}} img{{margin:4px}}</style></head><body>
<h1>{html.escape(report["model"])} version {html.escape(report["version"])}: {status}</h1>
<p>{report["records"]} served records.</p>
<table class="alerts"><tr><th>check</th><th>subject</th><th>what</th></tr>{alert_rows}</table>
<h2>Served against reference</h2>{score_plot}{plots}
{sections}
</body></html>"""
    write_text(path, page)
