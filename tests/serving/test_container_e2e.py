"""The image of this clone's bento, built by `mlops containerize` and run for real: Docker
where an engine runs, else podman with a base image built from Debian's packages. It
answers as the compiled scorer does in process, logs to a mounted volume as a non-root
user, and holds nothing but the service, its libraries and the model. Then compose brings
it up with Prometheus, which must scrape it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, VENV_BIN, columns_of

from mlops_starter.serving.container import Engine, find_engine
from mlops_starter.serving.process import free_port
from mlops_starter.serving.scorer import TOLERANCE, compile_model, frame_to_columns
from mlops_starter.storage import json_records, load_model

pytestmark = pytest.mark.e2e

SERVICE_USER_UID = "1034"  # BentoML's Dockerfile creates user bentoml with this uid


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return find_engine(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(packaged, engine) -> str:
    """`mlops containerize` in the copy: its package stage's bento, as an image."""
    started = time.monotonic()
    built = packaged.run("mlops", "containerize", "--local-base", timeout=1800)
    print(f"image built in {time.monotonic() - started:.0f} s: {built.stdout.strip()}")
    tag = packaged.read_json("models/bento.json")["bento"]
    assert f"built image {tag} with {engine.name}" in built.stdout
    return tag


@pytest.fixture(scope="module")
def container(image, engine):
    """The image running with a fresh named volume at /predictions, as compose runs it."""
    name = f"mlops-test-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-predictions"
    port = free_port()
    started = time.monotonic()
    engine.run(
        *("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:3000"),
        *("--env", "MLOPS_PREDICTION_LOG_DIR=/predictions"),  # pragma: allowlist secret
        *("--volume", f"{volume}:/predictions"),
        image,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until_ready(url, engine, name)
        print(f"cold start to /readyz: {ready - started:.1f} s")
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client, name
    finally:
        engine.run("rm", "--force", name, check=False)
        engine.run("volume", "rm", "--force", volume, check=False)


def wait_until_ready(url: str, engine: Engine, name: str, timeout: float = 180) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        state = engine.run("inspect", "--format", "{{.State.Running}}", name, check=False)
        if state.stdout.strip() == "false":
            logs = engine.run("logs", name, check=False)
            pytest.fail(f"the container exited before it was ready:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.25)
    pytest.fail(f"{url}/readyz did not answer within {timeout:.0f} s")


@pytest.fixture(scope="module")
def reference(packaged):
    """The test set's first 200 rows and the compiled scorer's in-process probabilities."""
    info = packaged.read_json("models/model.json")
    features = info["feature_schema"]["numeric"] + info["feature_schema"]["categorical"]
    test = pd.read_parquet(packaged.root / "data/split/test.parquet").head(200)
    scorer = compile_model(load_model(packaged.root / "models/model.skops"))
    proba = scorer.predict(frame_to_columns(test[features]))
    records = json_records(test[["customer_id", *features]])
    return records, proba


def in_container(engine: Engine, name: str, *command: str) -> str:
    return engine.run("exec", name, *command).stdout


def in_log(engine: Engine, name: str) -> str:
    """The prediction log the container has written so far."""
    return in_container(
        engine, name, "sh", "-c", "cat /predictions/predictions-*.jsonl* 2>/dev/null || true"
    )


def test_answers_equal_the_compiled_scorer_as_records_and_as_columns(container, reference):
    client, _ = container
    records, proba = reference
    as_records = client.post("/predict", json={"records": records})
    assert as_records.status_code == 200, as_records.text
    served = [answer["probability"] for answer in as_records.json()]
    np.testing.assert_allclose(served, proba, atol=TOLERANCE, rtol=0)
    as_columns = client.post("/predict", json={"columns": columns_of(records)})
    assert as_columns.status_code == 200, as_columns.text
    np.testing.assert_allclose(
        as_columns.json()["columns"]["probability"], proba, atol=TOLERANCE, rtol=0
    )


def test_prediction_log_reaches_the_volume_written_by_a_non_root_user(container, reference, engine):
    client, name = container
    records, _ = reference
    sent = client.post(
        "/predict", json={"records": records[:3]}, headers={"X-Request-ID": "image-log-1"}
    )
    assert sent.status_code == 200, sent.text
    assert in_container(engine, name, "id", "-u").strip() == SERVICE_USER_UID
    deadline = time.monotonic() + 15
    logged = ""
    while time.monotonic() < deadline and logged.count("image-log-1") < 3:
        time.sleep(0.5)
        logged = in_log(engine, name)
    assert logged.count("image-log-1") == 3, logged[-2000:]
    owners = in_container(engine, name, "sh", "-c", "stat -c '%u %n' /predictions /predictions/*")
    assert {line.split()[0] for line in owners.splitlines()} == {SERVICE_USER_UID}, owners


# Run inside the image: every file outside the Python libraries and the system's own
# directories, and anything anywhere that looks like a credential, data or an MLflow store.
INVENTORY = r"""
import json, os, re
SYSTEM = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/var/lib/dpkg",
          "/var/lib", "/var/cache", "/var/log", "/etc", "/app/.venv", "/run", "/tmp/.X11")
SUSPECT = re.compile(
    r"(\.env$|id_rsa|id_ed25519|\.netrc$|\.pypirc$|credentials|\.aws/|\.ssh/|\.docker/config|"
    r"\.parquet$|\.csv$|\.db$|\.sqlite$|/mlruns/|/mlartifacts/|\.dvc/|/\.git/)"
)
beyond, suspects = [], []
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev")]
    for name in files:
        path = os.path.join(root, name)
        if SUSPECT.search(path) and not path.startswith(("/usr/share", "/usr/lib/python3")):
            suspects.append(path)
        elif path.endswith((".pem", ".key", ".crt")) and os.path.isfile(path):
            with open(path, "rb") as handle:
                if b"PRIVATE KEY" in handle.read():
                    suspects.append(path)
        if not path.startswith(SYSTEM):
            beyond.append(path)
print(json.dumps({"beyond": beyond, "suspects": suspects, "env": sorted(os.environ)}))
"""


def test_the_compose_monitor_follows_the_services_log_and_serves_prometheus(
    container, packaged, reference, engine
):
    """deploy/compose.yaml's `monitor`, run as compose runs it (image, working directory,
    entrypoint, command) on the service's log volume, with the copy's registry in place of
    the team's MLflow: its /metrics carries the records the service logged."""
    client, name = container
    records, _ = reference
    sent = client.post(
        "/predict", json={"records": records[:40]}, headers={"X-Request-ID": "image-monitor"}
    )
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and in_log(engine, name).count("image-monitor") < 40:
        time.sleep(0.5)
    service = yaml.safe_load((REPO_ROOT / "deploy/compose.yaml").read_text())["services"]["monitor"]
    params = service["entrypoint"][service["entrypoint"].index("--params") + 1]
    exported = service["command"][service["command"].index("--export-metrics") + 1]
    port = free_port()
    monitor = f"{name}-monitor"
    engine.run(
        *("run", "--detach", "--name", monitor, "--user", "root"),  # the copy's files are root's
        *("--workdir", service["working_dir"], "--entrypoint", service["entrypoint"][0]),
        *("--publish", f"127.0.0.1:{port}:{exported.rpartition(':')[2]}"),
        *("--volume", f"{name}-predictions:/predictions:ro"),
        *("--volume", f"{packaged.root / 'params.yaml'}:{params}:ro"),
        *("--volume", f"{packaged.root}:{packaged.root}"),  # the registry's absolute paths
        *("--env", f"MLFLOW_TRACKING_URI=sqlite:///{packaged.root / 'mlflow.db'}"),
        "--env=MLFLOW_DISABLE_TELEMETRY=true",
        packaged.read_json("models/bento.json")["bento"],
        *service["entrypoint"][1:],
        *service["command"],
    )
    try:
        deadline = time.monotonic() + 180
        records_seen = None
        while time.monotonic() < deadline and (records_seen or 0) < 40:
            time.sleep(1)
            with contextlib.suppress(httpx.HTTPError):
                scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                found = re.search(r"^mlops_monitor_window_records (\S+)$", scraped, re.M)
                records_seen = float(found.group(1)) if found else None
        logs = engine.run("logs", monitor, check=False)
        assert records_seen is not None and records_seen >= 40, logs.stdout + logs.stderr
    finally:
        engine.run("rm", "--force", monitor, check=False)


def test_image_holds_the_bento_and_libraries_only(image, engine):
    inventory = json.loads(
        engine.run(
            "run", "--rm", "--user", "root", "--entrypoint", "python", image, "-c", INVENTORY
        ).stdout
    )
    # Library test suites ship data files (e.g. sklearn's); what matters is outside them.
    suspects = [p for p in inventory["suspects"] if "/site-packages/" not in p]
    assert suspects == [], suspects
    bento = "/home/bentoml/bento/"
    outside = [p for p in inventory["beyond"] if not p.startswith(bento)]
    assert all(p.startswith(("/home/bentoml/.", "/root/.")) for p in outside), outside
    bento_files = {
        p[len(bento) :].split("/")[0] for p in inventory["beyond"] if p.startswith(bento)
    }
    assert bento_files <= {"bento.yaml", "README.md", "apis", "env", "models", "src"}, bento_files
    secrets = [
        v for v in inventory["env"] if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL", v)
    ]
    assert secrets == []
    print("beyond the bento:", sorted(outside))


@pytest.fixture(scope="module")
def compose_stack(image, engine, tmp_path_factory):
    """deploy/compose.yaml's classifier and Prometheus: `docker compose` where a Docker
    engine runs; elsewhere podman-compose, with the override that builds Prometheus from
    Debian's package (no registry). Secrets are throw-away values for every variable."""
    scratch = tmp_path_factory.mktemp("compose")
    example = (REPO_ROOT / "deploy/.env.example").read_text()
    names = re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE)
    values = {name: uuid.uuid4().hex for name in names} | {"BENTO_IMAGE": image}
    env_file = scratch / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    files = ["-f", str(REPO_ROOT / "deploy/compose.yaml")]
    if engine.name == "docker":
        compose = ["docker", "compose"]
    else:
        compose = [str(VENV_BIN / "podman-compose")]
        files += ["-f", str(REPO_ROOT / "deploy/compose.no-registry.yaml")]
    project = f"mlops-test-{uuid.uuid4().hex[:6]}"
    command = [*compose, "-p", project, *files, "--env-file", str(env_file)]
    environment = {**os.environ, **engine.env}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=environment, capture_output=True, text=True, timeout=900
        )

    up = run("up", "-d", "classifier", "prometheus")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield values
    finally:
        run("down", "-v")


def test_compose_classifier_asks_for_its_key_and_prometheus_scrapes_it(compose_stack, reference):
    records, _ = reference
    deadline = time.monotonic() + 180
    stranger = None
    while time.monotonic() < deadline and stranger is None:
        try:
            stranger = httpx.post("http://127.0.0.1:3000/predict", json={"records": records[:5]})
        except httpx.HTTPError:
            time.sleep(1)
    assert stranger is not None and stranger.status_code == 401, stranger
    key = {"Authorization": f"Bearer {compose_stack['CLASSIFIER_API_KEY']}"}
    answer = httpx.post("http://127.0.0.1:3000/predict", json={"records": records[:5]}, headers=key)
    assert answer.status_code == 200, answer.text
    query = "http://127.0.0.1:9090/api/v1/query"
    scraped: list = []
    while time.monotonic() < deadline and not scraped:
        time.sleep(2)
        with contextlib.suppress(httpx.HTTPError):
            found = httpx.get(query, params={"query": 'mlops_predictions_total{job="classifier"}'})
            scraped = found.json()["data"]["result"]
    assert scraped, "Prometheus never scraped the classifier's predictions"
    assert sum(float(series["value"][1]) for series in scraped) >= 5
    targets = httpx.get("http://127.0.0.1:9090/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets if t["labels"]["job"] == "classifier"] == ["up"]
