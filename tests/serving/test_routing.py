"""Which version answers a row, which challenger may stand beside a champion, and the
shadow scorer's thread: before any server starts (the served behaviour is
test_experiment_e2e.py's)."""

import asyncio
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_starter.config import ExperimentConfig
from mlops_starter.data.profile import feature_profile
from mlops_starter.serving.routing import (
    SHADOW_ARM,
    Router,
    SameTurnBatcher,
    ServedVersion,
    ShadowScorer,
    load_challenger,
    schema_differences,
    to_challenger,
)
from mlops_starter.serving.scorer import Scorer
from mlops_starter.tasks.binary import BinaryAnswers

ids_of_customers = st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=50)


@given(ids_of_customers, st.text(min_size=1, max_size=10), st.floats(0.01, 0.99))
def test_an_id_meets_the_same_version_in_any_batch_and_any_order(ids, name, share):
    rng = np.random.default_rng(0)
    dealt = to_challenger(ids, len(ids), name, share, rng)
    again = to_challenger(ids[::-1], len(ids), name, share, np.random.default_rng(1))[::-1]
    assert dealt.tolist() == again.tolist()
    for identity, chosen in zip(ids, dealt, strict=True):
        assert to_challenger([identity], 1, name, share, rng)[0] == chosen


def test_the_share_holds_and_a_new_experiment_name_deals_again():
    ids = [f"C-{i}" for i in range(20_000)]
    first = to_challenger(ids, len(ids), "experiment-1", 0.1, np.random.default_rng())
    second = to_challenger(ids, len(ids), "experiment-2", 0.1, np.random.default_rng())
    assert 0.09 < first.mean() < 0.11 and 0.09 < second.mean() < 0.11
    # Independent deals: about 0.1 x 0.1 of the ids land in both challengers' arms.
    assert 0.005 < (first & second).mean() < 0.015


def test_rows_without_an_id_are_dealt_at_random():
    rng = np.random.default_rng(5)
    first = to_challenger([None] * 4000, 4000, "e", 0.25, rng)
    second = to_challenger(None, 4000, "e", 0.25, rng)
    assert 0.22 < first.mean() < 0.28 and 0.22 < second.mean() < 0.28
    assert first.tolist() != second.tolist()


@pytest.fixture(scope="module")
def served_metadata(hard_table):
    schema, features, _, _ = hard_table
    return {
        "feature_profile": feature_profile(features, schema),
        "id_column": "customer_id",
        "threshold": 0.4,
    }


def test_a_challenger_with_the_champions_schema_passes(served_metadata):
    assert schema_differences(served_metadata, served_metadata) == []


def test_a_challenger_that_answers_another_task_or_other_classes_is_named(served_metadata):
    """Its answers would break the champion's clients, whatever its features."""
    three = {**served_metadata, "task": "multiclass", "classes": ["a", "b", "c"]}
    four = {**three, "classes": ["a", "b", "c", "d"]}
    assert schema_differences(served_metadata, three) == [
        "the challenger answers multiclass of classes ['a', 'b', 'c'], the champion's "
        "clients read binary"
    ]
    assert schema_differences(three, four) == [
        "the challenger answers multiclass of classes ['a', 'b', 'c', 'd'], the champion's "
        "clients read multiclass of classes ['a', 'b', 'c']"
    ]
    assert schema_differences(three, {**three, "cost_matrix": [[0, 1, 1]] * 3}) == []


def test_each_schema_difference_is_named(served_metadata):
    profile = dict(served_metadata["feature_profile"])
    numeric = next(n for n, s in profile.items() if s["kind"] != "category")
    category = next(n for n, s in profile.items() if s["kind"] == "category")
    changed = {
        **{n: s for n, s in profile.items() if n != numeric},
        "loyalty_score": {"kind": "float"},
        category: {**profile[category], "kind": "float"},
    }
    found = schema_differences(
        served_metadata, {"feature_profile": changed, "id_column": "account", "threshold": 0.6}
    )
    assert found == [
        "the challenger needs features the champion's requests lack: ['loyalty_score']",
        f"the challenger lacks features the champion's requests carry: ['{numeric}']",
        f"feature '{category}' is category for the champion, float for it",
        "the id column is 'customer_id' for the champion, 'account' for it",
    ]


def test_a_challenger_of_another_schema_is_refused_before_its_file_is_read(served_metadata):
    other = {**served_metadata, "id_column": None, "threshold": 0.5}
    with pytest.raises(ValueError, match="the id column is 'customer_id'"):
        load_challenger("/no/such/model", other, {}, served_metadata)


def lines(batches) -> list[dict]:
    """The prediction-log lines of the batches written."""
    return [json.loads(line) for batch in batches for line in batch.encode().splitlines()]


def challenger(score) -> ServedVersion:
    return ServedVersion("churn", "4", BinaryAnswers(0.5), Scorer("compiled", "test", score))


def test_shadow_scores_rows_that_arrived_together_in_one_call_after_they_were_answered():
    written, observed = [], []
    shadow = ShadowScorer(
        challenger(lambda columns: columns["x"] / 10),
        "experiment-1",
        written.append,
        lambda version, arm, decided, seconds: observed.append(
            (version.version, arm, len(decided["probability"]))
        ),
        on_drop=lambda rows: pytest.fail(f"{rows} rows dropped"),
        linger_seconds=0.05,
    )

    async def two_requests():
        shadow.submit({"x": np.array([1.0, 7.0])}, "2026-06-01T00:00:00Z", ["r1", "r1"], ["a", "b"])
        shadow.submit({"x": np.array([9.0])}, "2026-06-01T00:00:01Z", ["r2"], [None])
        assert written == []  # nothing scored while the requests are answered
        await asyncio.sleep(0.2)

    asyncio.run(two_requests())
    assert observed == [("4", SHADOW_ARM, 3)]
    written = lines(written)
    assert [(e["request_id"], e["id"], e["label"], e["arm"]) for e in written] == [
        ("r1", "a", 0, "shadow"),
        ("r1", "b", 1, "shadow"),
        ("r2", None, 1, "shadow"),
    ]
    assert {e["model_version"] for e in written} == {"4"}
    assert written[1]["probability"] == pytest.approx(0.7)
    assert written[2]["timestamp"] == "2026-06-01T00:00:01Z"
    assert {e["features"] for e in written} == {None}  # the champion's line holds them


def test_a_flooded_or_failing_shadow_drops_rows_counted_and_keeps_going():
    dropped, written = [], []

    def failing_on_negatives(columns):
        if (columns["x"] < 0).any():
            raise ValueError("the challenger cannot score this row")
        return columns["x"]

    shadow = ShadowScorer(
        challenger(failing_on_negatives),
        "e",
        written.append,
        lambda *_: None,
        dropped.append,
        max_pending_rows=3,
        linger_seconds=0.05,
    )

    async def traffic():
        shadow.submit({"x": np.array([0.9, 0.8])}, "t", ["kept", "kept"], [1, 2])
        shadow.submit({"x": np.array([0.7, 0.6])}, "t", ["flood", "flood"], [3, 4])  # over 3
        await asyncio.sleep(0.2)
        shadow.submit({"x": np.array([-1.0])}, "t", ["fails"], [5])
        await asyncio.sleep(0.2)
        shadow.submit({"x": np.array([0.5])}, "t", ["after"], [6])
        shadow.flush()  # as at shutdown: what is kept is scored now

    asyncio.run(traffic())
    assert dropped == [2, 1]  # the flood found no room, then the failing row
    assert [e["request_id"] for e in lines(written)] == ["kept", "kept", "after"]


def constant(version: str, probability: float) -> ServedVersion:
    return ServedVersion(
        "churn",
        version,
        BinaryAnswers(0.5),
        Scorer("compiled", "test", lambda c: np.full(len(c["x"]), probability)),
    )


def test_a_split_scores_each_row_with_the_version_its_id_is_dealt_to_and_says_which():
    observed = []
    router = Router(
        constant("3", 0.2),
        constant("4", 0.9),
        ExperimentConfig(mode="split", challenger_share=0.5),
        lambda version, arm, decided, seconds: observed.append(
            (version.version, arm, len(decided["probability"]))
        ),
        write=lambda entries: pytest.fail("a split has no shadow entries"),
        on_shadow_drop=lambda rows: pytest.fail("a split has no shadow"),
    )
    ids = [f"C-{i}" for i in range(100)]
    decided, versions = router.score({"x": np.zeros(100)}, ids)
    probabilities, labels = decided["probability"], decided["label"]
    dealt = to_challenger(ids, 100, "experiment-1", 0.5, np.random.default_rng())
    assert versions == np.where(dealt, "4", "3").tolist()
    assert probabilities.tolist() == np.where(dealt, 0.9, 0.2).tolist()
    assert labels.tolist() == dealt.astype(int).tolist()  # each at its own threshold
    assert sorted(observed) == [
        ("3", "champion", 100 - dealt.sum()),
        ("4", "challenger", dealt.sum()),
    ]
    assert router.answered_by(["4", "3"]) == {
        "model_version": ["4", "3"],
        "experiment": "experiment-1",
        "arm": ["challenger", "champion"],
    }


def test_without_a_challenger_the_champion_answers_and_the_log_is_unchanged():
    router = Router(
        constant("3", 0.2),
        None,
        ExperimentConfig(mode="split"),
        lambda *_: None,
        write=lambda entries: pytest.fail("no shadow"),
        on_shadow_drop=lambda rows: pytest.fail("no shadow"),
        off_because="challenger v4 failed to load: truncated file",
    )
    _, versions = router.score({"x": np.zeros(5)}, None)
    assert versions == ["3"] * 5 and not router.splitting
    assert router.answered_by(versions) == {"model_version": "3"}
    assert router.describe()["active"] is False
    assert router.describe()["off_because"] == "challenger v4 failed to load: truncated file"


def test_in_shadow_the_champion_answers_every_row_and_the_challenger_is_the_shadow():
    router = Router(
        constant("3", 0.2),
        constant("4", 0.9),
        ExperimentConfig(mode="shadow"),
        lambda *_: None,
        write=lambda batch: None,
        on_shadow_drop=lambda rows: pytest.fail("nothing dropped"),
    )
    _, versions = router.score({"x": np.zeros(3)}, ["a", "b", "c"])
    assert versions == ["3"] * 3 and not router.splitting
    assert router.answered_by(versions) == {
        "model_version": "3",
        "experiment": "experiment-1",
        "arm": "champion",
    }
    assert (router.arm("3"), router.arm("4")) == ("champion", "shadow")


def test_requests_of_one_turn_are_scored_in_one_call_and_each_gets_its_own_rows():
    calls = []

    def score(columns, ids):
        calls.append((columns["x"].tolist(), ids))
        decided = {"probability": columns["x"] / 10, "label": (columns["x"] > 5).astype(int)}
        return decided, [f"v{x:g}" for x in columns["x"]]

    batcher = SameTurnBatcher(score)

    async def traffic():
        together = await asyncio.gather(
            batcher.score({"x": np.array([1.0, 7.0])}, ["a", "b"]),
            batcher.score({"x": np.array([9.0])}, None),
            batcher.score({"x": np.array([3.0])}, ["d"]),
        )
        alone = await batcher.score({"x": np.array([6.0])}, None)
        return together, alone

    together, alone = asyncio.run(traffic())
    assert calls == [([1.0, 7.0, 9.0, 3.0], ["a", "b", None, "d"]), ([6.0], None)]
    assert [
        (decided["probability"].tolist(), decided["label"].tolist(), versions)
        for decided, versions in together
    ] == [
        ([0.1, 0.7], [0, 1], ["v1", "v7"]),
        ([0.9], [1], ["v9"]),
        ([0.3], [0], ["v3"]),
    ]
    assert alone[1] == ["v6"]


def test_a_failing_shared_call_fails_each_request_of_the_turn():
    def score(columns, ids):
        raise ValueError("the scorer broke")

    batcher = SameTurnBatcher(score)

    async def traffic():
        return await asyncio.gather(
            batcher.score({"x": np.array([1.0])}, None),
            batcher.score({"x": np.array([2.0])}, None),
            return_exceptions=True,
        )

    assert [str(e) for e in asyncio.run(traffic())] == ["the scorer broke"] * 2
