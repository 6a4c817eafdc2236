"""The task a target asks for: inferred from generated and real target columns, and the
stages it changes so far (ingest to evaluate) on real multi-class and regression tables."""

import json
import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import stage_config, write_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_starter.config import DataConfig
from mlops_starter.data.corpus import CorpusTable, load_corpus_table
from mlops_starter.data.ingest import ingest
from mlops_starter.errors import ConfigError, DataError, LeakageError
from mlops_starter.evaluation.evaluate import evaluate
from mlops_starter.storage import load_model
from mlops_starter.tasks import Binary, Multiclass, Regression, TargetValues, infer_task
from mlops_starter.training.split import duplicate_summary, labelled_keys, split_table
from mlops_starter.training.train import train_table
from mlops_starter.validation.validate import validate_table


def task_of(values: list, **data) -> object:
    column = pa.array(values)
    return infer_task(TargetValues.of(column, "y"), DataConfig(target="y", **data))


def real(package: str, item: str) -> pd.DataFrame:
    return load_corpus_table(CorpusTable(item, package, item, {}, ""))


# --- inference ----------------------------------------------------------------------------

labels = st.one_of(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=60),
    st.lists(st.integers(-5, 40), min_size=1, max_size=60),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=60),
    st.lists(st.booleans(), min_size=1, max_size=60),
)


@settings(max_examples=300, deadline=None)
@given(values=labels, task=st.sampled_from(["auto", "binary", "multiclass", "regression"]))
def test_any_target_gets_a_task_that_fits_it_or_an_error_naming_the_column(values, task):
    present = pd.Series(values).dropna()
    positive = next(iter(v for v in values if v == v), None)  # the first non-NaN
    if isinstance(positive, float):
        positive = int(positive) if positive.is_integer() else None
    try:
        found = task_of(values, task=task, positive_label=positive)
    except DataError as error:
        assert "target column 'y'" in str(error)
        return
    distinct = present.nunique()
    assert task in ("auto", found.name)
    if isinstance(found, Binary):
        assert distinct == 2
    elif isinstance(found, Multiclass):
        assert 3 <= distinct <= 20 and len(found.classes) == distinct
    else:
        assert np.isfinite(present.astype(float)).all() and distinct >= 3


@pytest.mark.parametrize(
    ("values", "task", "why"),
    [
        (["no", "yes", "no"], Binary, "two values ('no', 'yes')"),
        (["a", "b", "c", "a"], Multiclass, "text with 3 values"),
        (
            [1, 2, 3, 3, 5],
            Multiclass,
            "whole numbers with 4 distinct values, at most data.max_classes (20)",
        ),
        ([1.0, 2.0, 3.0], Multiclass, "whole numbers with 3 distinct values"),
        ([0.5, 1.25, 3.0, 2.0], Regression, "numbers with 4 distinct values"),
        (list(range(21)), Regression, "whole numbers with 21 distinct values"),
    ],
)
def test_auto_names_the_task_and_why(values, task, why):
    found = task_of(values, positive_label="yes")
    assert isinstance(found, task) and why in found.reason


@pytest.mark.parametrize(
    ("values", "data", "named"),
    [
        ([1.0, np.inf, 2.0, 3.5], {}, "1 infinite values"),
        (["a", "b"], {}, "no data.positive_label: set it to one of 'a', 'b'"),
        ([str(i) for i in range(30)], {}, "more than data.max_classes (20)"),
        (
            [str(i) for i in range(30)],
            {"max_classes": 10, "task": "multiclass"},
            "data.max_classes (10)",
        ),
        (
            ["a", "b", "c"],
            {"task": "regression"},
            "as regression (data.task): string values are no numbers",
        ),
        ([1, 2, 3], {"task": "binary"}, "3 values, not two; set data.positive_vs_rest"),
        ([7, 7, 7], {}, "holds 1 value(s) (7): there is nothing to learn"),
    ],
)
def test_a_target_no_task_learns_stops_naming_the_column_and_the_setting(values, data, named):
    with pytest.raises(DataError, match="target column 'y'") as error:
        task_of(values, **data)
    assert named in str(error.value)


def test_dates_as_a_target_name_data_task():
    with pytest.raises(DataError, match=r"timestamp\[us\] values .* set data.task"):
        task_of(list(pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"])))


def test_a_boolean_target_read_as_0_and_1_is_binary_with_positive_label_true():
    assert isinstance(task_of([0, 1, 1], positive_label=True), Binary)


# --- ingest --------------------------------------------------------------------------------


def test_ingest_prints_the_task_and_a_target_no_task_learns_leaves_the_old_table(tmp_path, caplog):
    source, raw = tmp_path / "boston.csv", tmp_path / "raw.parquet"
    real("MASS", "Boston").to_csv(source, index=False)
    with caplog.at_level(logging.INFO, logger="ingest"):
        ingest(DataConfig(source=str(source), target="medv"), raw)
    assert "task: regression, for target 'medv': numbers with 229 distinct values" in caplog.text
    before = raw.read_bytes()
    frame = pd.read_csv(source).assign(medv=lambda f: np.where(f.index == 3, np.inf, f.medv))
    frame.to_csv(source, index=False)
    with pytest.raises(DataError, match=r"target column .medv. .* 1 infinite values"):
        ingest(DataConfig(source=str(source), target="medv"), raw)
    assert raw.read_bytes() == before


# --- validate ------------------------------------------------------------------------------


def validated(
    tmp_path: Path, frame: pd.DataFrame, data: dict, checks: dict | None = None, mode="in_memory"
):
    cfg = stage_config(tmp_path, mode, data=data, validate=checks or {})
    write_raw(cfg, frame)
    return validate_table(cfg)


@pytest.mark.parametrize("mode", ["in_memory", "streaming"])
def test_validate_wants_enough_rows_of_every_class(tmp_path, mode):
    beps = real("carData", "BEPS")  # 720 Labour, 462 Conservative, 343 Liberal Democrat voters
    data = {"target": "vote", "id_column": None, "time_column": None}
    assert validated(tmp_path / "a", beps, data, mode=mode).success
    report = validated(tmp_path / "b", beps, data, {"min_class_rows": 400}, mode)
    (failure,) = report.failures
    assert "class 'Liberal Democrat' of 'vote' has at least 400 rows" in failure
    assert "validate.min_class_rows" in failure


@pytest.mark.parametrize("mode", ["in_memory", "streaming"])
def test_validate_holds_a_regression_target_to_its_range(tmp_path, mode):
    boston = real("MASS", "Boston")
    data = {"target": "medv", "id_column": None, "time_column": None}
    assert validated(tmp_path / "a", boston, data, mode=mode).success
    report = validated(tmp_path / "b", boston, data, {"target_range": [0, 40]}, mode)
    assert not report.success
    (failure,) = report.failures
    assert "target 'medv' lies in [0, 40]" in failure and "validate.target_range" in failure


# --- split ---------------------------------------------------------------------------------


def split_report(cfg) -> dict:
    return json.loads((Path(cfg.paths.reports) / "leakage.json").read_text())


NO_ROLES = {"id_column": None, "time_column": None}


def test_a_multiclass_split_reports_each_side_s_class_shares(tmp_path):
    cfg = stage_config(tmp_path, data={"target": "cut", **NO_ROLES})
    diamonds = real("ggplot2", "diamonds")
    write_raw(cfg, diamonds)
    split_table(cfg)
    report = split_report(cfg)
    assert report["task"]["name"] == "multiclass"
    shares = report["class_share"]
    whole = diamonds["cut"].value_counts(normalize=True)
    for side in ("train", "test"):
        assert set(shares[side]) == set(whole.index)
        # Hash-placed rows: each class near its share, within 4 standard errors of the side.
        rows = report["rows"][side]
        for label, share in shares[side].items():
            assert abs(share - whole[label]) < 4 * np.sqrt(whole[label] * (1 - whole[label]) / rows)
    # Diamonds repeat: identical rows with another cut are conflicts, counted by class.
    duplicates = report["duplicates"]
    assert duplicates["groups_with_conflicting_labels"] > 0
    assert (
        duplicates["rows_in_conflicting_groups"] >= 2 * duplicates["groups_with_conflicting_labels"]
    )


def test_a_regression_split_reports_the_target_and_flags_a_feature_that_copies_it(tmp_path):
    boston = real("MASS", "Boston")
    cfg = stage_config(tmp_path, data={"target": "medv", **NO_ROLES})
    write_raw(cfg, boston)
    split_table(cfg)
    report = split_report(cfg)
    assert report["task"]["name"] == "regression"
    assert abs(report["target_mean"]["train"] - boston["medv"].mean()) < 1.5
    assert report["duplicates"]["groups_with_conflicting_labels"] is None
    scores = {c["check"]: c for c in report["checks"]}["target_leak_suspects"]["value"]
    # lstat, the share of lower-status residents, is the strongest honest predictor.
    assert 0.5 < scores["lstat"] < 0.95 and max(scores.values()) == scores["lstat"]
    leaky = boston.assign(medv_thousands=boston["medv"] * 1000 + 3)
    write_raw(cfg, leaky)
    with pytest.raises(LeakageError, match=r"R² .*leakage.max_single_feature_r2.*medv_thousands"):
        split_table(cfg)


def test_a_class_missing_from_one_side_stops_the_split_naming_it(tmp_path):
    beps = real("carData", "BEPS")
    cfg = stage_config(tmp_path, data={"target": "vote", **NO_ROLES})
    few = pd.concat(
        [beps[beps["vote"] != "Liberal Democrat"], beps[beps["vote"] == "Liberal Democrat"].head(1)]
    )
    write_raw(cfg, few)
    with pytest.raises(DataError, match=r"split holds .* none of class 'Liberal Democrat'"):
        split_table(cfg)


@pytest.mark.parametrize(("classes", "bits"), [(2, 1), (5, 3), (20, 5)])
@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_duplicate_counts_of_any_number_of_classes_match_a_groupby(classes, bits, chunk_rows):
    rng = np.random.default_rng(classes)
    groups = rng.integers(0, 200, size=600)
    groups[:50] = rng.integers(2**40, 2**58, size=50)  # hash-sized group keys
    y = rng.choice(classes, size=600, p=np.r_[0.7, np.full(classes - 1, 0.3 / (classes - 1))])
    per_group = pd.DataFrame({"group": groups, "y": y}).groupby("group")["y"]
    sizes, label_counts = per_group.size(), per_group.nunique()
    expected = {
        "rows_in_duplicate_groups": int(sizes[sizes > 1].sum()),
        "duplicate_groups": int((sizes > 1).sum()),
        "groups_with_conflicting_labels": int((label_counts > 1).sum()),
        "rows_in_conflicting_groups": int(sizes[label_counts > 1].sum()),
    }
    assert expected["groups_with_conflicting_labels"] > 10
    assert duplicate_summary(labelled_keys(groups, y, bits), chunk_rows, bits) == expected


# --- train and evaluate ---------------------------------------------------------------------


def trained(tmp_path: Path, frame: pd.DataFrame, target: str, **sections: dict):
    """Split, train and evaluate `frame` for `target` in memory; (cfg, train outcome,
    evaluation)."""
    cfg = stage_config(tmp_path, data={"target": target, **NO_ROLES}, **sections)
    write_raw(cfg, frame)
    split_table(cfg)
    outcome = train_table(cfg)
    model_file = tmp_path / "model.skops"
    model_file.write_bytes(outcome.model_file)
    run = mlflow.search_runs(
        filter_string="tags.mlflow.runName = 'train'", order_by=["start_time DESC"], max_results=1
    )
    evaluation = evaluate(load_model(model_file), outcome.model_info, cfg, run.iloc[0].run_id)
    return cfg, outcome, evaluation


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_regression_table_trains_candidates_for_numbers_and_serves_a_conformal_interval(
    tmp_path, tracking
):
    boston = real("MASS", "Boston")
    small_slices = {"slices": {"min_rows": 30, "numeric_features": 2, "bins": 2}}
    _, outcome, evaluation = trained(tmp_path, boston, "medv", evaluate=small_slices)
    cv, info, metrics = outcome.cv_metrics, outcome.model_info, evaluation.metrics
    assert cv["primary_metric"] == "rmse"  # auto
    assert set(cv["candidates"]) == {"random_forest", "xgboost", "elastic_net"}
    best = min(c["cv_rmse"] for c in cv["candidates"].values())
    assert cv["candidates"][cv["winner"]]["cv_rmse"] == best  # the least error wins
    # The out-of-fold residuals' 90% quantile is the half-width, and on those rows it holds.
    assert info["task"] == "regression" and info["interval_coverage"] == 0.9
    assert 0.89 <= cv["cv_interval_coverage"] <= 0.93
    assert 0 < info["interval_half_width"] < boston["medv"].std() * 2
    assert metrics["r2"] > 0.6 and metrics["rmse"] < boston["medv"].std()
    assert metrics["interval_width"] == pytest.approx(2 * info["interval_half_width"])
    answers = evaluation.scores
    inside = (answers["lower"] <= answers["actual"]) & (answers["actual"] <= answers["upper"])
    assert metrics["interval_coverage"] == pytest.approx(inside.mean(), abs=1e-5)
    assert set(evaluation.tables) == {"predicted", "residuals", "coverage", "importance"}
    # The most important feature by permutation raises the error when shuffled.
    assert evaluation.tables["importance"]["importance"].iloc[0] > 0
    # Slices by R²: the two halves of each of the two most important features.
    slices = evaluation.slices
    assert slices["metric"] == "r2" and slices["overall"]["r2"] == pytest.approx(metrics["r2"])
    top = list(evaluation.tables["importance"]["feature"][:2])
    assert {s["feature"] for s in slices["slices"]} == set(top)
    assert all(s["assessed"] for s in slices["slices"]) and len(slices["slices"]) == 4
    assert metrics["worst_slice_r2"] == min(s["r2"] for s in slices["slices"])


def test_a_multiclass_table_gets_calibrated_probabilities_and_a_cost_matrix_moves_decisions(
    tmp_path, tracking
):
    beps = real("carData", "BEPS")
    small_slices = {"slices": {"min_rows": 100, "min_positives": 10}}
    _, outcome, plain = trained(tmp_path / "argmax", beps, "vote", evaluate=small_slices)
    cv, info = outcome.cv_metrics, outcome.model_info
    assert cv["primary_metric"] == "log_loss"
    assert info["classes"] == ["Conservative", "Labour", "Liberal Democrat"]
    best = min(c["cv_log_loss"] for c in cv["candidates"].values())
    assert cv["candidates"][cv["winner"]]["cv_log_loss"] == best
    answers = plain.scores
    probabilities = answers.filter(like="probability_")
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (answers["predicted"] == probabilities.idxmax(axis=1).str[12:]).all()
    metrics = plain.metrics
    assert metrics["roc_auc_ovr"] > 0.75 and set(metrics["per_class"]) == set(info["classes"])
    # Slices by one-against-rest ROC-AUC: gender's two, each holding every class.
    genders = [s for s in plain.slices["slices"] if s["feature"] == "gender"]
    assert plain.slices["metric"] == "roc_auc_ovr" and len(genders) == 2
    assert all(s["assessed"] and 0.7 < s["roc_auc_ovr"] < 1 for s in genders)
    confusion = plain.tables["confusion"]
    assert len(confusion) == metrics["rows"] and metrics["accuracy"] == pytest.approx(
        (confusion["actual"] == confusion["predicted"]).mean(), abs=1e-5
    )
    # Missing a Liberal Democrat voter costs five times any other mistake: more are called so.
    cost = [[0, 1, 1], [1, 0, 1], [5, 5, 0]]
    _, costly_outcome, costly = trained(
        tmp_path / "cost", beps, "vote", train={"cost_matrix": cost}
    )
    assert costly_outcome.model_info["cost_matrix"] == cost
    recall = [e.metrics["per_class"]["Liberal Democrat"]["recall"] for e in (plain, costly)]
    assert recall[1] > recall[0] + 0.2


def test_a_cost_matrix_of_the_wrong_size_names_the_setting_and_the_classes(tmp_path, tracking):
    with pytest.raises(
        ConfigError,
        match=r"train.cost_matrix is 2x2: .* 3 classes.*'Conservative', 'Labour', 'Liberal Democrat'",
    ):
        trained(tmp_path, real("carData", "BEPS"), "vote", train={"cost_matrix": [[0, 1], [1, 0]]})


@pytest.mark.parametrize(
    ("table", "target", "train", "named"),
    [
        (
            ("MASS", "Boston"),
            "medv",
            {"primary_metric": "pr_auc"},
            r"'pr_auc' is no regression metric; set auto or one of rmse, mae, r2",
        ),
        (
            ("MASS", "Boston"),
            "medv",
            {"resampling": "smote"},
            r"train.resampling: smote .* no classes; set it to none",
        ),
        (
            ("carData", "BEPS"),
            "vote",
            {"primary_metric": "rmse"},
            r"'rmse' is no multiclass metric",
        ),
        (
            ("MASS", "Boston"),
            "medv",
            {
                "candidates": {
                    "random_forest": {"enabled": False},
                    "xgboost": {"enabled": False},
                    "elastic_net": {"enabled": False},
                }
            },
            r"none of the enabled ones learns a regression task; enable one of random_forest, xgboost, adaboost, elastic_net",
        ),
    ],
)
def test_train_settings_a_task_cannot_use_are_named_before_anything_is_fitted(
    tmp_path, tracking, table, target, train, named
):
    cfg = stage_config(tmp_path, data={"target": target, **NO_ROLES}, train=train)
    Path(cfg.paths.train).parent.mkdir(parents=True)
    real(*table).to_parquet(cfg.paths.train)
    with pytest.raises(ConfigError, match=named):
        train_table(cfg)


def test_a_task_past_memory_is_refused_by_name(tmp_path):
    cfg = stage_config(tmp_path, "streaming", data={"target": "medv", **NO_ROLES})
    Path(cfg.paths.train).parent.mkdir(parents=True)
    real("MASS", "Boston").to_parquet(cfg.paths.train)
    with pytest.raises(DataError, match=r"regression task .* scale.mode streaming trains binary"):
        train_table(cfg)


def test_conformal_intervals_hold_their_coverage_on_a_large_real_table(tmp_path, tracking):
    """54,000 diamonds: 10,800 test rows tell coverage to about ±0.003 (one standard error)."""
    fast = {
        "candidates": {"random_forest": {"enabled": False}, "xgboost": {"n_estimators": 100}},
        "interval_coverage": 0.8,
    }
    _, outcome, evaluation = trained(tmp_path, real("ggplot2", "diamonds"), "price", train=fast)
    assert outcome.cv_metrics["winner"] == "xgboost"
    assert evaluation.metrics["rows"] > 10_000
    assert abs(evaluation.metrics["interval_coverage"] - 0.8) <= 0.03


@pytest.mark.parametrize(
    ("package", "item", "target"), [("MASS", "Boston", "medv"), ("carData", "BEPS", "vote")]
)
def test_streaming_splits_and_reports_each_task_as_in_memory_does(tmp_path, package, item, target):
    frame = real(package, item)
    reports, tests = {}, {}
    for mode in ("in_memory", "streaming"):
        cfg = stage_config(tmp_path / mode, mode, data={"target": target, **NO_ROLES})
        write_raw(cfg, frame)
        split_table(cfg)
        reports[mode] = split_report(cfg)
        tests[mode] = pd.read_parquet(cfg.paths.test)
    pd.testing.assert_frame_equal(tests["in_memory"], tests["streaming"])
    memory, streamed = reports["in_memory"], reports["streaming"]
    scores = [
        {c["check"]: c["value"] for c in r.pop("checks")}["target_leak_suspects"]
        for r in (memory, streamed)
    ]
    assert scores[0] == pytest.approx(scores[1], abs=1e-4)
    for report in (memory, streamed):
        report.pop("scale_mode")
    assert memory == streamed
