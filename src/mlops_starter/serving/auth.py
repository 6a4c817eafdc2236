"""The service's optional API key: where it comes from, and the middleware that asks for it.

The key belongs to the machine that serves, never to params.yaml or the bento: it is
read at start from MLOPS_API_KEY, or from the file MLOPS_API_KEY_FILE names (a Docker
or Kubernetes secret). With a key, every path but the probes and /metrics needs
`Authorization: Bearer <key>`; `serve.auth: required` refuses to start without one.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from mlops_starter.errors import ConfigError

KEY_ENV = "MLOPS_API_KEY"
KEY_FILE_ENV = "MLOPS_API_KEY_FILE"
MIN_KEY_LENGTH = 16
# What load balancers, orchestrators and Prometheus reach without a key.
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})


def api_key(auth: str, environ: Mapping[str, str]) -> str | None:
    """The key callers must send, or None when the service is open. Refuses an unusable
    key by the variable that set it, and a missing one when `auth` is "required"."""
    direct, file_name = environ.get(KEY_ENV), environ.get(KEY_FILE_ENV)
    if direct and file_name:
        raise ConfigError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set: set one of them")
    source, key = KEY_ENV, direct
    if file_name:
        source = f"{KEY_FILE_ENV} ({file_name})"
        try:
            key = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"{source} cannot be read: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{source} is not UTF-8 text") from None
    if not key:
        if auth == "required":
            raise ConfigError(
                f"serve.auth is 'required' but no API key is set: set {KEY_ENV}, or "
                f"{KEY_FILE_ENV} to a file holding the key"
            )
        return None
    if len(key) < MIN_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
        raise ConfigError(
            f"the API key from {source} must be at least {MIN_KEY_LENGTH} printable ASCII "
            "characters without spaces, for example: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    return key


def authorization(key: str | None) -> dict[str, str]:
    """The header a client of this project (smoke test, monitoring demo) sends."""
    return {"Authorization": f"Bearer {key}"} if key else {}


UNAUTHORIZED = json.dumps(
    {"error": "missing or wrong API key: send the header 'Authorization: Bearer <key>'"}
).encode()


class ApiKeyMiddleware:
    """Answer 401, before anything reads the body, to a request without the key; the
    probes and /metrics stay open. Compared in constant time; the key is never logged."""

    def __init__(self, app: ASGIApp, key: str, on_refused: Callable[[], None]) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        self.on_refused()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(UNAUTHORIZED)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": UNAUTHORIZED})
