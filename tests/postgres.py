"""A throw-away PostgreSQL cluster on a free loopback port, for the tests that need a
real server (the team registry, a database as the data source) and the SQL benchmark."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlops_starter.serving.process import free_port


def postgres_program(name: str) -> str:
    """A PostgreSQL server program (Debian puts them outside PATH). Without one the test
    fails (never skips), naming what `make test` installs."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's `{name}` is missing: apt-get install postgresql (make test does as root)"
        )
    return found


@contextlib.contextmanager
def postgres_server(user: str = "mlflow", password: str | None = None) -> Iterator[str]:
    """Yields the URL (without the password) of a database named after `user`. With a
    `password`, connections over TCP must give it (scram-sha-256); without, none is asked.
    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user, in a
    folder of its own (pytest's temporary folders are closed to other users)."""
    home = Path(tempfile.mkdtemp(prefix="mlops-starter-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = home / "data"
    auth = ["--auth=trust"]
    if password is not None:
        secret = home / "password"
        secret.write_text(password)
        if as_user:
            shutil.chown(secret, "postgres")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    try:
        run(postgres_program("initdb"), "-D", str(data), "-U", user, *auth, "-E", "UTF8")
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        log = str(home / "server.log")
        run(postgres_program("pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
        try:
            # Over the socket (trusted locally): the password is asked only over TCP.
            run(postgres_program("createdb"), "-h", str(home), "-p", str(port), "-U", user, user)
            yield f"postgresql://{user}@127.0.0.1:{port}/{user}"
        finally:
            run(postgres_program("pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)
