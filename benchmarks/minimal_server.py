"""The serving benchmark's ceiling: what HTTP allows on this machine with this model.

A bare ASGI app under uvicorn, with as many workers as the service: it reads the body,
parses it (orjson), turns records into columns, calls the compiled scorer the service
uses and answers each record's probability. No validation, logging, metrics, request ids
or API key: everything the service adds is measured against this. Like the service, it
closes a kept-alive connection now and then, so its workers share the clients.

    MINIMAL_MODEL_URI=models:/churn-classifier/1 uvicorn --app-dir benchmarks \
        minimal_server:create_app --factory --workers 2 --port 3100
"""

from __future__ import annotations

import os
import random
from typing import Any

import mlflow
import numpy as np
import orjson

from mlops_starter.config import Config
from mlops_starter.serving.scorer import build_scorer
from mlops_starter.storage import LoggedModel


def create_app() -> Any:
    uri = os.environ["MINIMAL_MODEL_URI"]
    profile = mlflow.models.get_model_info(uri).metadata["feature_profile"]
    scorer, _ = build_scorer(LoggedModel.load(uri).pipeline, profile)
    numeric = [name for name, spec in profile.items() if spec["kind"] != "category"]
    # Connections recycled as the service recycles them (serve.keepalive_requests), so both
    # spread their clients over both workers alike.
    recycle_share = 1 / Config.from_yaml().serve.keepalive_requests

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # readiness, for the benchmark's wait
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        records = orjson.loads(body)["records"]
        columns = {
            name: np.array(
                [r.get(name) for r in records], dtype=float if name in numeric else object
            )
            for name in profile
        }
        answer = orjson.dumps([{"probability": p} for p in scorer.predict(columns).tolist()])
        headers = [(b"content-type", b"application/json")]
        if random.random() < recycle_share:  # noqa: S311 (not security)
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app
