import numpy as np
import pandas as pd
import pytest

from mlops_starter.config import Config
from mlops_starter.data.corpus import CorpusTable, load_corpus_table
from mlops_starter.data.schema import encode_target
from mlops_starter.errors import DataError
from mlops_starter.training.leakage import audit_leakage, single_feature_auc
from mlops_starter.training.split import (
    duplicate_groups,
    duplicate_summary,
    labelled_keys,
    split_holdout,
    split_table,
)

FEATURES = [
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "data_usage_gb",
    "age",
    "plan",
    "contract",
    "region",
    "payment_method",
]


@pytest.fixture
def labelled(demo_frame):
    frame = demo_frame.sort_values("signup_date").reset_index(drop=True)
    return frame, encode_target(frame["churned"], "yes")


def audit(train, test, **overrides):
    settings = (
        dict(
            y_train=encode_target(train["churned"], "yes"),
            features=FEATURES,
            id_column="customer_id",
            time_column="signup_date",
            strategy="stratified",
            max_single_feature_auc=0.95,
            allowed_features=[],
            max_shared_feature_rows=0,
        )
        | overrides
    )
    return {c.name: c for c in audit_leakage(train, test, **settings)}


def test_stratified_split_keeps_the_positive_rate(labelled):
    frame, y = labelled
    train, test = split_holdout(frame, y, "stratified", 0.2, seed=1)
    assert len(test) == 600 and len(train) == 2400
    rate = lambda part: (part["churned"] == "yes").mean()  # noqa: E731
    assert abs(rate(train) - rate(test)) < 0.005


def test_time_split_puts_test_strictly_later(labelled):
    frame, y = labelled
    train, test = split_holdout(frame, y, "time", 0.2, seed=1, time_column="signup_date")
    assert train["signup_date"].max() < test["signup_date"].min()


def test_group_split_keeps_each_group_on_one_side(labelled):
    frame, y = labelled
    train, test = split_holdout(frame, y, "group", 0.3, seed=1, group_column="region")
    assert not set(train["region"]) & set(test["region"])


def test_split_refuses_a_one_class_side(labelled):
    frame, _ = labelled
    y = pd.Series(np.r_[np.ones(10), np.zeros(len(frame) - 10)].astype(int))
    with pytest.raises(DataError, match="holds only one class"):
        split_holdout(frame, y, "time", 0.2, seed=1, time_column="signup_date")


def test_clean_split_passes_every_check(labelled):
    frame, y = labelled
    train, test = split_holdout(frame, y, "time", 0.2, seed=1, time_column="signup_date")
    checks = audit(train, test, strategy="time")
    assert all(c.passed for c in checks.values()), checks


def test_audit_catches_id_overlap_and_shared_rows(labelled):
    frame, y = labelled
    train, test = split_holdout(frame, y, "stratified", 0.2, seed=1)
    test = pd.concat([test, train.head(3)], ignore_index=True)
    checks = audit(train, test)
    assert not checks["id_overlap"].passed and checks["id_overlap"].value == 3
    assert not checks["shared_feature_rows"].passed and checks["shared_feature_rows"].value == 3


def test_audit_catches_broken_time_order(labelled):
    frame, y = labelled
    train, test = split_holdout(frame, y, "stratified", 0.2, seed=1)
    assert not audit(train, test, strategy="time")["time_order"].passed


def test_audit_catches_a_feature_copied_from_the_target(labelled):
    frame, y = labelled
    frame = frame.assign(cancel_reason=np.where(y == 1, "moved", None))
    train, test = split_holdout(frame, y, "stratified", 0.2, seed=1)
    check = audit(train, test, features=[*FEATURES, "cancel_reason"])["target_leak_suspects"]
    assert not check.passed and "cancel_reason" in check.detail
    waived = audit(
        train, test, features=[*FEATURES, "cancel_reason"], allowed_features=["cancel_reason"]
    )
    assert waived["target_leak_suspects"].passed


def test_single_feature_auc_is_direction_free():
    y = pd.Series([0, 0, 1, 1])
    assert single_feature_auc(pd.Series([4.0, 3.0, 2.0, 1.0]), y) == 1.0
    assert single_feature_auc(pd.Series([1.0, 1.0, 1.0, 1.0]), y) == 0.5


def test_identical_feature_rows_stay_on_one_side_and_are_counted():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(2000, 2))  # few distinct rows: many duplicates
    frame = pd.DataFrame(codes, columns=["a", "b"])
    y = pd.Series((rng.random(2000) < 0.2).astype(int))
    groups = duplicate_groups(frame)
    train, test = split_holdout(frame, y, "stratified", 0.2, seed=0, duplicates=groups)
    assert not set(map(tuple, train.to_numpy())) & set(map(tuple, test.to_numpy()))
    summary = duplicate_summary(labelled_keys(groups, y.to_numpy()))
    assert summary["duplicate_groups"] == 9 and summary["rows_in_duplicate_groups"] == 2000
    assert summary["groups_with_conflicting_labels"] == 9


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


def test_a_time_split_that_shares_rows_fails_naming_the_deciding_setting(labelled):
    frame, _ = labelled
    train, test = frame.iloc[:2400], frame.iloc[2400:]
    test = pd.concat([test, train.head(3)])  # identical rows on both sides
    check = audit(train, test, strategy="time")["shared_feature_rows"]
    assert not check.passed
    assert "split.strategy 'time'" in check.detail
    assert "leakage.max_shared_feature_rows" in check.detail


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
    package, item, target, positive, leaks
):
    table = CorpusTable(item, package, item, {"target": target, "positive_label": positive}, "")
    frame = load_corpus_table(table)
    cfg = Config.from_dict(
        {"data": {"source": "unused.csv", "target": target, "positive_label": positive}}
    )
    outcome = split_table(frame, cfg)
    failed = {c.name: c for c in outcome.failed}
    assert set(failed) == {"target_leak_suspects"}
    flagged = {k for k, v in failed["target_leak_suspects"].value.items() if v > 0.95}
    assert flagged == leaks


def test_a_table_of_few_distinct_rows_stops_the_split_with_the_counts():
    """A found case: one feature, 'common' in 59 rows and 'once' in one, so two distinct
    feature rows; stratifying their groups made scikit-learn raise."""
    frame = pd.DataFrame({"a": ["common"] * 59 + ["once"], "y": [1] * 10 + [0] * 50})
    y = frame["y"]
    with pytest.raises(DataError) as stopped:
        split_holdout(
            frame, y, "stratified", 0.2, seed=1, duplicates=duplicate_groups(frame[["a"]])
        )
    assert "60 rows hold only 2 distinct feature rows (1 with a positive, 1 without)" in str(
        stopped.value
    )
    assert "split.test_size=0.2" in str(stopped.value)
