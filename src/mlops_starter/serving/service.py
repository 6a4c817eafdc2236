"""The BentoML service: one registered model version behind a validated HTTP API, and
optionally a challenger beside it, in shadow or on a share of traffic (serving/routing.py).

Which version, and how input and load are treated, are bento arguments that
`mlops package` and `mlops serve` write from the registry and params.yaml (`serve:`);
a built bento keeps its own. Only where the prediction log goes depends on the
machine: MLOPS_PREDICTION_LOG_DIR overrides `serve.prediction_log_dir`.

    POST /predict    {"records": [...]} in, per record: probability, label, the version that
                     answered, warnings; or {"columns": {field: [...]}} in, the same as columns
    POST /explain    records in, per record: each feature's contribution to the score
    GET  /metadata   model name, version, run id, threshold, data hash, feature schema,
                     model card, which scorer serves (compiled or the pipeline), experiment
    GET  /healthz /livez /readyz /metrics    BentoML's own; readyz waits for the model

With an API key on the machine (serving/auth.py), all but the last line need it.
"""

import datetime as dt
import json
import logging
import os
import random
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_starter.config import ServeConfig
from mlops_starter.extensions import import_extensions
from mlops_starter.serving.auth import ApiKeyMiddleware, api_key
from mlops_starter.serving.routing import (
    Router,
    SameTurnBatcher,
    ServedVersion,
    load_challenger,
    rows_of,
)
from mlops_starter.serving.schema import (
    REQUEST_ID,
    ColumnsInvalid,
    RecordBase,
    issue_masks,
    issues_per_row,
    record_model,
    records_as_columns,
    records_to_columns,
    records_type,
    validate_columns,
)
from mlops_starter.storage import LoggedModel

with bentoml.importing():
    import numpy as np
    import orjson

    from mlops_starter.serving.explain import ExplainError, explain, refusal
    from mlops_starter.serving.histogram import observe_all
    from mlops_starter.serving.prediction_log import LogBatch, PredictionLog, sampled
    from mlops_starter.serving.scorer import build_scorer, columns_to_frame


class ServeArgs(ServeConfig):
    model_tag: str = Field(description="BentoML model store tag, written by `mlops package`")
    challenger_tag: str | None = Field(
        None, description="the challenger's tag (`mlops package --challenger`), or none"
    )
    extensions: list[str] = Field(
        [],
        description="params.yaml's extensions: a team candidate's types are trusted once imported",
    )


ARGS = bentoml.use_arguments(ServeArgs)
import_extensions(ARGS.extensions, Path.cwd())
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
API_KEY = api_key(ARGS.auth, os.environ)
EXPERIMENT = ARGS.experiment
CHALLENGER_MODEL = bentoml.models.BentoModel(ARGS.challenger_tag) if ARGS.challenger_tag else None

FeatureRecord = record_model(PROFILE, ID_FIELD, ARGS.unseen_category, ARGS.out_of_range)
Records = records_type(FeatureRecord, ARGS.max_records)


class Prediction(BaseModel):
    probability: float = Field(description="probability of the positive class")
    label: int = Field(description="1 if probability >= the tuned threshold (positive class)")
    model_version: str = Field(description="the version that answered this record")
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
# Per version and arm (champion, challenger, or shadow: scored but not answered).
PREDICTED_PROBABILITY = bentoml.metrics.Histogram(
    name="mlops_predicted_probability",
    documentation="Predicted probability of the positive class, by version and arm",
    labelnames=["version", "arm"],
    buckets=[round(0.05 * i, 2) for i in range(1, 21)],
)
PREDICTIONS = bentoml.metrics.Counter(
    name="mlops_predictions",
    documentation="Scored records by version, arm and predicted label",
    labelnames=["version", "arm", "label"],
)
SCORING_SECONDS = bentoml.metrics.Histogram(
    name="mlops_scoring_seconds",
    documentation="Time to score one batch, by version and arm; its count is batches scored",
    labelnames=["version", "arm"],
    buckets=[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
)
MODEL_INFO = bentoml.metrics.Gauge(
    name="mlops_model_info",
    documentation="The served model versions and their arms (value is always 1)",
    labelnames=["model", "version", "run_id", "arm"],
    multiprocess_mode="max",
)
EXPERIMENT_ACTIVE = bentoml.metrics.Gauge(
    name="mlops_experiment_active",
    documentation="1 while the challenger takes part, 0 when the experiment is off or failed",
    labelnames=["experiment", "mode"],
    multiprocess_mode="min",
)
UNAUTHORIZED = bentoml.metrics.Counter(
    name="mlops_unauthorized_requests",
    documentation="Requests refused (401) for a missing or wrong API key",
)
LOG_DROPPED = bentoml.metrics.Counter(
    name="mlops_prediction_log_dropped",
    documentation="Prediction-log entries dropped (queue full or write failed)",
)
SHADOW_DROPPED = bentoml.metrics.Counter(
    name="mlops_shadow_dropped",
    documentation="Rows the shadow challenger did not score (queue full or scoring failed)",
)


def observe(
    version: ServedVersion,
    arm: str,
    probabilities: "np.ndarray",
    labels: "np.ndarray",
    seconds: float,
) -> None:
    """Count one scored batch in the per-version metrics."""
    SCORING_SECONDS.labels(version=version.version, arm=arm).observe(seconds)
    observe_all(PREDICTED_PROBABILITY.labels(version=version.version, arm=arm), probabilities)
    for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
        PREDICTIONS.labels(version=version.version, arm=arm, label=str(label)).inc(int(count))


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


async def _refuse(send: Send, status: int, message: str) -> None:
    await _answer(send, status, json.dumps({"error": message}).encode())


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


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ColumnWisePredictMiddleware:
    """`POST /predict`, checked column by column: the body is parsed once (orjson), each
    field checked over all rows at once (vectorised), scored and encoded by orjson,
    without a pydantic object per record.

    - `{"columns": {...}}`: always here; a broken contract gets 400 naming column and row.
    - `{"records": [...]}` that meets the contract: here too, answered as the records API
      answers. Records that break it go on to the records API, which refuses them with
      the same 400 as it always has (the column-wise check only decides the fast path).
    - Anything else goes on to the records API.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            parsed = None  # the records API answers malformed JSON as it always has
        service: ClassifierService = bentoml.get_current_service()
        answer: tuple[int, bytes] | None = None
        # On the event loop, as the records API: the work is CPU-bound and holds the GIL,
        # and a busy worker then leaves new connections to an idle one.
        try:
            if isinstance(parsed, dict) and "columns" in parsed:
                answer = await service.score_columns(parsed, REQUEST_ID.get())
            elif isinstance(parsed, dict) and parsed.keys() == {"records"}:
                answer = await service.score_records(parsed["records"], REQUEST_ID.get())
        except Exception:  # a bug, not the caller's: answer 500 (counted), never hang
            logging.getLogger(__name__).exception("scoring a request column-wise failed")
            answer = 500, b'{"error": "internal error while scoring; see the server log"}'
        if answer is not None:
            await _answer(send, *answer)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class NotExplainableMiddleware:
    """`POST /explain` for a model no attribution method covers: 501 naming its estimator,
    at once. BentoML answers a 5xx raised in an API with a generic message only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/explain":
            service: ClassifierService = bentoml.get_current_service()
            if service.explain_refusal:
                body = orjson.dumps({"error": f"no explanation: {service.explain_refusal}"})
                await _answer(send, HTTPStatus.NOT_IMPLEMENTED, body)
                return
        await self.app(scope, receive, send)


metadata_app = FastAPI(title="metadata")


@bentoml.service(
    name="classifier",
    workers=ARGS.workers,
    logging={"access": {"enabled": ARGS.access_log}},
    traffic={"timeout": 60},
    tracing={"excluded_urls": "predict,explain"},
)
@bentoml.asgi_app(metadata_app, path="/")
class ClassifierService:
    """Scores records with the model version named by the bento's `model_tag`."""

    # At class scope, so `bentoml build` packs the models into the bento.
    model_ref = MODEL
    challenger_ref = CHALLENGER_MODEL

    def __init__(self) -> None:
        self.ready = False
        self.version = LABELS.get("registered_version", "unknown")
        logged = LoggedModel.load(MLFLOW_MODEL_PATH)  # allow-listed types only
        self.model = logged.pipeline
        self.explain_refusal = refusal(self.model)
        RecordBase.on_rejected = count_rejection
        self.log = PredictionLog(PREDICTION_LOG_DIR, on_drop=LOG_DROPPED.inc).start()
        # The compiled scorer, checked against the pipeline here as at packaging time.
        self.scorer, self.scorer_check = build_scorer(self.model, PROFILE)
        self.model.predict_proba(
            logged.input_example()
        )  # warm up; a model that cannot score never turns ready
        champion = ServedVersion(
            LABELS.get("registered_model", ""),
            self.version,
            THRESHOLD,
            self.scorer,
            LABELS.get("run_id", ""),
        )
        challenger, off_because = self._load_challenger()
        self.router = Router(
            champion,
            challenger,
            EXPERIMENT,
            observe,
            self.log.write,
            SHADOW_DROPPED.inc,
            off_because,
        )
        self.batcher = SameTurnBatcher(self.router.score)
        EXPERIMENT_ACTIVE.labels(experiment=EXPERIMENT.name, mode=EXPERIMENT.mode).set(
            int(challenger is not None)
        )
        for served in (champion, challenger) if challenger else (champion,):
            MODEL_INFO.labels(
                model=served.model,
                version=served.version,
                run_id=served.run_id,
                arm=self.router.arm(served.version),
            ).set(1)
        self.ready = True

    def _load_challenger(self) -> tuple[ServedVersion | None, str | None]:
        """The challenger, or None and why the experiment is off. A challenger that cannot
        load or take the champion's requests turns the experiment off, never the service."""
        if EXPERIMENT.mode == "off" or CHALLENGER_MODEL is None:
            return None, "serve.experiment.mode is off" if EXPERIMENT.mode == "off" else (
                "this bento holds no challenger (`mlops package --challenger VERSION`)"
            )
        try:
            stored = CHALLENGER_MODEL.stored
            if stored is None:
                raise RuntimeError("it is not in the BentoML model store")
            challenger = load_challenger(
                stored.path_of("mlflow_model"),
                dict(stored.info.metadata),
                dict(stored.info.labels),
                SERVING_INFO,
            )
        except Exception as error:  # any failure of the challenger leaves the champion serving
            reason = f"challenger {ARGS.challenger_tag} failed to load: {error}"
            logging.getLogger(__name__).error("experiment %s is off: %s", EXPERIMENT.name, reason)
            return None, reason
        return challenger, None

    @metadata_app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
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
            "policies": {
                "unseen_category": ARGS.unseen_category,
                "out_of_range": ARGS.out_of_range,
                "api_key": API_KEY is not None,
            },
            "limits": {"max_records": ARGS.max_records, "max_body_bytes": ARGS.max_body_bytes},
            "scorer": {
                "kind": self.scorer.kind,
                "detail": self.scorer.detail,
                "check_at_start": self.scorer_check,
                "check_at_packaging": SERVING_INFO.get("scorer_check"),
            },
            "feature_schema": PROFILE,
            "model_card": SERVING_INFO.get("model_card"),
            "experiment": self.router.describe(),
        }

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.router.close()
        self.log.close()

    @bentoml.api(
        batchable=True, max_batch_size=ARGS.max_batch_size, max_latency_ms=ARGS.max_latency_ms
    )
    async def predict(self, records: Records) -> list[Prediction]:  # type: ignore[valid-type]
        """Score one or many records; requests arriving together share one model call.
        On the event loop: a compiled batch takes well under a millisecond, less than
        handing it to a thread and back."""
        return self._score(records)

    @bentoml.api
    def explain(self, records: Records) -> list[Explanation]:  # type: ignore[valid-type]
        """Each feature's additive contribution to each record's score."""
        return self._explain(records)

    def _explain(self, records: list[RecordBase]) -> list[Explanation]:
        frame = columns_to_frame(records_to_columns(records, PROFILE), PROFILE)
        try:
            found = explain(self.model, frame)
        except ExplainError as error:
            raise NotExplainable(f"no explanation for this model: {error}") from None
        identities = [r.value(ID_FIELD) if ID_FIELD else None for r in records]
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
        columns = records_to_columns(records, PROFILE)
        identities = [r.value(ID_FIELD) if ID_FIELD else None for r in records]
        masks = self._counted_issues(columns)
        probabilities, labels, versions = self.router.score(
            columns, identities if ID_FIELD else None
        )
        self._log_records(records, identities, probabilities, labels, versions, masks, columns)
        issues = issues_per_row(masks, len(records))
        return [
            Prediction.model_construct(  # values built here: skip re-validating them
                probability=probability,
                label=label,
                model_version=version,
                id=identity,
                warnings=[i for i in row_issues if not i.endswith(":missing")],
            )
            for identity, version, probability, label, row_issues in zip(
                identities, versions, probabilities.tolist(), labels.tolist(), issues, strict=True
            )
        ]

    def _log_records(
        self,
        records: list[RecordBase],
        identities: list[Any],
        probabilities: "np.ndarray",
        labels: "np.ndarray",
        versions: list[str],
        masks: dict[str, "np.ndarray"],
        columns: dict[str, "np.ndarray"],
    ) -> None:
        """Log an adaptive batch, which may hold several requests' records: each record
        keeps its own request id, and the sampling keeps or drops whole requests."""
        rows = np.flatnonzero([sampled(r.request_id, ARGS.log_sample_rate) for r in records])
        if not len(rows):
            return
        kept = [records[row] for row in rows]
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        request_ids = [record.request_id for record in kept]
        logged_ids = [identities[row] for row in rows]
        self.log.write(
            LogBatch(
                {
                    "timestamp": now,
                    "request_id": request_ids,
                    "model": LABELS.get("registered_model"),
                    **self.router.answered_by([versions[row] for row in rows]),
                },
                logged_ids if ID_FIELD else None,
                {
                    column: [record.value(column) for record in kept]
                    for column in FeatureRecord.attribute_of
                },
                probabilities[rows],
                labels[rows],
                {issue: mask[rows] for issue, mask in masks.items()},
            )
        )
        self.router.shadow_rows(
            columns if len(rows) == len(records) else rows_of(columns, rows),
            now,
            request_ids,
            logged_ids,
        )

    async def score_columns(self, body: dict[str, Any], request_id: str) -> tuple[int, bytes]:
        """A columnar /predict body -> (HTTP status, JSON answer), with no per-record objects:
        `{"model_version", "columns": {"probability", "label"[, id][, model_version]},
        "warnings": {field:kind: [rows]}}`; `columns.model_version`, the version that
        answered each row, only while a split experiment runs."""
        try:
            if extra := sorted(set(body) - {"columns"}):
                raise ColumnsInvalid(
                    [{"loc": [key], "type": "unknown_field", "msg": "not allowed"} for key in extra]
                )
            columns, ids = self._validated(body["columns"])
        except ColumnsInvalid as invalid:
            for error in invalid.errors:
                loc = error["loc"]
                count_rejection(str(loc[1]) if len(loc) > 1 else str(loc[0]), error["type"])
            return 400, orjson.dumps({"detail": invalid.errors})
        probabilities, labels, versions, masks = await self._score_and_log(
            columns, ids, body["columns"], request_id
        )
        answer: dict[str, Any] = {"probability": probabilities, "label": labels}
        if ID_FIELD:
            answer["id"] = ids
        if self.router.splitting:
            answer["model_version"] = versions
        warnings = {k: np.flatnonzero(m) for k, m in masks.items() if not k.endswith(":missing")}
        return 200, orjson.dumps(
            {"model_version": self.version, "columns": answer, "warnings": warnings},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    async def score_records(self, records: Any, request_id: str) -> tuple[int, bytes] | None:
        """Records that meet the contract -> (200, the records API's answer), checked and
        scored column-wise; None for any that do not, which the records API then refuses
        (and counts) as it always has."""
        body = records_as_columns(records)
        if body is None:
            return None
        try:
            columns, ids = self._validated(body)
        except ColumnsInvalid:
            return None
        probabilities, labels, versions, masks = await self._score_and_log(
            columns, ids, body, request_id
        )
        rows = len(probabilities)
        return 200, orjson.dumps(
            [
                {
                    "probability": probability,
                    "label": label,
                    "model_version": version,
                    "id": identity,
                    "warnings": [i for i in row_issues if not i.endswith(":missing")],
                }
                for probability, label, version, identity, row_issues in zip(
                    probabilities.tolist(),
                    labels.tolist(),
                    versions,
                    ids or [None] * rows,
                    issues_per_row(masks, rows),
                    strict=True,
                )
            ]
        )

    def _validated(self, body: Any) -> tuple[dict[str, "np.ndarray"], list[Any] | None]:
        return validate_columns(
            body, PROFILE, ID_FIELD, ARGS.unseen_category, ARGS.out_of_range, ARGS.max_records
        )

    async def _score_and_log(
        self,
        columns: dict[str, "np.ndarray"],
        ids: list[Any] | None,
        features: dict[str, list[Any]],
        request_id: str,
    ) -> tuple["np.ndarray", "np.ndarray", list[str], dict[str, "np.ndarray"]]:
        """Score a column-wise request with the others of this turn, and log it (rows as
        sent, in `features`)."""
        masks = self._counted_issues(columns)
        probabilities, labels, versions = await self.batcher.score(columns, ids)
        if not sampled(request_id, ARGS.log_sample_rate):
            return probabilities, labels, versions, masks
        rows = len(probabilities)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        self.log.write(
            LogBatch(
                {
                    "timestamp": now,
                    "request_id": request_id,
                    "model": LABELS.get("registered_model"),
                    **self.router.answered_by(versions),
                },
                ids,
                features,
                probabilities,
                labels,
                masks,
            )
        )
        self.router.shadow_rows(columns, now, [request_id] * rows, ids or [None] * rows)
        return probabilities, labels, versions, masks

    def _counted_issues(self, columns: dict[str, "np.ndarray"]) -> dict[str, "np.ndarray"]:
        """Accepted-issue masks for a batch, counted in metrics."""
        masks = issue_masks(columns, PROFILE)
        for issue, mask in masks.items():
            field, kind = issue.split(":", 1)
            QUALITY_ISSUES.labels(field=field, kind=kind, outcome="accepted").inc(int(mask.sum()))
        return masks


# Outermost first: a stranger is refused before anything reads the body.
if API_KEY is not None:
    ClassifierService.add_asgi_middleware(  # type: ignore[attr-defined]  # added by @bentoml.service
        ApiKeyMiddleware, key=API_KEY, on_refused=UNAUTHORIZED.inc
    )
ClassifierService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuardMiddleware, limit=ARGS.max_body_bytes
)
for _api in ClassifierService.apis.values():  # type: ignore[attr-defined]
    # Without a declared media type, BentoML derives it from the output's JSON schema on
    # every response: a fifth of a single-row request's time (py-spy, benchmarks/serving.py).
    _api.output_spec.media_type = "application/json"
ClassifierService.add_asgi_middleware(  # type: ignore[attr-defined]
    ConnectionRecycleMiddleware, requests=ARGS.keepalive_requests
)
ClassifierService.add_asgi_middleware(RequestIdMiddleware)  # type: ignore[attr-defined]
ClassifierService.add_asgi_middleware(ColumnWisePredictMiddleware)  # type: ignore[attr-defined]
ClassifierService.add_asgi_middleware(NotExplainableMiddleware)  # type: ignore[attr-defined]
