"""The service's OpenAPI document: the contract a client, or a client generator, reads.

BentoML documents what its own routing knows: the records body and its 200, and a
400 whose `detail` it calls a string. The service answers more than that, so the
document served at /docs.json and written into the bento (apis/openapi.yaml) is
BentoML's with every answer the service gives declared, with its real body:

- /predict takes records or columns (exactly one), and answers in the shape it was asked,
  with the task's fields (`Prediction`: binary's probability and label, multi-class's
  label and each named class's probability, regression's value and interval);
- 400 is a `Refusal`: an `error` line and, when values were checked, a `detail` list
  naming each field and row at fault (pydantic's for records, the same kinds for columns);
- 401 (an API key set on the machine), 413 (serve.max_body_bytes), 415 (not JSON),
  501 (/explain of a model no attribution method covers), 503 (/readyz before the
  model is loaded) and 500 (a bug, logged) each have their body;
- request bodies are required.

The columns body is made from the records model's schema, field by field, so the two
shapes cannot drift apart (serving/schema.py writes the contract once).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from mlops_starter.serving.schema import InputContract
from mlops_starter.tasks import Answers

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _refusal(description: str) -> dict[str, Any]:
    return _json_response(description, _ref("Refusal"))


REFUSAL = {
    "type": "object",
    "title": "Refusal",
    "description": "Why the request was refused; `detail` names each value at fault.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "array", "items": _ref("Problem")},
    },
}
PROBLEM = {
    "type": "object",
    "title": "Problem",
    "description": "One value at fault: where (`loc`: body key, record or column, field, "
    "row) and what kind (`type`: missing, extra_forbidden or unknown_field, "
    "wrong_type, out_of_range, unseen_category, ...).",
    "required": ["loc", "type", "msg"],
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "type": {"type": "string"},
        "msg": {"type": "string"},
    },
}
COLUMNS_ANSWER = {
    "type": "object",
    "title": "ColumnsAnswer",
    "description": "A columns request's answer, a list per column in the rows' order.",
    "required": ["model_version", "columns", "warnings"],
    "properties": {
        "model_version": {"type": "string", "description": "the champion's version"},
        "columns": {
            "type": "object",
            "description": "the task's fields (Prediction's), a list each, and these",
            "properties": {
                "id": {
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
                    "description": "the ids sent, echoed",
                },
                "model_version": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "the version that answered each row, while a split runs",
                },
            },
        },
        "warnings": {
            "type": "object",
            "description": "`field:kind` -> the rows it concerns (accepted issues, fields ignored)",
            "additionalProperties": {"type": "array", "items": {"type": "integer"}},
        },
    },
}


def feature_columns(record: dict[str, Any], contract: InputContract) -> dict[str, Any]:
    """The columns body's schema from the records model's: each field a list of what the
    record's field takes, the same fields required; unknown columns as the policy says."""
    rows = {"minItems": 1, "maxItems": contract.max_records}
    return {
        "type": "object",
        "title": "FeatureColumns",
        "description": "One list per field, all of one length (a row per record)",
        "required": record.get("required", []),
        "properties": {
            name: {"type": "array", "items": field, **rows}
            for name, field in record["properties"].items()
        },
        "additionalProperties": (
            {
                "type": "array",
                "items": {},
                **rows,
                "description": "a field the model does not use: ignored",
            }
            if contract.unknown_fields == "ignore"
            else False
        ),
    }


def prediction(answers: Answers) -> dict[str, Any]:
    """One record's answer: the task's fields, then the version, id and warnings."""
    return {
        "type": "object",
        "title": "Prediction",
        "required": [*answers.fields(), "model_version", "id", "warnings"],
        "properties": answers.fields()
        | {
            "model_version": {
                "type": "string",
                "description": "the version that answered this record",
            },
            "id": {
                "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
                "description": "the record's id, echoed",
            },
            "warnings": {
                "type": "array",
                "items": {"type": "string"},
                "description": "accepted input issues and fields ignored, as field:kind",
            },
        },
    }


def explanation(answers: Answers) -> dict[str, Any]:
    """One record's explanation: how the answer's margin adds up from each feature, for
    the one output, or for each class of a multi-class model (`classes`)."""
    served = {"value": {"type": "number", "description": "the served value (as /predict answers)"}}
    if answers.task != "regression":
        served = {
            "probability": {
                "type": "number",
                "description": "the served probability of this class (as /predict answers)",
            }
        }
    output: dict[str, Any] = {
        "type": "object",
        "required": ["method", "scale", "base_value", "contributions", "margin", *served],
        "properties": {
            "method": {"type": "string", "description": "how the contributions were computed"},
            "scale": {
                "type": "string",
                "description": "log-odds, probability or value: the scale of the numbers below",
            },
            "base_value": {
                "type": "number",
                "description": "the model's output before any feature is known",
            },
            "contributions": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "per original feature, largest effect first; "
                "base_value + their sum = margin",
            },
            "margin": {
                "type": "number",
                "description": "the uncalibrated model's raw output for this record",
            },
            **served,
        },
    }
    common = {
        "id": {
            "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
            "description": "the record's id, echoed",
        },
        "model_version": {"type": "string"},
    }
    classes = answers.described().get("classes")
    if not classes:
        return {
            "type": "object",
            "title": "Explanation",
            "required": ["id", *output["required"], "model_version"],
            "properties": {"id": common["id"], **output["properties"], **common},
        }
    per_class = {name: output for name in classes}
    return {
        "type": "object",
        "title": "Explanation",
        "required": ["id", "label", "classes", "model_version"],
        "properties": {
            "id": common["id"],
            "label": answers.fields()["label"],
            "classes": {
                "type": "object",
                "description": "each class's explanation: the contributions to its margin",
                "properties": per_class,
                "required": list(classes),
                "additionalProperties": False,
            },
            "model_version": common["model_version"],
        },
    }


def columns_answer(answers: Answers) -> dict[str, Any]:
    """A columns request's answer, with the task's fields as columns."""
    answer: dict[str, Any] = copy.deepcopy(COLUMNS_ANSWER)
    columns = answer["properties"]["columns"]
    columns["required"] = list(answers.fields())
    columns["properties"] = answers.column_fields() | columns["properties"]
    return answer


def published(
    spec: dict[str, Any], contract: InputContract, version: str, answers: Answers
) -> dict[str, Any]:
    """BentoML's document `spec` (as /docs.json gives it) with every answer declared,
    `answers` saying what a record's answer holds."""
    document = json.loads(json.dumps(spec))  # copies it, and makes status codes strings
    # Its schemas are pydantic's, which are JSON Schema 2020-12 (a null is `{"type":
    # "null"}`): OpenAPI 3.1's dialect, not 3.0's (`nullable`), which BentoML declares.
    document["openapi"] = "3.1.0"
    document["info"] = {
        "title": document["info"]["title"],
        "version": version,  # the registry version this contract is of
        "description": "Scores, explains and describes one registered model version. "
        "Fields the model does not use are ignored and named in warnings, unless "
        "serve.unknown_fields is reject; docs/reference/http-api.md says which schema "
        "changes of a retrain a client survives.",
    }
    schemas = document["components"]["schemas"]
    columns = {
        "type": "object",
        "title": "ColumnsBody",
        "required": ["columns"],
        "properties": {"columns": _ref("FeatureColumns")},
        "additionalProperties": False,
    }
    schemas |= {
        "ColumnsBody": columns,
        "FeatureColumns": feature_columns(schemas["FeatureRecord"], contract),
        "Prediction": prediction(answers),
        "Explanation": explanation(answers),
        "ColumnsAnswer": columns_answer(answers),
        "Refusal": REFUSAL,
        "Problem": PROBLEM,
    }
    refusals = {
        "400": _refusal("a body that breaks the contract: each value at fault in `detail`"),
        "401": _refusal("no or a wrong API key, when the machine sets one (MLOPS_API_KEY)"),
        "413": _refusal("a body over serve.max_body_bytes"),
        "415": _refusal("a Content-Type other than application/json"),
        "500": _refusal("a bug while scoring (logged with the request id)"),
    }
    paths = document["paths"]
    predict = paths["/predict"]["post"]
    predict["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": {"oneOf": [_ref("RecordsBody"), _ref("ColumnsBody")]}}},
    }
    predict["responses"] = {
        "200": _json_response(
            "scored, in the shape asked: a Prediction per record, or columns",
            {"oneOf": [{"type": "array", "items": _ref("Prediction")}, _ref("ColumnsAnswer")]},
        ),
        **refusals,
    }
    explain = paths["/explain"]["post"]
    explain["requestBody"] = {
        "required": True,
        "content": {JSON: {"schema": _ref("RecordsBody")}},
    }
    explain["responses"] = {
        "200": _json_response(
            "each record's contributions", {"type": "array", "items": _ref("Explanation")}
        ),
        **refusals,
        "501": _refusal("no attribution method covers this model's estimator (named)"),
    }
    paths["/metadata"]["get"]["responses"]["401"] = refusals["401"]
    paths["/readyz"]["get"]["responses"]["503"] = {
        "description": "the model is still loading",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    paths["/metrics"]["get"]["responses"]["200"] = {
        "description": "Prometheus metrics",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    document["components"]["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "asked for only when the machine sets MLOPS_API_KEY",
        }
    }
    # Named for the client generated from it: `api.model.predict`, not `classifier__predict`.
    document["tags"] = [
        {"name": "model", "description": "score, explain and describe the served version"},
        *[tag for tag in document["tags"] if tag["name"] == "Infrastructure"],
    ]
    for path, operation_id in (
        ("/predict", "predict"),
        ("/explain", "explain"),
        ("/metadata", "metadata"),
    ):
        for operation in paths[path].values():
            operation["security"] = [{}, {"apiKey": []}]  # {}: open when no key is set
            operation["operationId"], operation["tags"] = operation_id, ["model"]
    _drop_unreferenced(document)
    return document


def _drop_unreferenced(document: dict[str, Any]) -> None:
    """Remove component schemas nothing refers to (BentoML's own, for task APIs and
    the error bodies replaced here), so a generated client holds no dead types."""
    schemas = document["components"]["schemas"]
    reached: set[str] = set()
    pending: list[Any] = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.removeprefix("#/components/schemas/")
            if ref and name not in reached:
                reached.add(name)
                pending.append(schemas.get(name, {}))
            pending.extend(value for key, value in node.items() if key != "$ref")
        elif isinstance(node, list):
            pending.extend(node)
    for name in set(schemas) - reached:
        del schemas[name]
