"""The team setup for real: a PostgreSQL server, `mlflow server` on it with proxied
artifacts behind MLflow's basic-auth app, and the pipeline and CLI as a teammate runs
them. Also what happens when the tracking server dies in the middle of `register`,
and that the served bento does not need it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from conftest import ONLY_LOGISTIC, kill_mlflow, mlflow_process
from postgres import postgres_server

from mlops_starter.serving.process import bentoml_server, free_port

pytestmark = pytest.mark.e2e

MODEL = "churn-classifier"
ADMIN, PASSWORD = "admin", "team-secret-1"  # pragma: allowlist secret (throw-away)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.fixture(scope="module")
def team(repo_copy, tmp_path_factory):
    """PostgreSQL, then the tracking server on it; yields the repository copy wired to it."""
    home = tmp_path_factory.mktemp("team")
    (home / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{home}/users.db\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server_env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_AUTH_CONFIG_PATH": str(home / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key",  # pragma: allowlist secret
    }
    with postgres_server() as database:
        options = [
            "--backend-store-uri",
            database,
            "--artifacts-destination",
            str(home / "server-artifacts"),
            "--app-name",
            "basic-auth",
            "--workers",
            "1",
        ]
        copy = repo_copy(ONLY_LOGISTIC)
        copy.database, copy.server_artifacts = database, home / "server-artifacts"

        @contextlib.contextmanager
        def start_server() -> Iterator[str]:
            # The same port each time, as a team server keeps its address across restarts.
            with mlflow_process(
                "server", options, home / "server.log", env=server_env, port=copy.port
            ) as url:
                # The auth app's first request sets up its user store: slow on a busy
                # machine, longer than the 10 s the CLI is given below. Make it here.
                search = f"{url}/api/2.0/mlflow/registered-models/search"
                httpx.get(search, auth=(ADMIN, PASSWORD), timeout=120).raise_for_status()
                yield url

        copy.port = free_port()
        copy.start_server = start_server
        copy.env |= {
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{copy.port}",
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": PASSWORD,
            # Fail fast when the server is gone, instead of MLflow's minutes of retries.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
        }
        with start_server() as url:
            copy.url = url
            yield copy


def test_an_unauthenticated_write_is_refused(team):
    created = {"name": "intruder"}
    url = f"{team.url}/api/2.0/mlflow/experiments/create"
    refused = httpx.post(url, json=created, timeout=60)
    assert refused.status_code == 401
    allowed = httpx.post(url, json=created, auth=(ADMIN, PASSWORD), timeout=60)
    assert allowed.status_code == 200, allowed.text


def test_versions_aliases_and_the_alias_log_live_in_postgres(team):
    team.run("dvc", "repro")
    team.set_params({"train": {"candidates": {"logistic_regression": {"C": 0.05}}}})
    team.run("dvc", "repro")
    assert team.read_json("reports/gate.json")["version"] == "2"
    team.run("mlops", "promote", "2", "--force", "--reason", "a second opinion")
    team.run("mlops", "rollback", "--reason", "checking the way back")
    history = team.run("mlops", "history").stdout
    assert "champion: version 1" in history and "rollback" in history
    versions = query(team.database, f"select version from model_versions where name = '{MODEL}'")
    assert sorted(v for (v,) in versions) == [1, 2]
    aliases = dict(
        query(
            team.database,
            f"select alias, version from registered_model_aliases where name = '{MODEL}'",
        )
    )
    assert aliases == {"champion": 1, "challenger": 2}
    log = query(
        team.database,
        f"select key from registered_model_tags where name = '{MODEL}' and key like 'alias_log.%'",
    )
    assert len(log) == 3  # auto-promotion of 1, promotion of 2, rollback to 1
    done = query(team.database, "select value from model_version_tags where key = 'registration'")
    assert sorted(v for (v,) in done) == ["complete", "complete"]
    team.run("mlops", "smoke", "--served", timeout=600)


def test_artifacts_went_through_the_server_not_to_the_client_disk(team):
    assert not (team.root / "mlruns").exists()
    logged = [p.name for p in team.server_artifacts.rglob("MLmodel")]
    assert len(logged) >= 2
    cards = list(team.server_artifacts.rglob("model_card_v*.md"))
    assert {p.name for p in cards} >= {"model_card_v1.md", "model_card_v2.md"}


def test_a_tracking_server_killed_during_register_leaves_no_half_made_version(team, tmp_path):
    """Kill the server the moment register has created a version (while it still writes
    the card and tags), restart it, rerun: the same version is completed, not duplicated.
    (Register alone reruns, forced: it registers the last model again as version 3.)"""
    bento = team.read_json("models/bento.json")["bento"]
    register_again = ["dvc", "repro", "--force", "--single-item", "register"]
    stage = subprocess.Popen(
        register_again,
        cwd=team.root,
        env=team.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    version_3 = f"select 1 from model_versions where name = '{MODEL}' and version = 3"
    deadline = time.monotonic() + 600
    while (
        time.monotonic() < deadline and stage.poll() is None and not query(team.database, version_3)
    ):
        time.sleep(0.05)
    kill_mlflow(team.url)
    output, _ = stage.communicate(timeout=600)
    assert stage.returncode != 0, output  # register could not finish
    assert query(team.database, version_3), output  # ... but had created version 3
    marks = "select value from model_version_tags where version = 3 and key = 'registration'"
    assert query(team.database, marks) == []  # half-made: no completion mark

    # The bento of an earlier version answers while the tracking server is down.
    with bentoml_server(bento, free_port(), tmp_path / "serve.log", team.env) as url:
        answer = httpx.get(f"{url}/metadata", timeout=30)
        assert answer.status_code == 200 and answer.json()["version"]

    refused = team.run("mlops", "promote", "3", check=False)
    assert refused.returncode != 0  # no server: nothing can be promoted, nothing is half-moved

    with team.start_server():
        refused = team.run("mlops", "promote", "3", check=False)
        assert refused.returncode == 2 and "half-made" in refused.stderr
        rerun = team.run(*register_again)
        assert (
            "left half-made by an interrupted register: completing it"
            in rerun.stderr + rerun.stdout
        )
        versions = query(
            team.database, f"select version from model_versions where name = '{MODEL}'"
        )
        assert sorted(v for (v,) in versions) == [1, 2, 3]  # completed, not registered twice
        assert query(team.database, marks) == [("complete",)]
        history = team.run("mlops", "history").stdout
        assert "champion: version 1" in history and "outside" not in history
