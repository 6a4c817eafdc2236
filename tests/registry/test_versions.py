"""A version number is one thing whatever its type: MLflow 3 hands out ints, the CLI,
tags, HTTP and CD hand over strings. Each place that compares versions is checked with
both, on a real (local SQLite) MLflow registry."""

import json

import pytest
from mlflow.tracking import MlflowClient

from mlops_starter.cli.registry import warn_of_breaking_changes
from mlops_starter.registry.model_registry import (
    GATE_TAG,
    LOG_PREFIX,
    REGISTRATION_TAG,
    AliasMove,
    Registry,
    moved_outside_cli,
    same_version,
)
from mlops_starter.serving.packaging import bento_model_tag

MODEL = "versions-model"


@pytest.fixture
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    (tmp_path / "model").mkdir()
    for _ in range(3):
        client.create_model_version(
            MODEL,
            str(tmp_path / "model"),
            tags={GATE_TAG: "true", REGISTRATION_TAG: "complete"},
        )
    return Registry(client, MODEL)


def test_same_version_compares_ints_and_strings_as_one_type():
    assert same_version(1, "1") and same_version("12", 12) and same_version(3, 3)
    assert not same_version(1, "2") and not same_version(None, None) and not same_version(1, None)


def test_promote_takes_an_int_or_a_string_and_repeats_harmlessly_across_types(registry):
    assert isinstance(registry.client.get_model_version(MODEL, "1").version, int)  # MLflow 3
    move = registry.promote("1", "tester")
    assert (move.from_version, move.to_version) == (None, "1")
    assert registry.promote(1, "tester") is None
    assert registry.promote("champion", "tester") is None
    assert registry.promote(2, "tester").from_version == "1"  # a string, though MLflow gave 1


def test_rollback_to_a_version_given_as_int_or_string(registry):
    registry.promote(1, "tester")
    registry.promote("2", "tester")
    assert registry.rollback("tester").to_version == "1"
    assert registry.rollback("tester", to_version=1) is None
    assert registry.rollback("tester", to_version="1") is None
    assert registry.rollback("tester", to_version=3).to_version == "3"


def test_history_reads_moves_an_earlier_release_logged_with_int_versions(registry):
    logged = {"seq": 1, "action": "promote", "from_version": 1, "to_version": 2}
    logged |= {"actor": "old", "at": "2026-01-01T00:00:00+00:00", "reason": "r"}
    registry.client.set_registered_model_tag(MODEL, f"{LOG_PREFIX}000001", json.dumps(logged))
    (move,) = registry.history()
    assert (move.from_version, move.to_version) == ("1", "2")


def test_history_notes_an_outside_move_only_when_there_was_one(registry):
    registry.promote(1, "tester")
    registry.promote(2, "tester")
    champion = registry.champion()
    assert isinstance(champion.version, int)
    assert not moved_outside_cli(registry.history(), champion.version)
    registry.client.set_registered_model_alias(MODEL, "champion", "3")  # as the UI does
    assert moved_outside_cli(registry.history(), registry.champion().version)
    assert not moved_outside_cli([], 3)


def test_the_challenger_alias_and_the_bento_tag_name_one_version_whatever_the_type(registry):
    registry.client.set_registered_model_alias(MODEL, "challenger", 2)
    assert same_version(registry.version("challenger").version, "2")
    by_int, by_str = registry.version(2), registry.version("2")
    assert bento_model_tag(MODEL, by_int) == bento_model_tag(MODEL, by_str)
    assert (
        AliasMove.from_dict(
            {"seq": 1, "action": "rollback", "from_version": None, "to_version": 3}
            | {"actor": "a", "at": "t", "reason": "r"}
        ).to_version
        == "3"
    )


def test_a_promotion_whose_models_cannot_be_read_warns_and_goes_ahead(
    registry, capsys, monkeypatch
):
    """The contract check is advice: with no MLmodel to read (an artifact store this
    machine cannot reach, a version made by hand), the warning says the contracts were
    not compared and why, and the champion still moves."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    registry.promote(1, "tester")
    assert warn_of_breaking_changes(registry, "2", "ignore") == []
    captured = capsys.readouterr()
    assert "contracts of versions 1 and 2 were not compared" in captured.err
    assert "cannot read the model of 'versions-model' version 1" in captured.err
    assert captured.out.startswith("::warning title=Clients may break::")
    assert registry.promote("2", "tester").to_version == "2"
