"""The monitor's speed and memory on a long log: a full read against reading as the log
arrives (`mlops monitor`'s state), at 1M and 10M lines, and the daily run's cost as the
log ages; beside it, Evidently's data-drift report on the same rows, per day.

The log is the demo's: a day of DAY_LINES records scored by a small model and written
by the service's own encoder, repeated day after day (1M lines: 10 days; 10M: 100), and
left as the service leaves it: each past day rotated at midnight and rewritten as
Parquet by the service's own rotation, the newest day's lines in the open JSON-lines
file. At 1M lines the same lines kept as one JSON-lines file are read too, side by
side, and are what Evidently reads.

Each measurement runs in its own process, so its peak RSS is its own. A full read
holds the whole log in memory, so it runs at 1M lines only, as does Evidently: it runs
in a virtual environment of its own under build/benchmarks/ (benchmarks/evidently_drift.py;
never a dependency of the template), skipped with the reason where it does not install.

    python benchmarks/monitoring.py [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stage_peak import peak_kb

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "monitoring.json"
EVIDENTLY = ("evidently==0.7.23", "pandas<3", "orjson")  # its 0.7 breaks on pandas 3
EVIDENTLY_VENV = HERE.parent / "build" / "benchmarks" / "evidently"
DAY_LINES = 100_000
REQUEST_RECORDS = 100
FIRST_DAY = "2026-01-01"


def reference_and_day(folder: Path) -> None:
    """A small model's reference (pickled for the measuring processes: this script's
    own file) and one day of its log lines (`day.jsonl`, dated FIRST_DAY)."""
    from mlops_starter.data.demo import generate_demo_table, generate_production_batch
    from mlops_starter.data.profile import feature_profile, score_profile
    from mlops_starter.data.schema import FeatureSchema, encode_target
    from mlops_starter.evaluation.evaluate import performance_reference
    from mlops_starter.metrics import classification_metrics
    from mlops_starter.monitoring.inputs import Reference
    from mlops_starter.serving.prediction_log import LogBatch
    from mlops_starter.storage import json_records
    from mlops_starter.tasks.binary import BinaryAnswers
    from mlops_starter.training.candidates import build_pipeline

    table = generate_demo_table(20_000, seed=3)
    schema = FeatureSchema.infer(table, ["customer_id", "signup_date", "churned"])
    train, test = table.iloc[:15_000], table.iloc[15_000:]
    settings = {"n_estimators": 50, "learning_rate": 0.1, "max_depth": 3}
    model = build_pipeline("xgboost", settings, schema, "none", 0, 1).fit(
        train[schema.columns], encode_target(train["churned"], "yes")
    )
    proba = model.predict_proba(test[schema.columns])[:, 1]
    threshold = float(np.quantile(proba, 0.8))
    y = encode_target(test["churned"], "yes").to_numpy()
    answers = BinaryAnswers(threshold, "yes")
    reference = Reference(
        model="churn-classifier",
        version="1",
        answers=answers,
        id_column="customer_id",
        feature_profile=feature_profile(train[schema.columns], schema),
        score_profile=score_profile(proba, threshold)
        | {"performance": performance_reference(answers, answers.decide(proba), y)},
        test_metrics=classification_metrics(y, proba, threshold),
    )
    (folder / "reference.pickle").write_bytes(pickle.dumps(reference))
    train[schema.columns].to_csv(folder / "reference.csv", index=False)  # Evidently's
    batch = generate_production_batch(DAY_LINES, seed=5, scenario="none")
    served = model.predict_proba(batch[schema.columns])[:, 1]
    rows = json_records(batch[schema.columns])
    with open(folder / "day.jsonl", "wb") as day:
        for start in range(0, DAY_LINES, REQUEST_RECORDS):
            part = slice(start, start + REQUEST_RECORDS)
            day.write(
                LogBatch(
                    {
                        "timestamp": f"{FIRST_DAY}T08:00:00.123456+00:00",
                        "request_id": f"request-{start}",
                        "model": "churn-classifier",
                        "model_version": "1",
                    },
                    batch["customer_id"].iloc[part].tolist(),
                    {c: [r[c] for r in rows[part]] for c in schema.columns},
                    {
                        "probability": served[part].tolist(),
                        "label": (served[part] >= threshold).astype(int).tolist(),
                    },
                ).encode()
            )


def day_lines(folder: Path, number: int) -> bytes:
    """Day `number`'s lines: the first day's with their date moved."""
    import pandas as pd

    date = (pd.Timestamp(FIRST_DAY) + pd.Timedelta(days=number)).strftime("%Y-%m-%d")
    return (folder / "day.jsonl").read_bytes().replace(FIRST_DAY.encode(), date.encode())


def write_days(folder: Path, log: Path, first: int, days: int) -> None:
    """Days `first` to `first + days - 1`, appended to the JSON-lines file `log`."""
    with open(log, "ab") as out:
        for number in range(first, first + days):
            out.write(day_lines(folder, number))


def rotate_days(folder: Path, log_dir: Path, days: int) -> None:
    """Days 0 to `days - 1` as the service leaves them: each rotated at its midnight and
    rewritten by the service's own rotation (serving/prediction_log.py)."""
    import pandas as pd

    from mlops_starter.serving.prediction_log import rewrite_rotated

    log_dir.mkdir()
    for number in range(days):
        midnight = pd.Timestamp(FIRST_DAY) + pd.Timedelta(days=number + 1)
        rotated = log_dir / f"predictions-bench.jsonl.{midnight:%Y-%m-%dT%H-%M-%S-%f}"
        rotated.write_bytes(day_lines(folder, number))
        rewrite_rotated(rotated, keep=days)
        if not rotated.with_name(rotated.name + ".parquet").exists():
            raise SystemExit(f"rotation did not leave {rotated.name} as Parquet")


def measure(kind: str, folder: str, log: str, state: str) -> dict:
    """One measurement, in this process: `full` (read everything, check every window)
    or `incremental` (read what is new since the state, check what it touched)."""
    from mlops_starter.config import MonitorConfig
    from mlops_starter.monitoring.incremental import MonitorState
    from mlops_starter.monitoring.inputs import read_prediction_log
    from mlops_starter.monitoring.timeline import run_over_time

    reference = pickle.loads((Path(folder) / "reference.pickle").read_bytes())  # noqa: S301  (written by this script)
    settings = MonitorConfig()
    started = time.perf_counter()
    if kind == "full":
        read = read_prediction_log([log])
        lines = len(read)
        read_s = time.perf_counter() - started
        report = run_over_time(read, reference, settings)
    else:
        monitor = MonitorState(state, settings.window, [log])
        lines = monitor.read_new()
        read_s = time.perf_counter() - started
        report = monitor.report(reference, settings)
    seconds = time.perf_counter() - started
    found = {}
    if kind != "full":  # the page, as `mlops monitor` writes it: its size beside Evidently's
        from mlops_starter.monitoring.report import write_report

        current = report["windows"][report["current"]]["start"]
        page = write_report(report, monitor.rows(current), reference, Path(state) / "page")
        found["page_kb"] = round(page.stat().st_size / 1e3)
    return found | {
        "lines_read": lines,
        "seconds": round(seconds, 2),
        "read_seconds": round(read_s, 2),
        "lines_per_s": round(lines / seconds) if lines else None,
        "windows": len(report["windows"]),
        "peak_rss_mb": round(peak_kb() / 1024),  # its own, not the spawning process's
    }


def in_process(kind: str, folder: Path, log: Path, state: Path) -> dict:
    done = subprocess.run(  # noqa: S603 (this script itself, with our own arguments)
        [sys.executable, __file__, "--measure", kind, str(folder), str(log), str(state)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def evidently_python() -> Path | str:
    """The Python of a virtual environment with Evidently, made once; or why not."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        for command in (
            [sys.executable, "-m", "venv", str(EVIDENTLY_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY],
        ):
            done = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 (fixed argument lists)
            if done.returncode != 0:
                return f"{' '.join(EVIDENTLY)} did not install: {done.stderr.strip()[-300:]}"
    return python


def evidently(python: Path | str, folder: Path, log: Path) -> dict:
    if isinstance(python, str):
        return {"skipped": python}
    done = subprocess.run(  # noqa: S603 (our own script, our own arguments)
        [
            str(python),
            str(HERE / "evidently_drift.py"),
            str(log),
            str(folder / "reference.csv"),
            str(folder),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"failed": done.stderr.strip()[-500:]}
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        reference_and_day(folder)
        for size in args.sizes:
            days = size // DAY_LINES
            log_dir, state = folder / f"log-{size}", folder / f"state-{size}"
            rotate_days(folder, log_dir, days)
            log = log_dir / "predictions-bench.jsonl*"
            stored = sum(p.stat().st_size for p in log_dir.iterdir())
            found = {"days": days, "log_mb": round(stored / 1e6, 1)}
            if size <= 1_000_000:
                found["full_read"] = in_process("full", folder, log, state)
                as_json_lines = folder / f"predictions-{size}.jsonl"
                write_days(folder, as_json_lines, 0, days)
                found["json_lines_mb"] = round(as_json_lines.stat().st_size / 1e6)
                found["full_read_json_lines"] = in_process("full", folder, as_json_lines, state)
                found["evidently_data_drift"] = evidently(evidently_python(), folder, as_json_lines)
                as_json_lines.unlink()
            found["first_incremental_read"] = in_process("incremental", folder, log, state)
            # The next day's lines arrive in the open file.
            write_days(folder, log_dir / "predictions-bench.jsonl", days, 1)
            found["next_day_incremental"] = in_process("incremental", folder, log, state)
            figures[f"{size}_lines"] = found
            print(json.dumps({size: found}, indent=2), flush=True)
            shutil.rmtree(log_dir)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
