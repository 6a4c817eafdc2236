"""Each task's answer as the service sends it: encoded as the service encodes it (orjson,
numpy arrays and all), valid against the OpenAPI document's `Prediction` and
`ColumnsAnswer`, and the same values as records and as columns."""

import jsonschema
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlops_starter.serving.openapi import columns_answer, prediction
from mlops_starter.tasks import answers_of

METADATA = {
    "binary": {"threshold": 0.3, "positive_label": "yes"},
    "multiclass": {"task": "multiclass", "classes": ["cat", "dog", "eel, and more"]},
    "costed": {
        "task": "multiclass",
        "classes": ["cat", "dog", "eel, and more"],
        "cost_matrix": [[0, 1, 9], [1, 0, 9], [1, 1, 0]],
    },
    "regression": {"task": "regression", "interval_half_width": 2.5, "interval_coverage": 0.9},
}


def raw_of(kind: str):
    """A batch's raw model output for the task: probabilities, or values."""
    rows = st.integers(1, 30)
    if kind == "binary":
        return rows.flatmap(lambda n: arrays(float, n, elements=st.floats(0, 1)))
    if kind == "regression":
        return rows.flatmap(lambda n: arrays(float, n, elements=st.floats(-1e9, 1e9)))
    weights = rows.flatmap(lambda n: arrays(float, (n, 3), elements=st.floats(0.01, 1)))
    return weights.map(lambda w: w / w.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("kind", list(METADATA))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_records_and_columns_encode_match_the_document_and_agree(kind, data):
    answers = answers_of(METADATA[kind])
    raw = data.draw(raw_of(kind))
    decided = answers.decide(raw)
    per_row = answers.per_row(decided)
    records = [
        dict(zip(per_row, values, strict=True)) | {"model_version": "1", "id": None, "warnings": []}
        for values in zip(*per_row.values(), strict=True)
    ]
    for record in orjson.loads(orjson.dumps(records)):
        jsonschema.validate(record, prediction(answers))
    columns = {"model_version": "1", "columns": answers.columns(decided), "warnings": {}}
    sent = orjson.loads(orjson.dumps(columns, option=orjson.OPT_SERIALIZE_NUMPY))
    jsonschema.validate(sent, columns_answer(answers))
    for name, values in per_row.items():
        column = sent["columns"][name]
        if isinstance(column, dict):  # a list per class, as records hold a dict per row
            rows = zip(*column.values(), strict=True)
            assert [dict(zip(column, row, strict=True)) for row in rows] == values
        else:
            assert column == values


def test_a_cost_matrix_decides_against_the_most_probable_class():
    """Mistaking anything for an eel costs 9: the eel must be far the likeliest (the
    expected costs of the first row are 0.8, 0.8 and 3.6; of the second .96, .94, .9)."""
    raw = np.array([[0.2, 0.2, 0.6], [0.04, 0.06, 0.9]])
    assert answers_of(METADATA["multiclass"]).decide(raw)["label"].tolist() == [
        "eel, and more",
        "eel, and more",
    ]
    assert answers_of(METADATA["costed"]).decide(raw)["label"].tolist() == ["cat", "eel, and more"]
