"""The split stage in memory (the table is one batch): where rows go, and the audit.
Every mode splits by the same rule: tests/training/test_mode_parity.py."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import stage_config, write_raw

from mlops_starter.data.corpus import CorpusTable, load_corpus_table
from mlops_starter.errors import DataError, LeakageError
from mlops_starter.tasks.binary import single_feature_auc
from mlops_starter.training.split import duplicate_summary, labelled_keys, split_table


def split(cfg, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Run the split stage on `frame`; its train and test sets, and its report."""
    write_raw(cfg, frame)
    split_table(cfg)
    report = json.loads((Path(cfg.paths.reports) / "leakage.json").read_text())
    return pd.read_parquet(cfg.paths.train), pd.read_parquet(cfg.paths.test), report


def failed_split(cfg, frame: pd.DataFrame) -> dict:
    """Run the split stage on `frame`, which fails its audit; the report it wrote."""
    write_raw(cfg, frame)
    with pytest.raises(LeakageError):
        split_table(cfg)
    return json.loads((Path(cfg.paths.reports) / "leakage.json").read_text())


def checks_of(report: dict) -> dict:
    return {c["check"]: c for c in report["checks"]}


def test_stratified_split_sets_about_test_size_aside_with_the_positive_rate(tmp_path, demo_frame):
    train, test, report = split(stage_config(tmp_path, split={"test_size": 0.2}), demo_frame)
    assert len(train) + len(test) == 3000
    # A hash places each row alone: about 600 test rows, within three standard errors.
    assert abs(len(test) - 600) < 3 * np.sqrt(3000 * 0.2 * 0.8)
    rate = lambda part: (part["churned"] == "yes").mean()  # noqa: E731
    assert abs(rate(train) - rate(test)) < 0.03
    assert report["positive_rate"]["test"] == round(rate(test), 5)
    assert report["passed"] and report["scale_mode"] == "in_memory"


def test_the_split_depends_on_split_seed_and_not_on_row_order(tmp_path, demo_frame):
    _, test, _ = split(stage_config(tmp_path / "a"), demo_frame)
    shuffled = demo_frame.sample(frac=1.0, random_state=3)
    _, same, _ = split(stage_config(tmp_path / "b"), shuffled)
    other_seed = stage_config(tmp_path / "c", split={"seed": 7})
    _, other, _ = split(other_seed, demo_frame)
    assert set(test["customer_id"]) == set(same["customer_id"])
    assert set(test["customer_id"]) != set(other["customer_id"])


def test_time_split_puts_test_strictly_later(tmp_path, demo_frame):
    cfg = stage_config(tmp_path, split={"strategy": "time"})
    train, test, report = split(cfg, demo_frame)
    assert train["signup_date"].max() < test["signup_date"].min()
    assert checks_of(report)["time_order"]["passed"]
    assert report["passed"]


def test_group_split_keeps_each_group_on_one_side(tmp_path, demo_frame):
    cfg = stage_config(tmp_path, split={"strategy": "group", "group_column": "region"})
    train, test, _ = split(cfg, demo_frame)
    assert not set(train["region"]) & set(test["region"]) and len(test)


def test_split_refuses_a_one_class_side(tmp_path, demo_frame):
    cfg = stage_config(tmp_path, split={"strategy": "time"})
    frame = demo_frame.sort_values("signup_date").reset_index(drop=True)
    frame["churned"] = np.where(frame.index < 10, "yes", "no")  # positives only early
    write_raw(cfg, frame)
    with pytest.raises(DataError, match=r"the test split holds \d+ rows, 0 positive"):
        split_table(cfg)


def test_identical_feature_rows_stay_on_one_side_and_are_counted(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 12, size=(2000, 2))  # few distinct rows: many duplicates
    frame = pd.DataFrame(codes, columns=["a", "b"]).assign(
        churned=np.where(rng.random(2000) < 0.2, "yes", "no")
    )
    cfg = stage_config(tmp_path, data={"id_column": None, "time_column": None})
    train, test, report = split(cfg, frame)
    rows = lambda part: set(map(tuple, part[["a", "b"]].to_numpy()))  # noqa: E731
    assert not rows(train) & rows(test)
    assert report["duplicates"]["duplicate_groups"] == 144
    assert report["duplicates"]["rows_in_duplicate_groups"] == 2000
    assert checks_of(report)["shared_feature_rows"]["value"] == 0


def test_audit_counts_ids_on_both_sides(tmp_path, demo_frame):
    frame = demo_frame.assign(customer_id=[f"C{i // 2}" for i in range(len(demo_frame))])
    report = failed_split(stage_config(tmp_path), frame)
    check = checks_of(report)["id_overlap"]
    assert not check["passed"] and check["value"] > 100


def test_audit_catches_a_feature_copied_from_the_target(tmp_path, demo_frame):
    reason = np.where(demo_frame["churned"] == "yes", "moved", "stayed")
    frame = demo_frame.assign(cancel_reason=reason)
    check = checks_of(failed_split(stage_config(tmp_path), frame))["target_leak_suspects"]
    assert not check["passed"] and "cancel_reason" in check["detail"]
    waived = stage_config(tmp_path, leakage={"allowed_features": ["cancel_reason"]})
    _, _, report = split(waived, frame)
    assert report["passed"] and "allowed by leakage.allowed_features" in str(report)


def test_a_time_split_that_shares_rows_fails_naming_the_deciding_setting(tmp_path, demo_frame):
    copies = demo_frame.sort_values("signup_date").head(3).copy()  # early rows again, late
    copies["signup_date"] = demo_frame["signup_date"].max() + pd.Timedelta(days=1)
    copies["customer_id"] = ["late-1", "late-2", "late-3"]
    frame = pd.concat([demo_frame, copies], ignore_index=True)
    report = failed_split(stage_config(tmp_path, split={"strategy": "time"}), frame)
    check = checks_of(report)["shared_feature_rows"]
    assert not check["passed"] and check["value"] == 3
    assert "split.strategy 'time'" in check["detail"]
    assert "leakage.max_shared_feature_rows" in check["detail"]


def test_a_table_of_few_distinct_rows_stops_the_split_naming_the_settings(tmp_path):
    """A found case: one feature, 'common' in 59 rows and 'once' in one, so two distinct
    feature rows, each kept on one side: a side is left without a class."""
    frame = pd.DataFrame({"a": ["common"] * 59 + ["once"], "churned": ["yes"] * 10 + ["no"] * 50})
    cfg = stage_config(tmp_path, data={"id_column": None, "time_column": None})
    write_raw(cfg, frame)
    with pytest.raises(DataError) as stopped:
        split_table(cfg)
    assert "holds" in str(stopped.value) and "split.test_size" in str(stopped.value)


def test_single_feature_auc_is_direction_free():
    y = pd.Series([0, 0, 1, 1])
    assert single_feature_auc(pd.Series([4.0, 3.0, 2.0, 1.0]), y) == 1.0
    assert single_feature_auc(pd.Series([1.0, 1.0, 1.0, 1.0]), y) == 0.5


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_duplicate_counts_over_sorted_keys_match_a_groupby_at_any_chunk_size(chunk_rows):
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 300, size=500)  # singletons, pairs and larger groups
    groups[:50] = rng.integers(2**40, 2**62, size=50)  # hash-sized group keys
    y = (rng.random(500) < 0.3).astype(np.int8)
    per_group = pd.DataFrame({"group": groups, "y": y}).groupby("group")["y"]
    sizes, label_counts = per_group.size(), per_group.nunique()
    expected = {
        "rows_in_duplicate_groups": int(sizes[sizes > 1].sum()),
        "duplicate_groups": int((sizes > 1).sum()),
        "groups_with_conflicting_labels": int((label_counts > 1).sum()),
        "rows_in_conflicting_groups": int(sizes[label_counts > 1].sum()),
    }
    assert expected["groups_with_conflicting_labels"] > 10
    assert duplicate_summary(labelled_keys(groups, y), chunk_rows) == expected


@pytest.mark.parametrize(
    ("package", "item", "target", "positive", "leaks"),
    [
        # Only card holders have spending: recorded after the outcome it predicts.
        ("AER", "CreditCard", "card", "yes", {"expenditure", "share"}),
        # Injury severity is coded with death itself; occupants of one crash share a case id,
        # so its per-category rate memorises the outcome.
        ("DAAG", "nassCDS", "dead", "dead", {"injSeverity", "caseid"}),
    ],
)
def test_audit_names_the_post_outcome_columns_of_real_tables(
    package, item, target, positive, leaks, tmp_path
):
    table = CorpusTable(item, package, item, {"target": target, "positive_label": positive}, "")
    frame = load_corpus_table(table)
    data = {"target": target, "positive_label": positive, "id_column": None, "time_column": None}
    cfg = stage_config(tmp_path, data=data)
    report = failed_split(cfg, frame)
    failed = {c["check"]: c for c in report["checks"] if not c["passed"]}
    assert set(failed) == {"target_leak_suspects"}
    flagged = {k for k, v in failed["target_leak_suspects"]["value"].items() if v > 0.95}
    assert flagged == leaks
    assert not Path(cfg.paths.train).exists()  # a failed audit writes no split


def test_a_group_split_sets_round_test_size_times_groups_aside_however_few(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 900),
            "site": rng.choice([f"S{i}" for i in range(9)], 900),
            "churned": rng.choice(["yes", "no"], 900),
        }
    )
    for test_size, groups in ((0.2, 2), (0.34, 3), (0.05, 1)):
        cfg = stage_config(
            tmp_path / str(test_size),
            data={"id_column": None, "time_column": None},
            split={"strategy": "group", "group_column": "site", "test_size": test_size},
        )
        train, test, _ = split(cfg, frame)
        assert test["site"].nunique() == groups and train["site"].nunique() == 9 - groups
