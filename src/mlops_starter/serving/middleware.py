"""The service's ASGI middlewares: what happens to a request before an endpoint sees it,
and the answers given without one (the fast /predict path, 413, 415, 501, the document).

Added outermost first in service.py: the API key (auth.py), the body guard, connection
recycling, the request id, then the paths answered here."""

from __future__ import annotations

import contextvars
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set per request by RequestIdMiddleware, read where the request is scored and logged.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# A parsed /predict body and its request id -> (status, JSON answer), or None to leave
# the request to the records API.
BodyScorer = Callable[[Any, str], Awaitable[tuple[int, bytes] | None]]


async def answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def refuse(send: Send, status: int, message: str) -> None:
    await answer(send, status, json.dumps({"error": message}).encode())


class RequestIdMiddleware:
    """Give each request an id (the caller's X-Request-ID, or a new one), visible to
    scoring and logging and echoed in the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class ConnectionRecycleMiddleware:
    """Close a kept-alive connection after about `requests` requests (`Connection: close`
    on one answer in `requests`, at random), so the client reconnects to whichever worker
    accepts first: the idle one. Workers share one listening socket and a worker accepts
    every connection waiting at once, so a burst of clients can all land on one worker
    and stay there while the other idles (the serving benchmark saw 0% and 100% CPU)."""

    def __init__(self, app: ASGIApp, requests: int) -> None:
        self.app = app
        self.share = 1 / requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or random.random() >= self.share:  # noqa: S311 (not security)
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)


class RequestGuardMiddleware:
    """Refuse, before anything parses it, a POST that is not JSON (415) or whose body is
    over `limit` bytes (413), whether or not it declares its length. An oversized body
    is read and discarded first, so the client gets the answer, not a broken pipe."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"application/json")
        if content_type.split(b";")[0].strip().lower() != b"application/json":
            await refuse(
                send, 415, f"Content-Type must be application/json, not {content_type.decode()!r}"
            )
            return
        messages: list[Message] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            received += len(message.get("body", b""))
            more = message.get("more_body", False)
            if received <= self.limit:
                messages.append(message)
        if received > self.limit:
            await refuse(
                send,
                413,
                f"request body is {received} bytes; the limit is {self.limit} "
                "(serve.max_body_bytes): split the records over several requests",
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class FastPredictMiddleware:
    """`POST /predict` answered here, without a pydantic object per record: the body is
    parsed once (orjson), each field checked over all rows at once (vectorised), scored
    and encoded by orjson. `score` answers columns always, and records that meet the
    contract; it leaves to the records API (None) the records that break it, and that
    API refuses them with pydantic's 400 naming record and field."""

    def __init__(self, app: ASGIApp, score: BodyScorer) -> None:
        self.app = app
        self.score = score

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/predict":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            more = message["type"] == "http.request" and message.get("more_body", False)
        body = b"".join(m.get("body", b"") for m in messages)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None  # the records API answers malformed JSON
        answered: tuple[int, bytes] | None = None
        # On the event loop, as the records API: the work is CPU-bound and holds the GIL,
        # and a busy worker then leaves new connections to an idle one.
        try:
            if parsed is not None:
                answered = await self.score(parsed, REQUEST_ID.get())
        except Exception:  # a bug, not the caller's: answer 500 (counted), never hang
            logging.getLogger(__name__).exception("scoring a request column-wise failed")
            answered = 500, b'{"error": "internal error while scoring; see the server log"}'
        if answered is not None:
            await answer(send, *answered)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class NotExplainableMiddleware:
    """`POST /explain` for a model no attribution method covers: 501 naming its estimator,
    at once. BentoML answers a 5xx raised in an API with a generic message only."""

    def __init__(self, app: ASGIApp, refusal: Callable[[], str | None]) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        explaining = scope["type"] == "http" and scope["method"] == "POST"
        if explaining and scope["path"] == "/explain" and (reason := self.refusal()):
            await refuse(send, HTTPStatus.NOT_IMPLEMENTED, f"no explanation: {reason}")
            return
        await self.app(scope, receive, send)


class DocumentMiddleware:
    """`GET /docs.json`: the service's own OpenAPI document (serving/openapi.py), which
    declares every answer the service gives, in place of BentoML's."""

    def __init__(self, app: ASGIApp, document: Callable[[], bytes]) -> None:
        self.app = app
        self.document = document

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/docs.json":
            await answer(send, 200, self.document())
            return
        await self.app(scope, receive, send)
