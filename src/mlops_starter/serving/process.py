"""Run `bentoml serve` as a child process on a loopback port, for the smoke test, the
benchmark and the tests: the real server, started and stopped cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlops_starter.errors import PipelineError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll `url` until it answers 200; fail early if `process` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipelineError(
                f"{process.args!r} exited with {process.returncode} before {url} answered"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http URL built from our own loopback host and port)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise PipelineError(f"{url} did not answer within {timeout:.0f} s")


def write_arguments(arguments: Mapping[str, object], path: str | Path) -> Path:
    """Bento arguments as a file (`--arg k=v` would split values at commas); JSON is YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(arguments), indent=2))
    return path


@contextlib.contextmanager
def bentoml_server(
    target: str,
    port: int,
    log_path: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Iterator[str]:
    """Serve the bento `target` and yield its base URL once /readyz answers; stop the
    whole process group afterwards."""
    command = [
        str(Path(sys.executable).parent / "bentoml"),
        "serve",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(  # noqa: S603 (argument list, no shell)
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/readyz", process)
            yield base
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
