"""The served input contract, generated from the training profile (no server needed)."""

import json

import numpy as np
import pandas as pd
import pytest
from generated import distinct_column_names
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from mlops_starter.data.profile import feature_profile
from mlops_starter.data.schema import FeatureSchema
from mlops_starter.serving.schema import (
    ColumnsInvalid,
    InputContract,
    RecordBase,
    breaking_changes,
    error_kind,
    issue_masks,
    issues_per_row,
    records_as_columns,
    records_to_columns,
)
from mlops_starter.serving.scorer import columns_to_frame


@pytest.fixture(scope="module")
def profile(demo_frame):
    schema = FeatureSchema.infer(demo_frame, ["customer_id", "signup_date", "churned"])
    return feature_profile(demo_frame[schema.columns], schema)


@pytest.fixture
def record(demo_frame, profile):
    row = demo_frame.iloc[0]
    return {
        name: (
            None
            if pd.isna(row[name])
            else row[name].item()
            if spec["kind"] != "category"
            else row[name]
        )
        for name, spec in profile.items()
    } | {"age": 40.0, "plan": "basic", "monthly_charges": 50.0}


def contract(profile, id_field=None, policy="accept", unknown="reject", max_records=1000):
    return InputContract(profile, id_field, policy, policy, unknown, max_records)


def record_model(profile, id_field, unseen_category, out_of_range, unknown="reject"):
    assert unseen_category == out_of_range
    return contract(profile, id_field, unseen_category, unknown).record_model()


def records_type(model, max_records):
    return InputContract({}, None, max_records=max_records).records_type(model)


def validate_columns(body, profile, id_field, unseen_category, out_of_range, max_records):
    assert unseen_category == out_of_range
    checked = contract(profile, id_field, unseen_category, max_records=max_records).check_columns(
        body
    )
    return checked.columns, checked.ids


def _errors(model, data):
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value.errors()


def test_profile_records_kinds_ranges_categories_and_missingness(demo_frame, profile):
    assert profile["tenure_months"]["kind"] == "integer"
    assert profile["monthly_charges"]["kind"] == "float"
    assert profile["plan"]["kind"] == "category"
    assert set(profile["plan"]["categories"]) == set(demo_frame["plan"].dropna())
    assert profile["tenure_months"]["min"] == demo_frame["tenure_months"].min()
    for name, spec in profile.items():
        assert spec["nullable"] == bool(demo_frame[name].isna().any()), name
        if spec["kind"] != "category":
            assert sum(spec["bin_shares"]) == pytest.approx(1.0)


def test_required_fields_follow_training_missingness(profile, record):
    model = record_model(profile, "customer_id", "accept", "accept")
    required = {n for n, s in profile.items() if not s["nullable"]}
    nullable = set(profile) - required
    assert required and nullable, "the demo data has both kinds"
    errors = _errors(model, {k: v for k, v in record.items() if k not in required})
    assert {e["loc"][0] for e in errors} == required
    assert all(error_kind(e) == "missing_field" for e in errors)
    accepted = model.model_validate({k: v for k, v in record.items() if k not in nullable})
    assert all(accepted.value(n) is None for n in nullable)


def test_strict_types_and_unknown_fields_are_refused_with_their_kind(profile, record):
    model = record_model(profile, None, "accept", "accept")
    integer_field = next(n for n, s in profile.items() if s["kind"] == "integer")
    required = next(n for n, s in profile.items() if not s["nullable"])
    cases = {
        "wrong_type": {integer_field: "3"},
        "null": {required: None},
        "unknown_field": {"favourite_colour": "red"},
        "not_finite": {"monthly_charges": float("inf")},
        "out_of_range": {integer_field: 2**70},
    }
    for kind, change in cases.items():
        errors = _errors(model, record | change)
        assert [error_kind(e) for e in errors] == [kind], (kind, errors)
        assert errors[0]["loc"] == (next(iter(change)),)


def test_reject_policies_refuse_unseen_categories_and_out_of_range_values(profile, record):
    strict = record_model(profile, None, "reject", "reject")
    lenient = record_model(profile, None, "accept", "accept")
    unseen = record | {"plan": "platinum"}
    too_old = record | {"age": profile["age"]["max"] + 50}
    assert [error_kind(e) for e in _errors(strict, unseen)] == ["unseen_category"]
    assert [error_kind(e) for e in _errors(strict, too_old)] == ["out_of_range"]
    lenient.model_validate(unseen)
    lenient.model_validate(too_old)


def test_rejections_are_reported_by_field_and_kind(profile, record):
    records = TypeAdapter(records_type(record_model(profile, None, "accept", "accept"), 2))
    seen = []
    RecordBase.on_rejected = lambda field, kind: seen.append((field, kind))
    try:
        with pytest.raises(ValidationError) as caught:
            records.validate_python([record, record | {"plan": 3}])
        assert caught.value.errors()[0]["loc"] == (1, "plan")
        with pytest.raises(ValidationError):
            records.validate_python([record] * 3)
        records.validate_python([record, record])
    finally:
        RecordBase.on_rejected = None
    assert seen == [("plan", "wrong_type"), ("records", "too_many_records")]


def test_frame_from_records_matches_the_training_frame(demo_frame, profile):
    model = record_model(profile, None, "accept", "accept")
    rows = demo_frame[list(profile)].head(50)
    records = [
        model.model_validate({k: (None if pd.isna(v) else v) for k, v in row.items()})
        for row in rows.astype(object).to_dict(orient="records")
    ]
    frame = columns_to_frame(records_to_columns(records, profile), profile)
    assert list(frame.columns) == list(profile)
    pd.testing.assert_frame_equal(frame, rows.reset_index(drop=True), check_dtype=False)


def test_quality_issues_name_field_and_kind(profile):
    model = record_model(profile, None, "accept", "accept")
    base = {n: None for n, s in profile.items() if s["nullable"]}
    valid = {
        n: (int(s["min"]) if s["kind"] == "integer" else float(s["min"]))
        if s["kind"] != "category"
        else next(iter(s["categories"]))
        for n, s in profile.items()
        if not s["nullable"]
    }
    records = [
        model.model_validate(base | valid),
        model.model_validate(base | valid | {"plan": "platinum", "age": 500.0}),
    ]
    issues = issues_per_row(issue_masks(records_to_columns(records, profile), profile), 2)
    assert "plan:unseen_category" in issues[1] and "age:out_of_range" in issues[1]
    assert "plan:unseen_category" not in issues[0]
    assert {i.split(":")[1] for i in issues[0]} == {"missing"}


def _columns(records: list[dict]) -> dict[str, list]:
    return {name: [r.get(name) for r in records] for name in records[0]}


@pytest.mark.parametrize("policy", ["accept", "reject"])
def test_columns_give_the_same_arrays_as_records(demo_frame, profile, policy):
    rows = demo_frame[list(profile)].head(200).astype(object)
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")
    ]
    model = record_model(profile, None, policy, policy)
    expected = records_to_columns([model.model_validate(r) for r in records], profile)
    found, ids = validate_columns(_columns(records), profile, None, policy, policy, 1000)
    assert ids is None and list(found) == list(profile)
    for name in profile:
        np.testing.assert_array_equal(found[name], expected[name])


@pytest.mark.parametrize(
    ("field", "value", "kind", "policy"),
    [
        ("tenure_months", "12", "wrong_type", "accept"),
        ("tenure_months", 12.5, "wrong_type", "accept"),
        ("tenure_months", True, "wrong_type", "accept"),
        ("tenure_months", 2**64, "out_of_range", "accept"),
        ("contract", None, "null", "accept"),
        ("contract", 3, "wrong_type", "accept"),
        ("plan", "", "wrong_type", "accept"),
        ("plan", "platinum", "unseen_category", "reject"),
        ("age", 500.0, "out_of_range", "reject"),
        ("monthly_charges", float("inf"), "not_finite", "accept"),
        ("monthly_charges", 1e300, "out_of_range", "accept"),
    ],
)
def test_a_bad_value_is_named_by_column_row_and_the_kind_the_records_path_gives(
    record, profile, field, value, kind, policy
):
    records = [dict(record), dict(record), dict(record) | {field: value}]
    with pytest.raises(ColumnsInvalid) as caught:
        validate_columns(_columns(records), profile, None, policy, policy, 1000)
    assert caught.value.errors == [
        {"loc": ["columns", field, 2], "type": kind, "msg": caught.value.errors[0]["msg"]}
    ]
    if kind != "not_finite":  # JSON has no infinity: the records path never sees one
        model = record_model(profile, None, policy, policy)
        with pytest.raises(ValidationError) as by_records:
            model.model_validate(records[2])
        assert [error_kind(e) for e in by_records.value.errors()] == [kind]


def test_shape_errors_name_the_column(record, profile):
    columns = _columns([record, record])
    cases = [
        (columns | {"colour": ["red", "red"]}, ["columns", "colour"], "unknown_field"),
        (
            {k: v for k, v in columns.items() if k != "contract"},
            ["columns", "contract"],
            "missing_field",
        ),
        (columns | {"plan": ["basic"]}, ["columns", "plan"], "wrong_length"),
        ({k: [] for k in columns}, ["columns"], "no_records"),
        ({k: v * 3 for k, v in columns.items()}, ["columns"], "too_many_records"),
        ([1, 2], ["columns"], "wrong_type"),
    ]
    for body, loc, kind in cases:
        with pytest.raises(ColumnsInvalid) as caught:
            validate_columns(body, profile, None, "accept", "accept", 5)
        assert [(e["loc"], e["type"]) for e in caught.value.errors] == [(loc, kind)], body


def test_a_nullable_column_may_be_left_out(record, profile):
    nullable = next(n for n, s in profile.items() if s["nullable"])
    columns = {k: v for k, v in _columns([record]).items() if k != nullable}
    found, _ = validate_columns(columns, profile, None, "accept", "accept", 5)
    assert columns_to_frame(found, profile)[nullable].isna().all()


@settings(max_examples=60, deadline=None)
@given(names=distinct_column_names())
def test_any_column_name_is_a_field_on_the_wire(names):
    """`self`, `_id`, `model_config`, spaces, quotes, unicode, 200 characters, names that
    differ only in case: each is accepted, refused and documented by its own name."""
    id_name, features = names[0], names[1:]
    profile = {
        name: {"kind": "number", "min": 0.0, "max": 1.0, "nullable": i % 2 == 0}
        if i % 3
        else {"kind": "category", "categories": ["a", "b"], "nullable": False}
        for i, name in enumerate(features)
    }
    model = record_model(profile, id_name, "accept", "accept")
    records = TypeAdapter(records_type(model, 5))
    record = {name: (0.5 if spec["kind"] == "number" else "a") for name, spec in profile.items()}
    (accepted,) = records.validate_python([record | {id_name: "C-1"}])
    assert accepted.value(id_name) == "C-1"
    assert all(accepted.value(name) == value for name, value in record.items())
    assert set(model.model_json_schema(by_alias=True)["properties"]) == set(names)
    for name, spec in profile.items():
        with pytest.raises(ValidationError) as refused:
            records.validate_python([record | {name: [] if spec["kind"] == "number" else 3}])
        assert [error["loc"][1] for error in refused.value.errors()] == [name]


def _value_for(spec: dict, policy: str) -> st.SearchStrategy:
    """Values a caller might send for a field of this kind: right (for `policy`, mostly),
    wrong, and edge."""
    anything = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )
    beyond = 0 if policy == "reject" else 5  # accept: a little outside the training range
    if spec["kind"] == "category":
        right = st.sampled_from([*spec["categories"], *(["never-seen"] if beyond else [])])
    elif spec["kind"] == "integer":
        right = st.integers(int(spec["min"]) - beyond, int(spec["max"]) + beyond)
    else:
        right = st.floats(spec["min"] - beyond, spec["max"] + beyond)
    if spec["nullable"]:
        right = st.one_of(right, st.none())
    return st.integers(0, 19).flatmap(lambda draw: right if draw else anything)  # 1 in 20 odd


@st.composite
def sent_records(draw, profile: dict, id_field: str, policy: str) -> list[dict]:
    """1 to 3 records; an odd value, a field left out or an unknown one now and then."""
    records = []
    for _ in range(draw(st.integers(1, 3))):
        record = {
            name: draw(_value_for(spec, policy))
            for name, spec in profile.items()
            if draw(st.integers(0, 29))  # left out one time in thirty
        }
        if draw(st.booleans()):
            record[id_field] = draw(st.one_of(st.text(max_size=5), st.integers(), st.none()))
        if not draw(st.integers(0, 19)):
            record["favourite_colour"] = "red"
        records.append(record)
    return records


@pytest.mark.parametrize(("policy", "unknown"), [("accept", "ignore"), ("reject", "reject")])
def test_the_column_wise_check_and_the_records_model_accept_the_same_records(
    profile, policy, unknown
):
    """The service answers records that pass the column-wise check itself, and hands any
    others to the records API. Both must accept exactly the same records, with the same
    values, ids and issues: else the fast path would answer what the contract refuses,
    or leave to the slow path what it should answer (issue 29)."""
    served = contract(profile, "customer_id", policy, unknown, max_records=4)
    model = served.record_model()
    adapter = TypeAdapter(served.records_type(model))
    accepted = 0

    @settings(max_examples=400, deadline=None)
    @given(records=sent_records(profile, "customer_id", policy))
    def check(records):
        nonlocal accepted
        body = records_as_columns(json.loads(json.dumps(records)))
        try:
            checked = served.check_columns(body)
            columns, ids = checked.columns, checked.ids
        except ColumnsInvalid:
            columns = None  # the records API answers these, as it always has
        try:
            validated = adapter.validate_json(json.dumps(records))
        except ValidationError:
            validated = None
        assert (columns is None) == (validated is None), records
        if validated is None:
            return
        accepted += 1
        expected = records_to_columns(validated, profile)
        for name in profile:
            np.testing.assert_array_equal(columns[name], expected[name])
        assert (ids or [None] * len(records)) == [r.value("customer_id") for r in validated]
        assert issue_masks(columns, profile).keys() == issue_masks(expected, profile).keys()
        ignored = sorted({name for record in validated for name in record.unknown_fields()})
        assert sorted(checked.unknown) == ignored

    check()
    print(f"{policy}/{unknown}: the column-wise check accepted {accepted} of 400 requests")
    assert accepted >= 40  # the generator reaches the fast path, not only refusals


def test_only_a_non_empty_list_of_objects_becomes_columns():
    assert records_as_columns([{"a": 1}, {"b": 2}]) == {"a": [1, None], "b": [None, 2]}
    for not_records in ([], {}, [1], [{"a": 1}, [2]], "records", None):
        assert records_as_columns(not_records) is None


def test_unknown_fields_are_ignored_and_named_or_refused_as_the_policy_says(record, profile):
    """A client that sends a whole row (here the time column) or a field a retrain left
    out keeps working under `ignore`; `reject` keeps the strict contract."""
    sent = record | {"signup_date": "2024-01-31"}
    ignoring = contract(profile, unknown="ignore")
    accepted = ignoring.record_model().model_validate(sent)
    assert accepted.unknown_fields() == ["signup_date"]
    assert all(accepted.value(name) == value for name, value in record.items())
    checked = ignoring.check_columns(_columns([sent, sent]))
    assert checked.unknown == ["signup_date"] and list(checked.columns) == list(profile)
    # Ignored, but still a row's field (the log keeps it): one value per row.
    with pytest.raises(ColumnsInvalid) as uneven:
        ignoring.check_columns(_columns([sent, sent]) | {"signup_date": []})
    assert [(e["loc"], e["type"]) for e in uneven.value.errors] == [
        (["columns", "signup_date"], "wrong_length")
    ]

    rejecting = contract(profile, unknown="reject")
    assert [error_kind(e) for e in _errors(rejecting.record_model(), sent)] == ["unknown_field"]
    with pytest.raises(ColumnsInvalid) as caught:
        rejecting.check_columns(_columns([sent]))
    assert [(e["loc"], e["type"]) for e in caught.value.errors] == [
        (["columns", "signup_date"], "unknown_field")
    ]


def test_an_integer_may_come_as_a_whole_float_but_not_as_an_inexact_one(record, profile):
    """12.0 is 12 (a pandas column with missing values is float); beyond 2**53 a float
    is not exact, so there an integer must come as one, on both paths alike."""
    served = contract(profile)
    model = served.record_model()
    for value, kind in [(12.0, None), (12.5, "wrong_type"), (2.0**60, "wrong_type")]:
        sent = record | {"tenure_months": value}
        if kind is None:
            assert model.model_validate(sent).value("tenure_months") == 12
            assert served.check_columns(_columns([sent])).columns["tenure_months"][0] == 12
            continue
        assert [error_kind(e) for e in _errors(model, sent)] == [kind]
        with pytest.raises(ColumnsInvalid) as caught:
            served.check_columns(_columns([sent]))
        assert [e["type"] for e in caught.value.errors] == [kind]


def test_breaking_changes_name_what_clients_of_the_champion_would_meet():
    """Survived: a feature left out, a new nullable one. Not: a new required one, a
    nullable one become required, a number become a category, another id field."""
    number = {"kind": "float", "min": 0.0, "max": 1.0, "nullable": False}
    served = {
        "feature_profile": {"a": number, "b": number | {"nullable": True}, "c": number},
        "id_column": "id",
    }

    def changes(profile, unknown="ignore", id_column="id"):
        candidate = {"feature_profile": profile, "id_column": id_column}
        return breaking_changes(served, candidate, unknown)

    survived = {"a": number, "b": number | {"nullable": True}, "new": number | {"nullable": True}}
    assert changes(survived) == []
    assert changes(survived, unknown="reject") == [
        "fields it does not use, refused under serve.unknown_fields: reject: ['c']"
    ]
    broken = changes(
        {
            "a": {"kind": "category", "categories": ["x"], "nullable": False},
            "b": number,
            "c": number,
            "d": number,
        },
        id_column=None,
    )
    assert broken == [
        "new required fields, which today's requests lack: ['d']",
        "fields that may be null today and will be required: ['b']",
        "fields that change between number and category: ['a']",
        "the id field changes from 'id' to None",
    ]
