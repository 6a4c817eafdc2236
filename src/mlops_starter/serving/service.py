"""The BentoML service: one registered model version behind a validated HTTP API.

Which version, and how input and load are treated, are bento arguments that
`mlops package` and `mlops serve` write from the registry and params.yaml (`serve:`);
a built bento keeps its own. Only where the prediction log goes depends on the
machine: MLOPS_PREDICTION_LOG_DIR overrides `serve.prediction_log_dir`.

    POST /predict    records in, per record: probability, label, model version, warnings
    POST /explain    records in, per record: each feature's contribution to the score
    GET  /metadata   model name, version, run id, threshold, data hash, feature schema
    GET  /healthz /livez /readyz /metrics    BentoML's own; readyz waits for the model
"""

import datetime as dt
import json
import os
import uuid
from http import HTTPStatus
from typing import Any

import bentoml
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_starter.config import ServeConfig
from mlops_starter.serving.schema import (
    REQUEST_ID,
    RecordBase,
    quality_issues,
    record_model,
    records_to_frame,
    records_type,
)

with bentoml.importing():
    import mlflow
    import numpy as np

    from mlops_starter.serving.explain import ExplainError, explain
    from mlops_starter.serving.prediction_log import PredictionLog, sampled


class ServeArgs(ServeConfig):
    model_tag: str = Field(description="BentoML model store tag, written by `mlops package`")


ARGS = bentoml.use_arguments(ServeArgs)
MODEL = bentoml.models.BentoModel(ARGS.model_tag)
_stored = MODEL.stored
if _stored is None:
    raise RuntimeError(
        f"model {ARGS.model_tag} is not in the BentoML model store; run `make serve` or `make bento`"
    )
MLFLOW_MODEL_PATH = _stored.path_of("mlflow_model")
LABELS: dict[str, str] = dict(_stored.info.labels)
# Written by the train stage into the MLmodel file and copied by `mlops package`:
# threshold, positive label, id column, training data hash, per-feature profile.
SERVING_INFO: dict[str, Any] = dict(_stored.info.metadata)
PROFILE: dict[str, dict[str, Any]] = SERVING_INFO["feature_profile"]
THRESHOLD = float(SERVING_INFO["threshold"])
ID_FIELD: str | None = SERVING_INFO.get("id_column")
PREDICTION_LOG_DIR = os.environ.get("MLOPS_PREDICTION_LOG_DIR", ARGS.prediction_log_dir)

FeatureRecord = record_model(PROFILE, ID_FIELD, ARGS.unseen_category, ARGS.out_of_range)
Records = records_type(FeatureRecord, ARGS.max_records)


class Prediction(BaseModel):
    probability: float = Field(description="probability of the positive class")
    label: int = Field(description="1 if probability >= the tuned threshold (positive class)")
    model_version: str
    id: str | int | None = Field(None, description="the record's id, echoed")
    warnings: list[str] = Field(description="accepted input issues, as field:kind")


class NotExplainable(bentoml.exceptions.BentoMLException):
    error_code = HTTPStatus.NOT_IMPLEMENTED


class Explanation(BaseModel):
    id: str | int | None = Field(None, description="the record's id, echoed")
    method: str = Field(description="how the contributions were computed")
    scale: str = Field(description="log-odds or probability: the scale of the numbers below")
    base_value: float = Field(description="the model's output before any feature is known")
    contributions: dict[str, float] = Field(
        description="per original feature, largest effect first; base_value + their sum = margin"
    )
    margin: float = Field(description="the uncalibrated model's raw output for this record")
    probability: float = Field(description="the served probability (as /predict answers)")
    model_version: str


QUALITY_ISSUES = bentoml.metrics.Counter(
    name="mlops_input_quality_issues",
    documentation="Input values outside the training profile, by field, kind and outcome",
    labelnames=["field", "kind", "outcome"],
)
PREDICTED_PROBABILITY = bentoml.metrics.Histogram(
    name="mlops_predicted_probability",
    documentation="Predicted probability of the positive class",
    buckets=[round(0.05 * i, 2) for i in range(1, 21)],
)
PREDICTIONS = bentoml.metrics.Counter(
    name="mlops_predictions",
    documentation="Scored records by predicted label",
    labelnames=["label"],
)
MODEL_INFO = bentoml.metrics.Gauge(
    name="mlops_model_info",
    documentation="The served model version (value is always 1)",
    labelnames=["model", "version", "run_id"],
    multiprocess_mode="max",
)
LOG_DROPPED = bentoml.metrics.Counter(
    name="mlops_prediction_log_dropped",
    documentation="Prediction-log entries dropped (queue full or write failed)",
)


def count_rejection(field: str, kind: str) -> None:
    QUALITY_ISSUES.labels(field=field, kind=kind, outcome="rejected").inc()


class RequestIdMiddleware:
    """Give each request an id (the caller's X-Request-ID, or a new one), visible to
    record validation and echoed in the response headers."""

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


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
            await _refuse(
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
            await _refuse(
                send,
                413,
                f"request body is {received} bytes; the limit is {self.limit} "
                "(serve.max_body_bytes): split the records over several requests",
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


metadata_app = FastAPI(title="metadata")


@metadata_app.get("/metadata")
def metadata() -> dict[str, Any]:
    """What is being served and what it expects."""
    return {
        "model": LABELS.get("registered_model"),
        "version": LABELS.get("registered_version"),
        "run_id": LABELS.get("run_id"),
        "bento_model": str(MODEL.tag),
        "threshold": THRESHOLD,
        "positive_label": SERVING_INFO.get("positive_label"),
        "id_field": ID_FIELD,
        "data_train_md5": SERVING_INFO.get("data_train_md5"),
        "policies": {"unseen_category": ARGS.unseen_category, "out_of_range": ARGS.out_of_range},
        "limits": {"max_records": ARGS.max_records, "max_body_bytes": ARGS.max_body_bytes},
        "feature_schema": PROFILE,
        "model_card": SERVING_INFO.get("model_card"),
    }


@bentoml.service(
    name="classifier",
    workers=ARGS.workers,
    logging={"access": {"enabled": ARGS.access_log}},
    traffic={"timeout": 60},
)
@bentoml.asgi_app(metadata_app, path="/")
class ClassifierService:
    """Scores records with the model version named by the bento's `model_tag`."""

    model_ref = MODEL  # at class scope, so `bentoml build` packs the model into the bento

    def __init__(self) -> None:
        self.ready = False
        self.version = LABELS.get("registered_version", "unknown")
        self.model = mlflow.sklearn.load_model(MLFLOW_MODEL_PATH)
        RecordBase.on_rejected = count_rejection
        self.log = PredictionLog(PREDICTION_LOG_DIR, on_drop=LOG_DROPPED.inc).start()
        MODEL_INFO.labels(
            model=LABELS.get("registered_model", ""),
            version=self.version,
            run_id=LABELS.get("run_id", ""),
        ).set(1)
        example = mlflow.models.Model.load(MLFLOW_MODEL_PATH).load_input_example(MLFLOW_MODEL_PATH)
        self.model.predict_proba(example)  # warm up; a model that cannot score never turns ready
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.log.close()

    @bentoml.api(
        batchable=True, max_batch_size=ARGS.max_batch_size, max_latency_ms=ARGS.max_latency_ms
    )
    def predict(self, records: Records) -> list[Prediction]:  # type: ignore[valid-type]
        """Score one or many records; requests arriving together share one model call."""
        return self._score(records)

    @bentoml.api
    def explain(self, records: Records) -> list[Explanation]:  # type: ignore[valid-type]
        """Each feature's additive contribution to each record's score."""
        return self._explain(records)

    def _explain(self, records: list[RecordBase]) -> list[Explanation]:
        frame = records_to_frame(records, PROFILE)
        try:
            found = explain(self.model, frame)
        except ExplainError as error:
            raise NotExplainable(f"no explanation for this model: {error}") from None
        identities = [getattr(r, ID_FIELD) if ID_FIELD else None for r in records]
        return [
            Explanation(
                id=identity,
                method=found.method,
                scale=found.scale,
                base_value=found.base_value,
                contributions=dict(
                    sorted(row.items(), key=lambda item: abs(item[1]), reverse=True)
                ),
                margin=float(margin),
                probability=float(probability),
                model_version=self.version,
            )
            for identity, row, margin, probability in zip(
                identities,
                found.contributions.to_dict("records"),
                found.margin,
                found.probability,
                strict=True,
            )
        ]

    def _score(self, records: list[RecordBase]) -> list[Prediction]:
        frame = records_to_frame(records, PROFILE)
        probabilities = self.model.predict_proba(frame)[:, 1]
        labels = (probabilities >= THRESHOLD).astype(int)
        issues = quality_issues(frame, PROFILE)
        self._observe(probabilities, labels, issues)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        identities = [getattr(r, ID_FIELD) if ID_FIELD else None for r in records]
        self.log.write(
            [
                {
                    "timestamp": now,
                    "request_id": record.request_id,
                    "model": LABELS.get("registered_model"),
                    "model_version": self.version,
                    "id": identity,
                    "features": record,  # serialised off the request path, id included
                    "probability": float(probability),
                    "label": int(label),
                    "issues": row_issues,
                }
                for record, identity, probability, label, row_issues in zip(
                    records, identities, probabilities, labels, issues, strict=True
                )
                if sampled(record.request_id, ARGS.log_sample_rate)
            ]
        )
        return [
            Prediction.model_construct(  # values built here: skip re-validating them
                probability=float(probability),
                label=int(label),
                model_version=self.version,
                id=identity,
                warnings=[i for i in row_issues if not i.endswith(":missing")],
            )
            for identity, probability, label, row_issues in zip(
                identities, probabilities, labels, issues, strict=True
            )
        ]

    @staticmethod
    def _observe(
        probabilities: "np.ndarray", labels: "np.ndarray", issues: list[list[str]]
    ) -> None:
        for probability in probabilities:
            PREDICTED_PROBABILITY.observe(float(probability))
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            PREDICTIONS.labels(label=str(label)).inc(int(count))
        for row_issues in issues:
            for issue in row_issues:
                field, kind = issue.split(":", 1)
                QUALITY_ISSUES.labels(field=field, kind=kind, outcome="accepted").inc()


ClassifierService.add_asgi_middleware(  # type: ignore[attr-defined]  # added by @bentoml.service
    RequestGuardMiddleware, limit=ARGS.max_body_bytes
)
ClassifierService.add_asgi_middleware(RequestIdMiddleware)  # type: ignore[attr-defined]
