"""The BentoML service: one registered model version behind a validated HTTP API, and
optionally a challenger beside it, in shadow or on a share of traffic (serving/routing.py).
This module is the list of endpoints; what they share lives beside it: the input
contract (schema.py), the answer and log entries (answers.py), the middlewares
(middleware.py), the metrics (metrics.py), the loaded versions (loading.py) and the
OpenAPI document (openapi.py).

Which version, and how input and load are treated, are bento arguments that
`mlops package` and `mlops serve` write from the registry and params.yaml (`serve:`);
a built bento keeps its own. Only where the prediction log goes depends on the
machine: MLOPS_PREDICTION_LOG_DIR overrides `serve.prediction_log_dir`.

    POST /predict    {"records": [...]} in, per record the task's answer (binary: probability
                     and label; multi-class: label and each class's probability; regression:
                     value and interval), the version that answered, warnings; or
                     {"columns": {field: [...]}} in, the same as columns
    POST /explain    records in, per record: each feature's contribution to the answer (per
                     class, for a multi-class model)
    GET  /metadata   model name, version, run id, task and how it decides (threshold,
                     classes, interval), data hash, feature schema,
                     model card, which scorer serves (compiled or the pipeline), experiment
    GET  /docs.json  the OpenAPI document: every answer above, declared with its body
    GET  /healthz /livez /readyz /metrics    BentoML's own; readyz waits for the model

With an API key on the machine (serving/auth.py), all but the last line need it.
"""

import datetime as dt
import functools
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI
from pydantic import ConfigDict

from mlops_starter.extensions import import_extensions
from mlops_starter.serving import metrics
from mlops_starter.serving.auth import ApiKeyMiddleware, api_key
from mlops_starter.serving.loading import BentoVersion, ServeArgs, load_challenger_of, load_champion
from mlops_starter.serving.middleware import (
    REQUEST_ID,
    ConnectionRecycleMiddleware,
    DocumentMiddleware,
    FastPredictMiddleware,
    NotExplainableMiddleware,
    RequestGuardMiddleware,
    RequestIdMiddleware,
)
from mlops_starter.serving.schema import RecordBase, contract_of
from mlops_starter.tasks import answers_of

with bentoml.importing():
    import numpy as np
    import orjson

    from mlops_starter.serving.answers import ScoredRequest, Shape
    from mlops_starter.serving.explain import ExplainError, explain, explanation_rows, refusal
    from mlops_starter.serving.openapi import published
    from mlops_starter.serving.prediction_log import PredictionLog, sampled
    from mlops_starter.serving.routing import Router, SameTurnBatcher
    from mlops_starter.serving.schema import (
        ColumnsInvalid,
        issue_masks,
        records_as_columns,
        records_to_columns,
    )
    from mlops_starter.serving.scorer import columns_to_frame


ARGS = bentoml.use_arguments(ServeArgs)
import_extensions(ARGS.extensions, Path.cwd())
MODEL = bentoml.models.BentoModel(ARGS.model_tag)
CHALLENGER_MODEL = bentoml.models.BentoModel(ARGS.challenger_tag) if ARGS.challenger_tag else None
CHAMPION = BentoVersion.of(MODEL)
PROFILE = CHAMPION.profile
ID_FIELD = CHAMPION.id_field
CONTRACT = contract_of(PROFILE, ID_FIELD, ARGS)
ANSWERS = answers_of(CHAMPION.info)  # what each record's answer holds, by the model's task
FeatureRecord = CONTRACT.record_model()
Records = CONTRACT.records_type(FeatureRecord)
PREDICTION_LOG_DIR = os.environ.get("MLOPS_PREDICTION_LOG_DIR", ARGS.prediction_log_dir)
API_KEY = api_key(ARGS.auth, os.environ)


class RecordsBody(bentoml.IODescriptor):
    """The records body of /predict and /explain: `records` and nothing else."""

    model_config = ConfigDict(extra="forbid")
    records: Records  # type: ignore[valid-type]


class NotExplainable(bentoml.exceptions.BentoMLException):
    error_code = HTTPStatus.NOT_IMPLEMENTED


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
        self.version = CHAMPION.version
        loaded = load_champion(CHAMPION)
        self.model, self.scorer, self.scorer_check = (
            loaded.pipeline,
            loaded.served.scorer,
            loaded.scorer_check,
        )
        self.explain_refusal = refusal(self.model)
        RecordBase.on_rejected = metrics.count_rejection
        self.log = PredictionLog(
            PREDICTION_LOG_DIR,
            on_drop=metrics.LOG_DROPPED.inc,
            max_bytes=ARGS.prediction_log_max_mb << 20,
            keep=ARGS.prediction_log_keep,
        ).start()
        challenger, off_because = load_challenger_of(
            CHAMPION, CHALLENGER_MODEL, ARGS.experiment.mode
        )
        self.router = Router(
            loaded.served,
            challenger,
            ARGS.experiment,
            metrics.observe,
            self.log.write,
            metrics.SHADOW_DROPPED.inc,
            off_because,
        )
        self.batcher = SameTurnBatcher(self.router.score)
        metrics.EXPERIMENT_ACTIVE.labels(
            experiment=ARGS.experiment.name, mode=ARGS.experiment.mode
        ).set(int(challenger is not None))
        for served in (loaded.served, challenger) if challenger else (loaded.served,):
            metrics.MODEL_INFO.labels(
                model=served.model,
                version=served.version,
                run_id=served.run_id,
                arm=self.router.arm(served.version),
            ).set(1)
        self.ready = True

    @metadata_app.get("/metadata")
    def metadata(self) -> dict[str, Any]:
        """What is being served and what it expects."""
        return {
            "model": CHAMPION.labels.get("registered_model"),
            "version": CHAMPION.labels.get("registered_version"),
            "run_id": CHAMPION.labels.get("run_id"),
            "bento_model": CHAMPION.tag,
            "task": ANSWERS.task,
            **ANSWERS.described(),
            "id_field": ID_FIELD,
            "data_train_md5": CHAMPION.info.get("data_train_md5"),
            "policies": {
                "unseen_category": ARGS.unseen_category,
                "out_of_range": ARGS.out_of_range,
                "unknown_fields": ARGS.unknown_fields,
                "api_key": API_KEY is not None,
            },
            "limits": {"max_records": ARGS.max_records, "max_body_bytes": ARGS.max_body_bytes},
            "scorer": {
                "kind": self.scorer.kind,
                "detail": self.scorer.detail,
                "check_at_start": self.scorer_check,
                "check_at_packaging": CHAMPION.info.get("scorer_check"),
            },
            "feature_schema": PROFILE,
            "model_card": CHAMPION.info.get("model_card"),
            "experiment": self.router.describe(),
        }

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.router.close()
        self.log.close()

    @bentoml.api(input_spec=RecordsBody)
    async def predict(self, records: Records) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        """Score one or many records, or columns; requests arriving together share one
        model call. Records and columns that meet the contract are answered before they
        reach here (middleware.FastPredictMiddleware); this API answers in-process
        callers, and refuses with pydantic's 400 the records that break the contract. The
        answer's schema is the task's (openapi.py's `Prediction`)."""
        return await self._predict(records)

    @bentoml.api(input_spec=RecordsBody)
    def explain(self, records: Records) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        """Each feature's additive contribution to each record's answer (per class, for a
        multi-class model); the schema is the task's (openapi.py's `Explanation`)."""
        return self._explain(records)

    async def _predict(self, records: list[RecordBase]) -> list[dict[str, Any]]:
        sent = {column: [r.value(column) for r in records] for column in FeatureRecord.attribute_of}
        unknown = sorted({name for record in records for name in record.unknown_fields()})
        for name in unknown:
            sent[name] = [(record.__pydantic_extra__ or {}).get(name) for record in records]
        scored = await self._score(
            records_to_columns(records, PROFILE),
            sent.get(ID_FIELD) if ID_FIELD else None,
            sent,
            unknown,
            REQUEST_ID.get(),
        )
        answer: list[dict[str, Any]] = scored.answer("records", self.version, self.router.splitting)
        return answer

    def _explain(self, records: list[RecordBase]) -> list[dict[str, Any]]:
        frame = columns_to_frame(records_to_columns(records, PROFILE), PROFILE)
        classes = ANSWERS.described().get("classes")
        try:
            # A multi-class model's classes each, by code; else the one output.
            found = {
                name: explain(self.model, frame, code)
                for code, name in (enumerate(classes) if classes else [(None, None)])
            }
        except ExplainError as error:
            raise NotExplainable(f"no explanation for this model: {error}") from None
        ids = [record.value(ID_FIELD) if ID_FIELD else None for record in records]
        per_output = {name: explanation_rows(found[name], ANSWERS.task) for name in found}
        if not classes:
            return [
                {"id": identity, **row, "model_version": self.version}
                for identity, row in zip(ids, per_output[None], strict=True)
            ]
        labels = ANSWERS.decide(np.column_stack([found[c].served for c in classes]))["label"]
        return [
            {
                "id": identity,
                "label": label,
                "classes": {name: per_output[name][row] for name in classes},
                "model_version": self.version,
            }
            for row, (identity, label) in enumerate(zip(ids, labels.tolist(), strict=True))
        ]

    async def score_body(self, body: Any, request_id: str) -> tuple[int, bytes] | None:
        """A parsed /predict body -> (HTTP status, JSON answer), checked and scored
        column-wise; None for records that break the contract (the records API refuses
        them, naming record and field, and counts them) and for bodies that are neither."""
        if not isinstance(body, dict):
            return None
        shape: Shape = "columns" if "columns" in body else "records"
        envelope = [key for key in body if key != shape]
        sent = (
            body.get("columns") if shape == "columns" else records_as_columns(body.get("records"))
        )
        try:
            if envelope:
                raise ColumnsInvalid(
                    [
                        {"loc": [key], "type": "unknown_field", "msg": f"give {shape} only"}
                        for key in envelope
                    ]
                )
            if sent is None:
                return None
            checked = CONTRACT.check_columns(sent)
        except ColumnsInvalid as invalid:
            if shape == "records" and not envelope:
                return None
            for error in invalid.errors:
                loc = error["loc"]
                metrics.count_rejection(str(loc[1]) if len(loc) > 1 else str(loc[0]), error["type"])
            refusal_body = {"error": str(invalid), "detail": invalid.errors}
            return 400, orjson.dumps(refusal_body)
        scored = await self._score(
            checked.columns, checked.ids, sent, checked.unknown, request_id, body.get("records")
        )
        answer = scored.answer(shape, self.version, self.router.splitting)
        return 200, orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    async def _score(
        self,
        columns: dict[str, "np.ndarray"],
        ids: list[Any] | None,
        sent: dict[str, list[Any]],
        unknown: list[str],
        request_id: str,
        records: list[dict[str, Any]] | None = None,
    ) -> "ScoredRequest":
        """Score a request with the others of this turn, count its issues, and log it."""
        rows = len(next(iter(columns.values())))
        issues = issue_masks(columns, PROFILE)
        ignored = {
            f"{name}:unknown_field": (
                np.fromiter((name in record for record in records), bool, rows)
                if records is not None
                else np.ones(rows, dtype=bool)
            )
            for name in unknown
        }
        metrics.count_issues(issues, "accepted")
        metrics.count_issues(ignored, "ignored")
        decided, versions = await self.batcher.score(columns, ids)
        scored = ScoredRequest(
            request_id,
            ids,
            sent,
            ANSWERS,
            decided,
            versions,
            issues,
            ignored,
        )
        if sampled(request_id, ARGS.log_sample_rate):
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            keys = {"model": CHAMPION.labels.get("registered_model")}
            self.log.write(scored.log_batch(now, keys | self.router.answered_by(versions)))
            self.router.shadow_rows(columns, now, [request_id] * rows, ids or [None] * rows)
        return scored


@functools.cache
def document() -> bytes:
    """The OpenAPI document served at /docs.json (the bento holds the same one)."""
    spec = ClassifierService.openapi_spec.asdict()  # type: ignore[attr-defined]
    return orjson.dumps(published(spec, CONTRACT, CHAMPION.version, ANSWERS))


def _service() -> ClassifierService:
    return bentoml.get_current_service()


async def _score_body(body: Any, request_id: str) -> tuple[int, bytes] | None:
    return await _service().score_body(body, request_id)


# Outermost first: a stranger is refused before anything reads the body.
if API_KEY is not None:
    ClassifierService.add_asgi_middleware(  # type: ignore[attr-defined]  # added by @bentoml.service
        ApiKeyMiddleware, key=API_KEY, on_refused=metrics.UNAUTHORIZED.inc
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
ClassifierService.add_asgi_middleware(DocumentMiddleware, document=document)  # type: ignore[attr-defined]
ClassifierService.add_asgi_middleware(FastPredictMiddleware, score=_score_body)  # type: ignore[attr-defined]
ClassifierService.add_asgi_middleware(  # type: ignore[attr-defined]
    NotExplainableMiddleware, refusal=lambda: _service().explain_refusal
)
