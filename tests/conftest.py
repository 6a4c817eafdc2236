"""Shared fixtures: small demo data, and a throw-away copy of this repository in
which the real `dvc repro` runs against a fresh local MLflow store."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from mlops_starter.candidates import CANDIDATES
from mlops_starter.config import Config, CsvConfig, DataConfig
from mlops_starter.data.demo import generate_demo_table
from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.data.sources import open_table
from mlops_starter.serving.process import free_port, wait_for_http
from mlops_starter.storage import read_json
from mlops_starter.tasks import TargetValues, infer_task
from mlops_starter.training.placement import RowPlaces

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

DASHBOARD = REPO_ROOT / "deploy/grafana/dashboards/classifier.json"
# Without these, Chromium reaches out to Google's services at every start, and a machine
# with no way out refuses those connections many at a time.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's Chromium (`make test` installs it where it can), or CHROMIUM's choice."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    pytest.fail(
        "this browser test needs Chromium: `apt-get install chromium` (Debian, Ubuntu), "
        "or set CHROMIUM to the path of a Chromium or Chrome executable"
    )


def screenshot_path(name: str) -> Path:
    """Where a browser test saves the screenshot the docs show: build/screenshots/ in a test
    run, docs/images/screenshots/ under `make screenshots` (MLOPS_SCREENSHOT_DIR)."""
    folder = Path(os.environ.get("MLOPS_SCREENSHOT_DIR", REPO_ROOT / "build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def dashboard_metric_names(exporter: str = "service") -> set[str]:
    """Every metric the Grafana dashboard's queries read from `exporter`: the service
    (bentoml_ and mlops_) or the monitor (mlops_monitor_)."""
    import json
    import re

    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [target["expr"] for panel in panels for target in panel["targets"]]
    names = {name for q in queries for name in re.findall(r"\b((?:bentoml|mlops)_\w+)", q)}
    monitor = {name for name in names if name.startswith("mlops_monitor_")}
    return monitor if exporter == "monitor" else names - monitor


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests first, the files with the most of them (the corpus: 16 minutes of
    `dvc repro`s) before the others: make test hands each worker a file at a time in this
    order, so the minutes-long files start early and the unit tests' short files fill the
    end, instead of one worker finishing a long file alone while the others wait."""
    end_to_end = Counter(item.path for item in items if item.get_closest_marker("e2e"))
    items.sort(key=lambda item: (item.get_closest_marker("e2e") is None, -end_to_end[item.path]))


# Small and quick, but the same code paths as the defaults.
FAST_PARAMS = {
    "data": {"demo": {"n_rows": 3000}},
    "train": {
        "cv_folds": 3,
        "candidates": {
            "logistic_regression": {"max_iter": 300},
            "random_forest": {"n_estimators": 40},
            "xgboost": {"n_estimators": 80},
        },
    },
}


# One candidate and bars low enough for the demo's 600 test rows: for the registry's and
# the service's tests, where which model wins is beside the point, the champion
# comparison is what decides, and a `dvc repro` costs a third.
ONLY_LOGISTIC = {
    "train": {"candidates": {"random_forest": {"enabled": False}, "xgboost": {"enabled": False}}},
    "gate": {"min_test": {"binary": {"roc_auc": 0.6, "pr_auc": 0.07}}, "bootstrap_rounds": 300},
}


def candidate_defaults() -> dict[str, dict]:
    """Each registered candidate's default hyperparameters (src/mlops_starter/candidates.py),
    a fresh copy a test may change."""
    return {name: entry.settings().hyperparameters() for name, entry in CANDIDATES.items()}


def table_batches(
    path: Path, chunk_rows: int, csv: CsvConfig | None = None
) -> Iterator[pd.DataFrame]:
    """Every column of the file at `path`, read as ingest and `mlops score` read it."""
    data = DataConfig(target="churned", positive_label="yes", csv=csv or CsvConfig())
    table = open_table(path, data)
    return table.batches(table.columns(), chunk_rows)


def stage_config(tmp_path: Path, mode: str = "in_memory", **changes: dict) -> Config:
    """params.yaml's settings with paths under tmp_path, in `mode` (batches of 700 rows
    past memory), two CV folds and a small booster; `changes` update whole sections."""
    raw = Config.from_yaml().model_dump(by_alias=True)
    raw["paths"] = {k: str(tmp_path / v) for k, v in raw["paths"].items()}
    raw["scale"] |= {"mode": mode, "batch_rows": 700}
    raw["train"] |= {"cv_folds": 2}
    raw["train"]["candidates"]["xgboost"] |= {"n_estimators": 40}
    raw["validate"]["suite"] = None
    for section, values in changes.items():
        raw[section] |= values
    return Config.from_dict(raw)


def write_raw(cfg: Config, table: pd.DataFrame) -> None:
    """`table` where the split stage reads it, as ingest writes it."""
    Path(cfg.paths.raw).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(cfg.paths.raw, index=False)


def places(frame: pd.DataFrame, columns: list[str] | None = None, times=None) -> RowPlaces:
    """Rows placed by a hash of `columns` (all, by default) or by `times`, as the stages do."""
    chosen = frame if columns is None else frame[columns]
    hashes = pd.util.hash_pandas_object(chosen, index=False).to_numpy()
    return RowPlaces(hashes, None if times is None else pd.Series(times, name="when"))


def deep_update(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


@pytest.fixture(scope="session")
def demo_frame() -> pd.DataFrame:
    return generate_demo_table(n_rows=3000, seed=11)


# A target of each task in the demo table: the churn label, the contract, the charges.
DEMO_TARGETS = {"binary": "churned", "multiclass": "contract", "regression": "monthly_charges"}


@pytest.fixture(scope="session")
def demo_tasks(demo_frame) -> dict[str, tuple]:
    """Per task name: the task read off its demo target, the feature schema, the features
    and the encoded target."""
    prepared = {}
    for name, target in DEMO_TARGETS.items():
        data = DataConfig(target=target, positive_label="yes")
        task = infer_task(TargetValues.of(pa.array(demo_frame[target]), target), data)
        assert task.name == name
        schema = FeatureSchema.infer(demo_frame, [target, "customer_id", "signup_date"])
        prepared[name] = task, schema, demo_frame[schema.columns], task.encode(demo_frame[target])
    return prepared


@pytest.fixture(scope="session")
def hard_table(demo_frame):
    """The demo plus: a column missing in most rows, a category with rare values (pooled
    as infrequent), one with more values than `max_categories`, a 0/1 column from a
    boolean with gaps; and, to score, unseen values, nulls and extremes.

    Returns (schema, training features, labels, rows to score)."""
    frame = demo_frame.copy()
    rng = np.random.default_rng(0)
    rows = len(frame)
    frame["sparse_score"] = np.where(rng.random(rows) < 0.8, np.nan, rng.normal(size=rows))
    frame["segment"] = np.where(
        rng.random(rows) < 0.02,
        "rare-" + pd.Series(range(rows)).astype(str),
        rng.choice(["a", "b", "c"], rows),
    )
    frame["city"] = "city-" + pd.Series(rng.integers(0, 60, rows)).astype(str)
    frame["autopay"] = np.where(rng.random(rows) < 0.1, np.nan, rng.random(rows) < 0.5)
    schema = FeatureSchema.infer(
        frame, ["churned", "customer_id", "signup_date"], ["segment", "city"]
    )
    y = encode_target(frame["churned"], "yes")
    scoring = frame[schema.columns].head(300).copy()
    scoring.loc[scoring.index[:20], "segment"] = "never-seen"
    scoring.loc[scoring.index[20:40], "plan"] = None
    scoring.loc[scoring.index[40:60], "tenure_months"] = 1e9
    scoring.loc[scoring.index[60:80], "city"] = "city-999"
    return schema, frame[schema.columns], y, scoring


class RepoCopy:
    """A git + DVC work tree holding this repository's tracked files and nothing it produced."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        self.env |= {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            # The package stage builds bentos: into a store of this copy's own.
            "BENTOML_HOME": str(root.parent / "bentoml-home"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }

    def run(
        self, *command: str, check: bool = True, timeout: int = 600
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def set_params(self, changes: dict) -> None:
        params = deep_update(self.params(), changes)
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def commit(self, message: str = "test state") -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "--allow-empty", "-m", message)

    def read_json(self, relative: str) -> dict:
        return read_json(self.root / relative)


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    # Untracked new files count too, so the tests see the work in progress.
    untracked = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return [f for f in listed + untracked if f and (REPO_ROOT / f).is_file()]


# Outputs of an earlier run on the demo data, which a copy must not inherit.
PRODUCED = ("dvc.lock", "metrics/", "plots/", "reports/", "models/model.json", "models/bento.json")


def make_repo_copy(root: Path, changes: dict | None = None, as_committed: bool = False) -> RepoCopy:
    """A fresh repository copy at `root` with FAST_PARAMS and any further param changes,
    committed. `as_committed` keeps the params and the committed outputs instead, as a
    fresh clone has them."""
    for relative in _tracked_files():
        if relative.startswith(PRODUCED) and not as_committed:
            continue
        destination = root / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, destination)
    copy = RepoCopy(root)
    if not as_committed:
        copy.set_params(deep_update(yaml.safe_load(yaml.safe_dump(FAST_PARAMS)), changes or {}))
    copy.run("git", "init", "-q")
    copy.commit("initial")
    return copy


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., RepoCopy]:
    """Factory fixture: `repo_copy(changes)` gives a fresh copy in a new temporary folder."""
    return lambda changes=None: make_repo_copy(tmp_path_factory.mktemp("repo") / "repo", changes)


@pytest.fixture(scope="session")
def packaged(repo_copy):
    """One `dvc repro` whose bento the serving tests serve and the image test builds."""
    copy = repo_copy({"serve": {"max_records": 300}})
    copy.run("dvc", "repro", timeout=900)
    return copy


def logged(log_dir: Path, request_id: str, expected: int, timeout: float = 15) -> list[dict]:
    """The prediction-log entries of one request, once `expected` of them are written
    (the log is written off the request path), or what is there after `timeout` s."""
    import json
    import time

    deadline = time.monotonic() + timeout
    entries: list[dict] = []
    while time.monotonic() < deadline and len(entries) < expected:
        time.sleep(0.3)
        entries = [
            entry
            for path in log_dir.glob("predictions-*.jsonl*")
            for line in path.read_text().splitlines()
            if f'"{request_id}"' in line and (entry := json.loads(line))["request_id"] == request_id
        ]
    return entries


def columns_of(records: list[dict]) -> dict[str, list]:
    """Records as the column-wise request body."""
    return {name: [r[name] for r in records] for name in records[0]}


_MLFLOW_PROCESSES: dict[str, subprocess.Popen[bytes]] = {}


SCHEMATHESIS_DIR = Path(__file__).parent / "serving"


def one_shape_document(document: dict, shape: str) -> dict:
    """The served document with /predict taking one body shape ("records" or "columns"),
    so that a schemathesis run is sure to exercise it; /explain only with records."""
    single = json.loads(json.dumps(document))
    predict = single["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    predict["schema"] = {"$ref": f"#/components/schemas/{shape.title()}Body"}
    if shape != "records":
        del single["paths"]["/explain"]
    return single


def schemathesis_every_check(url: str, document: dict, folder: Path, examples: int = 100) -> str:
    """`schemathesis run --checks all` of `document` against the service at `url`, with
    the suite's hooks (columns of one length) and settings (413 refuses any body).
    Returns its output; fails, showing the output's end, unless every case passed."""
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document))
    done = subprocess.run(
        [
            str(VENV_BIN / "schemathesis"),
            "--config-file",
            str(SCHEMATHESIS_DIR / "schemathesis.toml"),
            "run",
            str(spec),
            "--url",
            url,
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ
        | {"SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(SCHEMATHESIS_DIR)},
        cwd=folder,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert cases and cases[1] == cases[2] and int(cases[1]) >= examples, done.stdout[-2000:]
    return done.stdout


@contextlib.contextmanager
def mlflow_process(
    command: str,
    options: list[str],
    log_path: Path,
    cwd: Path | None = None,
    env=None,
    port: int | None = None,
) -> Iterator[str]:
    """`mlflow server` or `mlflow ui` on a loopback port (a free one unless given) while
    the block runs; yields its URL. It runs in a process group of its own, workers and all."""
    port = port or free_port()
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                command,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *options,
            ],
            cwd=cwd,
            # No job runner: its three consumer processes (GenAI trace and scorer jobs,
            # which nothing here uses) cost 1.5 GB and 8 CPU seconds per server started.
            env={
                **(env or os.environ),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        _MLFLOW_PROCESSES[url] = process
        try:
            wait_for_http(f"{url}/health", process)
            yield url
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            _MLFLOW_PROCESSES.pop(url, None)


def kill_mlflow(url: str) -> None:
    """Kill the server at `url` and its workers at once, as a crash would (SIGKILL)."""
    os.killpg(_MLFLOW_PROCESSES[url].pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on a temporary SQLite file and artifact folder, on a free loopback port."""
    home = tmp_path_factory.mktemp("mlflow-server")
    options = [
        "--backend-store-uri",
        f"sqlite:///{home}/mlflow.db",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--workers",
        "1",
    ]
    with mlflow_process("server", options, home / "server.log") as url:
        yield url


class Webhook:
    """A real HTTP server on a free loopback port that keeps what is posted to it and
    answers with `status`."""

    def __init__(self, status: int = 200) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def missing_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with None for every missing value (NaN, NA, None alike), indexed 0..: two
    reads of one log compared, where an all-null column may come back as NaN or None."""
    return frame.astype(object).where(frame.notna(), None).reset_index(drop=True)
