"""Monitoring: compare what the service saw and answered (the prediction log) with the
reference recorded at training time, and say what is wrong.

Immediate signals need only the log: input quality, data drift, prediction drift,
system health. Performance needs ground truth, which arrives later: a labels file
joined by id. Every check yields figures; a figure beyond its threshold in
params.yaml (`monitor:`) is an alert.

The checks are one registry, CHECKS: `run_checks` runs them and the report shows them
in its order. A team's own check is one function decorated `@monitoring_check("name")`
in a module named in params.yaml `extensions`, its settings under `monitor.custom.name`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats

from mlops_starter.config import MonitorConfig
from mlops_starter.expected_performance import estimated_scores
from mlops_starter.monitoring.inputs import MonitorError, Reference, entries_of, feature_frame
from mlops_starter.tasks import TASKS, Answers
from mlops_starter.tasks.binary import BinaryAnswers

PSI_FLOOR = 1e-4  # share used for an empty bin, so PSI stays finite
BOOTSTRAP_SAMPLES = 100  # resamples of a window's labelled rows, for its metrics' errors


@dataclass(frozen=True)
class Alert:
    check: str  # its name in CHECKS
    subject: str  # feature, metric or signal
    value: float
    threshold: float
    message: str


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins."""
    ref = np.clip(reference, PSI_FLOOR, None)
    cur = np.clip(current, PSI_FLOOR, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def binned_shares(values: pd.Series, edges: list[float]) -> tuple[np.ndarray, int]:
    """Shares of the in-range values per reference bin, and how many were in range."""
    inside = values[(values >= edges[0]) & (values <= edges[-1])].astype(float)
    counts, _ = np.histogram(inside, bins=edges)
    return counts / max(len(inside), 1), len(inside)


def category_shares(values: pd.Series, categories: dict[str, float]) -> tuple[np.ndarray, int]:
    """Shares of the known categories, and how many values were known."""
    known = values[values.isin(list(categories))]
    counts = known.value_counts().reindex(list(categories), fill_value=0).to_numpy()
    return counts / max(len(known), 1), len(known)


def input_quality(
    features: pd.DataFrame, profile: dict[str, dict[str, Any]], settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]]:
    """Per feature: missing rate against training, out-of-range and unseen-category
    rates; a field absent from every record is a schema violation."""
    figures: dict[str, Any] = {}
    alerts = []
    for name, spec in profile.items():
        if name not in features:
            figures[name] = {"present": False}
            alerts.append(
                Alert("input_quality", name, 1.0, 0.0, f"{name}: absent from every record")
            )
            continue
        values = features[name]
        missing = float(values.isna().mean())
        row = {"missing_rate": missing, "reference_missing_rate": spec["missing_rate"]}
        if spec["kind"] == "category":
            present = values.dropna()
            row["unseen_category_rate"] = (
                float((~present.isin(list(spec["categories"]))).mean()) if len(present) else 0.0
            )
            row["unseen_examples"] = sorted(set(present[~present.isin(list(spec["categories"]))]))[
                :5
            ]
            rate_key = "unseen_category_rate"
        else:
            numbers = pd.to_numeric(values, errors="coerce").dropna()
            outside = (numbers < spec["min"]) | (numbers > spec["max"])
            row["out_of_range_rate"] = float(outside.mean()) if len(numbers) else 0.0
            rate_key = "out_of_range_rate"
        figures[name] = row
        increase = missing - spec["missing_rate"]
        if increase > settings.max_missing_rate_increase:
            alerts.append(
                Alert(
                    "input_quality",
                    name,
                    increase,
                    settings.max_missing_rate_increase,
                    f"{name}: missing rate {missing:.1%} against {spec['missing_rate']:.1%} in training",
                )
            )
        if row[rate_key] > settings.max_issue_rate:
            kind = rate_key.removesuffix("_rate").replace("_", " ")
            alerts.append(
                Alert(
                    "input_quality",
                    name,
                    row[rate_key],
                    settings.max_issue_rate,
                    f"{name}: {kind} in {row[rate_key]:.1%} of records",
                )
            )
    return figures, alerts


def data_drift(
    features: pd.DataFrame, profile: dict[str, dict[str, Any]], settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]]:
    """Per feature, PSI over the training bins (deciles, or the categories) and a
    chi-square test of the same counts, on values input quality did not flag.
    Returns features ranked by PSI."""
    figures = {}
    for name, spec in profile.items():
        if name not in features:
            continue
        values = features[name].dropna()
        if spec["kind"] == "category":
            reference = np.array(list(spec["categories"].values()))
            current, n = category_shares(values, spec["categories"])
        else:
            reference = np.array(spec["bin_shares"])
            current, n = binned_shares(
                pd.to_numeric(values, errors="coerce").dropna(), spec["bin_edges"]
            )
        if n < settings.min_rows or len(reference) < 2:
            continue
        expected = np.clip(reference, PSI_FLOOR, None)
        expected = expected / expected.sum() * n
        p_value = float(stats.chisquare(np.round(current * n), expected).pvalue)
        figures[name] = {
            "psi": round(psi(reference, current), 4),
            "chi2_p_value": p_value,
            "rows": n,
        }
    ranked = dict(sorted(figures.items(), key=lambda item: -item[1]["psi"]))
    alerts = [
        Alert(
            "data_drift",
            name,
            row["psi"],
            settings.psi_threshold,
            f"{name}: PSI {row['psi']:.3f} (chi-square p={row['chi2_p_value']:.1e})",
        )
        for name, row in ranked.items()
        if row["psi"] > settings.psi_threshold
    ]
    return ranked, alerts


def prediction_drift(
    probabilities: np.ndarray, threshold: float, reference: dict[str, Any], settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]]:
    """PSI of the served probabilities over the test-set score bins, and the shift
    of the predicted positive rate."""
    counts, _ = np.histogram(probabilities, bins=reference["bin_edges"])
    score_psi = psi(np.array(reference["bin_shares"]), counts / len(probabilities))
    rate = float(np.mean(probabilities >= threshold))
    shift = rate - reference["predicted_positive_rate"]
    figures = {
        "score_psi": round(score_psi, 4),
        "predicted_positive_rate": rate,
        "reference_predicted_positive_rate": reference["predicted_positive_rate"],
        "positive_rate_shift": shift,
        "allowed_shift": allowed_shift(
            reference["predicted_positive_rate"], len(probabilities), settings
        ),
        "mean_probability": float(np.mean(probabilities)),
    }
    alerts = []
    if score_psi > settings.psi_threshold:
        alerts.append(
            Alert(
                "prediction_drift",
                "probability",
                score_psi,
                settings.psi_threshold,
                f"predicted probabilities: PSI {score_psi:.3f} against the test set",
            )
        )
    if abs(shift) > figures["allowed_shift"]:
        alerts.append(
            Alert(
                "prediction_drift",
                "positive_rate",
                shift,
                settings.max_positive_rate_shift,
                f"predicted positive rate {rate:.1%} against {reference['predicted_positive_rate']:.1%} on the test set",
            )
        )
    return figures, alerts


def allowed_shift(share: float, rows: int, settings: MonitorConfig) -> float:
    """How far a predicted share may move before it alerts: `max_positive_rate_shift`,
    or 3 sampling standard errors of the reference share at this many rows if more, so
    that a small window (a day of light traffic) does not alert by chance."""
    return max(settings.max_positive_rate_shift, 3 * float(np.sqrt(share * (1 - share) / rows)))


def answer_drift(
    series: dict[str, np.ndarray],
    labels: np.ndarray | None,
    reference: dict[str, Any],
    settings: MonitorConfig,
) -> tuple[dict[str, Any], list[Alert]]:
    """Another task's prediction drift: PSI of each number answered (a class's
    probability, the value) over its test-set bins, values beyond the test's range in
    the end bins; and the shift of each class's share of the decided labels."""
    figures: dict[str, Any] = {"psi": {}, "mean": {}}
    alerts = []
    for name, values in series.items():
        bins = reference["series"][name]
        edges = bins["bin_edges"]
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
        found = psi(np.array(bins["bin_shares"]), counts / len(values))
        figures["psi"][name] = round(found, 4)
        figures["mean"][name] = float(np.mean(values))
        if found > settings.psi_threshold:
            alerts.append(
                Alert(
                    "prediction_drift",
                    name,
                    found,
                    settings.psi_threshold,
                    f"predicted {name}: PSI {found:.3f} against the test set",
                )
            )
    if labels is not None:
        shares = reference["label_shares"]
        found_labels, counts = np.unique(labels.astype(str), return_counts=True)
        now = dict(zip(found_labels.tolist(), (counts / len(labels)).tolist(), strict=True))
        shifts = {label: now.get(label, 0.0) - share for label, share in shares.items()}
        allowed = {
            label: allowed_shift(share, len(labels), settings) for label, share in shares.items()
        }
        figures["label_share_shift"] = shifts
        figures["allowed_share_shift"] = allowed
        for label, shift in shifts.items():
            if abs(shift) > allowed[label]:
                alerts.append(
                    Alert(
                        "prediction_drift",
                        f"share of {label}",
                        shift,
                        settings.max_positive_rate_shift,
                        f"class {label} predicted for {now.get(label, 0.0):.1%} of records "
                        f"against {shares[label]:.1%} on the test set",
                    )
                )
    return figures, alerts


# What an estimate before labels takes for granted; the report says so beside it.
ESTIMATE_ASSUMPTIONS = (
    "Estimated from the served probabilities (CBPE), which holds while they stay calibrated: "
    "they were calibrated out of fold; the labels' dependence on the features is as in "
    "training (no concept drift: a drop it causes is not seen here); and no rows lie "
    "outside the training range, where calibration was never checked."
)


def estimated_performance(
    probabilities: np.ndarray,
    decided: np.ndarray,
    reference: dict[str, Any],
    settings: MonitorConfig,
) -> tuple[dict[str, Any], list[Alert]]:
    """Each class score expected of the served answers before their labels arrive, with
    its standard error, against a band learned from the test set: its realized score ±
    3 sampling deviations at this many rows (NannyML's rule). Below the band, or below
    a bar in `monitor.min_estimated`, is an alert."""
    rows = len(decided)
    scale = float(np.sqrt(reference["spread_rows"] / rows))
    figures: dict[str, Any] = {"rows": rows, "scores": {}, "assumptions": ESTIMATE_ASSUMPTIONS}
    alerts = []
    for name, found in estimated_scores(probabilities, decided).items():
        value, band = reference["scores"][name], 3 * reference["spread"][name] * scale
        lower = value - band
        figures["scores"][name] = found | {
            "reference": value,
            "lower_threshold": lower,
            "upper_threshold": value + band,
        }
        estimate = found["estimate"]
        said = f"estimated {name} {estimate:.3f} ± {found['standard_error']:.3f} before labels"
        if estimate < lower:
            alerts.append(
                Alert(
                    "estimated_performance",
                    name,
                    estimate,
                    lower,
                    f"{said}, below {lower:.3f}: the test set's {value:.3f} less 3 "
                    f"sampling deviations at {rows} rows",
                )
            )
        elif name in settings.min_estimated and estimate < settings.min_estimated[name]:
            bar = settings.min_estimated[name]
            alerts.append(
                Alert(
                    "estimated_performance",
                    name,
                    estimate,
                    bar,
                    f"{said}, below monitor.min_estimated.{name} {bar:.3f}",
                )
            )
    return figures, alerts


def performance(
    log: pd.DataFrame,
    labels: pd.DataFrame,
    id_column: str,
    target: str,
    answers: Answers,
    reference_metrics: dict[str, float],
    settings: MonitorConfig,
) -> tuple[dict[str, Any], list[Alert]]:
    """The task's metrics of the served answers once their labels are known (the labels
    table has the training table's id and target columns), against the model version's
    test metrics; a drop is a score's fall or an error's rise."""
    if missing := [c for c in (id_column, target) if c not in labels.columns]:
        raise MonitorError(f"the labels table lacks {missing}; it has {list(labels.columns)}")
    served = log.dropna(subset=["id"]).astype({"id": str})
    truth = labels[[id_column, target]].rename(columns={id_column: "id"}).astype({"id": str})
    joined = served.merge(truth.drop_duplicates("id", keep="last"), on="id", how="inner")
    figures: dict[str, Any] = {"labelled_rows": len(joined)}
    if len(joined) < settings.min_rows:
        figures["note"] = f"fewer than {settings.min_rows} labelled rows: not assessed"
        return figures, []
    decided = answers.from_log(joined)
    metrics = answers.realized(decided, joined[target])
    if isinstance(metrics, str):
        figures["note"] = f"{metrics}: not assessed"
        return figures, []
    higher_is_better = TASKS[answers.task].metrics
    drops = {}
    for metric in settings.max_metric_drop:
        if metric in reference_metrics and metric in metrics:
            drop = reference_metrics[metric] - metrics[metric]
            drops[metric] = drop if higher_is_better.get(metric, True) else -drop
    # Only a drop past its bar needs its error: resampling costs a second per window.
    over = [m for m, drop in drops.items() if drop > settings.max_metric_drop[m]]
    errors = _bootstrap_errors(answers, decided, joined[target], over) if over else {}
    figures |= {
        "metrics": metrics,
        "reference": reference_metrics,
        "drops": drops,
        "standard_errors": errors,
    }
    alerts = []
    for metric in over:
        allowed = max(settings.max_metric_drop[metric], 3 * errors[metric])
        if drops[metric] > allowed:
            alerts.append(
                Alert(
                    "performance",
                    metric,
                    drops[metric],
                    allowed,
                    f"{metric} {metrics[metric]:.3f} ± {errors[metric]:.3f} against "
                    f"{reference_metrics[metric]:.3f} on the test set",
                )
            )
    return figures, alerts


def _bootstrap_errors(
    answers: Answers, decided: dict[str, np.ndarray], actual: pd.Series, metrics: Sequence[str]
) -> dict[str, float]:
    """Each metric's standard error over BOOTSTRAP_SAMPLES resamples of the labelled rows.
    A drop counts only beyond 3 of them as well as beyond `max_metric_drop`: a day with a
    few dozen positives would otherwise alert on chance alone."""
    rng = np.random.default_rng(0)
    found: dict[str, list[float]] = {metric: [] for metric in metrics}
    for _ in range(BOOTSTRAP_SAMPLES):
        rows = rng.integers(0, len(actual), len(actual))
        sample = answers.realized({k: v[rows] for k, v in decided.items()}, actual.iloc[rows])
        if isinstance(sample, dict):  # a resample can lack a class: it has no such score
            for metric in metrics:
                found[metric].append(sample[metric])
    return {metric: float(np.std(values)) if values else 0.0 for metric, values in found.items()}


def system_health(
    log: pd.DataFrame, metrics_text: str | None, settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]]:
    """Traffic from the log; latency and errors from the service's /metrics when given."""
    span = (log["timestamp"].max() - log["timestamp"].min()).total_seconds()
    figures: dict[str, Any] = {
        "records": len(log),
        "requests": int(log["request_id"].nunique()),
        "from": log["timestamp"].min().isoformat(),
        "to": log["timestamp"].max().isoformat(),
        "records_per_minute": round(len(log) / max(span / 60, 1e-9), 1) if span > 0 else None,
        "model_versions": sorted(log["model_version"].astype(str).unique().tolist()),
    }
    alerts: list[Alert] = []
    if metrics_text is None:
        return figures, alerts
    statuses: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if (
                sample.name == "bentoml_service_request_total"
                and sample.labels.get("endpoint") == "/predict"
            ):
                code = sample.labels.get("http_response_code", "?")
                statuses[code] = statuses.get(code, 0) + sample.value
            if (
                sample.name == "bentoml_service_request_duration_seconds_bucket"
                and sample.labels.get("endpoint") == "/predict"
            ):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0) + sample.value
    total = sum(statuses.values())
    server_errors = sum(v for code, v in statuses.items() if code.startswith("5"))
    client_errors = sum(v for code, v in statuses.items() if code.startswith("4"))
    figures |= {
        "predict_requests": total,
        "status_counts": statuses,
        "server_error_rate": server_errors / total if total else 0.0,
        "client_error_rate": client_errors / total if total else 0.0,
        "latency_p50_s": _histogram_quantile(buckets, 0.5),
        "latency_p99_s": _histogram_quantile(buckets, 0.99),
    }
    if figures["server_error_rate"] > settings.max_error_rate:
        alerts.append(
            Alert(
                "system_health",
                "server_errors",
                figures["server_error_rate"],
                settings.max_error_rate,
                f"{figures['server_error_rate']:.1%} of /predict requests failed with 5xx",
            )
        )
    if figures["client_error_rate"] > settings.max_rejected_rate:
        alerts.append(
            Alert(
                "input_quality",
                "rejected_requests",
                figures["client_error_rate"],
                settings.max_rejected_rate,
                f"{figures['client_error_rate']:.1%} of /predict requests were refused (4xx): schema violations",
            )
        )
    p99 = figures["latency_p99_s"]
    if p99 is not None and p99 > settings.max_latency_p99_s:
        alerts.append(
            Alert(
                "system_health",
                "latency_p99",
                p99,
                settings.max_latency_p99_s,
                f"p99 latency {p99 * 1000:.0f} ms",
            )
        )
    return figures, alerts


def _histogram_quantile(buckets: dict[float, float], quantile: float) -> float | None:
    """Upper bound of the first cumulative bucket reaching the quantile (as Prometheus would)."""
    if not buckets or max(buckets.values()) == 0:
        return None
    total = buckets[max(buckets)]
    for bound in sorted(buckets):
        if buckets[bound] >= quantile * total:
            return bound if np.isfinite(bound) else None
    return None


@dataclass(frozen=True)
class Window:
    """What every check is given: the log entries of one model version and what they
    are compared with."""

    served: pd.DataFrame  # the prediction log's entries of reference.version
    features: pd.DataFrame  # their inputs, one column per feature
    decided: dict[str, np.ndarray]  # their answers' fields (Answers.from_log)
    reference: Reference  # what the version recorded at training time
    labels: pd.DataFrame | None  # ground truth by id, once it arrives
    target: str | None  # the labels' target column
    metrics_text: str | None  # the service's /metrics, when it was reached


# A check returns its figures and alerts, or None when it cannot be assessed at all
# (performance without labels): it is then left out of the report.
Check = Callable[[Window, MonitorConfig], tuple[dict[str, Any], list[Alert]] | None]
CHECKS: dict[str, Check] = {}
WHAT_TO_DO: dict[str, str] = {}  # by check name: the page's advice beside each alert


def monitoring_check(name: str, what_to_do: str = "") -> Callable[[Check], Check]:
    """Register `check` under `name`: its figures become report[name], its section on
    the page is titled after it, and `what_to_do` stands beside each of its alerts."""

    def register(check: Check) -> Check:
        CHECKS[name] = check
        WHAT_TO_DO[name] = what_to_do
        return check

    return register


@monitoring_check(
    "input_quality",
    "Find the client or upstream job sending these values (the log names each request); "
    "fix it, or retrain if the values are now legitimate.",
)
def _input_quality(window: Window, settings: MonitorConfig) -> tuple[dict[str, Any], list[Alert]]:
    return input_quality(window.features, window.reference.feature_profile, settings)


@monitoring_check(
    "data_drift",
    "See in the plots whether the feature really moved. If the world changed, retrain on "
    "recent rows (the gate and a shadow experiment decide); if a source broke, fix it.",
)
def _data_drift(window: Window, settings: MonitorConfig) -> tuple[dict[str, Any], list[Alert]]:
    return data_drift(window.features, window.reference.feature_profile, settings)


@monitoring_check(
    "prediction_drift",
    "Read it beside data drift, which usually explains it; without input drift, check "
    "the served version and the features' upstream pipeline.",
)
def _prediction_drift(
    window: Window, settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]]:
    reference = window.reference
    if isinstance(reference.answers, BinaryAnswers):
        return prediction_drift(
            window.decided["probability"],
            reference.answers.threshold,
            reference.score_profile,
            settings,
        )
    return answer_drift(
        reference.answers.drift_series(window.decided),
        window.decided.get("label"),
        reference.score_profile,
        settings,
    )


@monitoring_check(
    "estimated_performance",
    "Performance is expected to fall: find the cause in data drift, get labels for these "
    "windows early if you can, and retrain on recent rows.",
)
def _estimated_performance(
    window: Window, settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]]:
    reference = window.reference
    classified = reference.answers.class_probabilities(window.decided)
    if classified is None:
        note = (
            "not estimated for a regression: its interval has one width for every row, "
            "so it holds no per-row error to expect"
        )
    elif "performance" not in reference.score_profile:
        note = (
            f"version {reference.version}'s evaluation recorded no test-set class scores to "
            "estimate against (it predates estimates); a version evaluated now has them"
        )
    elif len(window.served) < settings.min_rows:
        note = f"fewer than {settings.min_rows} records: not estimated"
    else:
        return estimated_performance(*classified, reference.score_profile["performance"], settings)
    return {"note": note}, []


@monitoring_check(
    "performance",
    "The labels confirm a drop: retrain on recent rows, or roll back (`make rollback`) "
    "if a new version brought it.",
)
def _performance(
    window: Window, settings: MonitorConfig
) -> tuple[dict[str, Any], list[Alert]] | None:
    if window.labels is None:
        return None
    reference = window.reference
    if not reference.id_column or not window.target:
        raise MonitorError("joining labels needs the model's id column and the target column")
    return performance(
        window.served,
        window.labels,
        reference.id_column,
        window.target,
        reference.answers,
        reference.test_metrics,
        settings,
    )


@monitoring_check(
    "system_health",
    "Read the service's logs and /metrics: scale out for latency, roll back for new 5xx "
    "errors, find the client sending refused requests.",
)
def _system_health(window: Window, settings: MonitorConfig) -> tuple[dict[str, Any], list[Alert]]:
    return system_health(window.served, window.metrics_text, settings)


def run_checks(
    log: pd.DataFrame,
    reference: Reference,
    settings: MonitorConfig,
    labels: pd.DataFrame | None = None,
    target: str | None = None,
    metrics_text: str | None = None,
) -> dict[str, Any]:
    """Every check in CHECKS on the log entries of `reference.version`; the report's
    `alerts` lists what is beyond its threshold."""
    served = entries_of(log, reference.version)
    window = Window(
        served=served,
        features=feature_frame(served),
        decided=reference.answers.from_log(served),
        reference=reference,
        labels=labels,
        target=target,
        metrics_text=metrics_text,
    )
    report: dict[str, Any] = {
        "model": reference.model,
        "version": reference.version,
        "records": len(served),
    }
    alerts: list[Alert] = []
    for name, check in CHECKS.items():
        if (found := check(window, settings)) is not None:
            report[name], raised = found
            alerts += raised
    if len(served) < settings.min_rows:
        report["note"] = (
            f"only {len(served)} records: drift figures are not assessed below {settings.min_rows}"
        )
    report["alerts"] = [asdict(a) for a in alerts]
    return report
