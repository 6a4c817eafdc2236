"""A tracking server that does not answer is an error that says so, never "not found":
read as "no champion", a slow answer would let register promote a first version again.
The fault is made for real: a socket that accepts connections and never replies."""

import socket
import threading
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from mlops_starter.registry.model_registry import Registry, RegistryError


@pytest.fixture
def silent_server() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def hold_connections() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=hold_connections, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture
def silent_registry(silent_server, monkeypatch) -> Registry:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    client = MlflowClient(tracking_uri=silent_server, registry_uri=silent_server)
    return Registry(client, "silent-model")


def test_a_champion_read_that_times_out_is_an_error_not_no_champion(silent_registry):
    with pytest.raises(RegistryError, match="tracking server did not answer"):
        silent_registry.champion()


def test_a_version_read_that_times_out_is_an_error_not_no_such_version(silent_registry):
    with pytest.raises(RegistryError, match="tracking server did not answer") as refused:
        silent_registry.version("3")
    assert "has no version" not in str(refused.value)


def test_a_missing_version_on_a_server_that_answers_is_named(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("answering-model")
    registry = Registry(client, "answering-model")
    assert registry.champion() is None
    with pytest.raises(RegistryError, match="'answering-model' has no version 3"):
        registry.version(3)
