"""Champion moves that race: real `mlops` processes started at the same moment, on the
local SQLite store and on a team `mlflow server` backed by PostgreSQL. Whatever the
order they land in, the alias log stays a chain (each move's "from" is the previous
move's "to"), the champion is the last move's "to", and a rollback restores the version
that served just before it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import VENV_BIN, mlflow_process
from mlflow.tracking import MlflowClient
from postgres import postgres_server

from mlops_starter.registry.model_registry import (
    CHAMPION,
    GATE_TAG,
    LOCK_SUFFIX,
    REGISTRATION_TAG,
    Registry,
    RegistryError,
    chain_breaks,
)

pytestmark = pytest.mark.e2e

MODEL = "churn-classifier"  # params.yaml's mlflow.registered_model
# Rounds of each race per store; RACE_ROUNDS=20 runs the twenty.
ROUNDS = int(os.environ.get("RACE_ROUNDS", "1"))


def fresh_model(uri: str, tmp_path: Path, name: str) -> Registry:
    """A registered model with versions 1 to 4, all gated and complete; 1 is champion."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    tmp_path.mkdir(parents=True, exist_ok=True)
    # A run with no model file in it: only the alias moves (the contract check warns).
    experiment = client.create_experiment(name, (tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment).info
    for _ in range(4):
        client.create_model_version(
            name,
            f"{run.artifact_uri}/model",
            run_id=run.run_id,
            tags={GATE_TAG: "true", REGISTRATION_TAG: "complete"},
        )
    registry = Registry(client, name)
    registry.promote("1", "setup")
    return registry


def params_for(tmp_path: Path, name: str) -> Path:
    params = tmp_path / f"{name}.params.yaml"
    text = (Path(__file__).parents[2] / "params.yaml").read_text()
    params.write_text(text.replace(f"registered_model: {MODEL}", f"registered_model: {name}"))
    return params


def race(
    env: dict[str, str], params: Path, *commands: list[str]
) -> list[subprocess.CompletedProcess]:
    """Start every command at once, as CD and a person would, and wait for all."""
    started = [
        subprocess.Popen(
            [str(VENV_BIN / "mlops"), "--params", str(params), *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    done = []
    for process, command in zip(started, commands, strict=True):
        out, err = process.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def assert_a_chain(registry: Registry) -> None:
    moves = registry.history()
    assert chain_breaks(moves) == [], "\n".join(map(str, moves))
    assert str(registry.champion().version) == moves[-1].to_version
    assert [m.seq for m in moves] == list(range(1, len(moves) + 1))
    assert registry.client.search_registered_models(f"name = '{registry.name}{LOCK_SUFFIX}'") == []


def assert_rollback_restores_the_one_before(registry: Registry, env, params: Path) -> None:
    last = [m for m in registry.history() if m.action in ("promote", "experiment-promote")][-1]
    [done] = race(env, params, ["rollback", "--reason", "after the race"])
    assert done.returncode == 0, done.stderr
    assert str(registry.champion().version) == last.from_version
    assert_a_chain(registry)


def verdict_file(tmp_path: Path, champion: str, challenger: str) -> Path:
    """What `mlops experiment report` writes for a decided 'better' verdict."""
    report = tmp_path / "experiment.json"
    effect = {"estimate": 0.01, "low": 0.002, "high": 0.02, "alpha": 0.05}
    report.write_text(
        json.dumps(
            {
                "verdict": "better",
                "experiment": "race",
                "mode": "shadow",
                "as_of": "2026-12-01T00:00:00+00:00",
                "champion": champion,
                "challenger": challenger,
                "matured_rows": 20000,
                "effect": effect,
            }
        )
    )
    return report


def local_store(tmp_path: Path) -> tuple[str, dict[str, str]]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return uri, env | {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    """`mlflow server` on a real PostgreSQL, as the team stack runs it."""
    home = tmp_path_factory.mktemp("race-team")
    with postgres_server() as database:
        options = ["--backend-store-uri", database, "--artifacts-destination", str(home / "a")]
        with mlflow_process("server", options, home / "server.log") as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
            yield url, env | {"MLFLOW_TRACKING_URI": url, "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Each race on the local store and on the team server."""
    if request.param == "sqlite":
        return local_store(tmp_path)
    return request.getfixturevalue("team_server")


def test_two_promotes_at_once_leave_a_chain_and_a_true_rollback(store, tmp_path):
    uri, env = store
    for round_ in range(ROUNDS):
        name = f"race-promote-{round_}"
        registry, params = fresh_model(uri, tmp_path / name, name), params_for(tmp_path, name)
        results = race(
            env,
            params,
            ["promote", "3", "--reason", "race a"],
            ["promote", "4", "--reason", "race b"],
        )
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        assert_a_chain(registry)
        assert len(registry.history()) == 3  # the first promotion and both moves
        assert_rollback_restores_the_one_before(registry, env, params)


def test_a_promote_and_a_rollback_at_once_leave_a_chain(store, tmp_path):
    uri, env = store
    for round_ in range(ROUNDS):
        name = f"race-rollback-{round_}"
        registry, params = fresh_model(uri, tmp_path / name, name), params_for(tmp_path, name)
        registry.promote("2", "setup")
        results = race(
            env, params, ["promote", "3", "--reason", "race a"], ["rollback", "--reason", "race b"]
        )
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        assert_a_chain(registry)


def test_a_promote_and_an_experiment_conclusion_at_once_leave_a_chain(store, tmp_path):
    uri, env = store
    for round_ in range(ROUNDS):
        name = f"race-conclude-{round_}"
        registry, params = fresh_model(uri, tmp_path / name, name), params_for(tmp_path, name)
        report = verdict_file(tmp_path / name, champion="1", challenger="2")
        results = race(
            env,
            params,
            ["promote", "3", "--reason", "race a"],
            ["experiment", "conclude", "--report", str(report)],
        )
        assert results[0].returncode == 0, results[0].stderr
        assert_a_chain(registry)
        champion = str(registry.champion().version)
        if results[1].returncode == 0:  # the conclusion moved first: then the promote
            assert [m.to_version for m in registry.history()[-2:]] == ["2", "3"]
        else:  # the promote moved first: the verdict on champion 1 is stale, refused
            assert "is version 3, not 1 as this move expected" in results[1].stderr
            assert champion == "3"


def test_history_flags_a_move_made_outside_the_cli_between_two_logged_moves(tmp_path):
    uri, env = local_store(tmp_path)
    registry = fresh_model(uri, tmp_path, MODEL + "-ui")
    params = params_for(tmp_path, MODEL + "-ui")
    registry.client.set_registered_model_alias(registry.name, CHAMPION, "2")  # as the UI does
    [done] = race(env, params, ["promote", "3", "--reason", "after a UI move"])
    assert done.returncode == 0, done.stderr
    [history] = race(env, params, ["history"])
    assert "between #1 (to 1) and #2 (from 2)" in history.stdout
    assert [move.seq for move in chain_breaks(registry.history())] == [2]


def test_a_lock_left_by_a_mover_that_died_is_taken_over_and_a_live_one_is_named(tmp_path):
    uri, env = local_store(tmp_path)
    name = MODEL + "-lock"
    registry, params = fresh_model(uri, tmp_path, name), params_for(tmp_path, name)
    holder = {"actor": "cd", "action": "promote", "since": 0, "process": "ci:1", "token": "x"}
    registry.client.create_registered_model(name + LOCK_SUFFIX, tags={"holder": json.dumps(holder)})
    [done] = race(env, params, ["promote", "2", "--reason", "after a dead mover"])
    assert done.returncode == 0, done.stderr  # its lease ran out long ago
    assert_a_chain(registry)

    live = Registry(registry.client, name, lock_wait_seconds=0.5)
    holder |= {"since": time.time()}
    registry.client.create_registered_model(name + LOCK_SUFFIX, tags={"holder": json.dumps(holder)})
    with pytest.raises(RegistryError, match=r"being moved by cd \(promote, process ci:1"):
        live.promote("3", "person")
    assert str(registry.champion().version) == "2"
