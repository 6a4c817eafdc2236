"""Cross-validation fits everything inside the folds: with random labels nothing can be learnt,
so any score above chance would mean held-out rows leaked into fitting."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import candidate_defaults, places

from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.errors import DataError
from mlops_starter.metrics import ranking_metrics
from mlops_starter.training.candidates import build_pipeline
from mlops_starter.training.cv import calibrated, cross_validate, cv_folds, select_winner
from mlops_starter.training.train import synthetic_example

PARAMS = candidate_defaults()
PARAMS["random_forest"] |= {"n_estimators": 60}
PARAMS["xgboost"] |= {"n_estimators": 80}


def prepared(frame, y):
    schema = FeatureSchema.infer(frame, ["churned", "customer_id", "signup_date"])
    return schema, frame[schema.columns]


@pytest.mark.parametrize("resampling", ["none", "smote"])
def test_shuffled_labels_score_at_chance_in_cv_and_on_test(demo_frame, resampling):
    y = (
        encode_target(demo_frame["churned"], "yes")
        .sample(frac=1.0, random_state=0)
        .reset_index(drop=True)
    )
    frame = demo_frame.assign(churned=np.where(y == 1, "yes", "no"))
    train, test = frame.iloc[:2250].reset_index(drop=True), frame.iloc[2250:]
    y_train, y_test = encode_target(train["churned"], "yes"), encode_target(test["churned"], "yes")
    schema, X_train = prepared(train, y_train)
    folds = cv_folds(y_train, 4, 0, "stratified", places(X_train))
    for name in ("random_forest", "xgboost"):
        pipeline = build_pipeline(name, PARAMS[name], schema, resampling, seed=0)
        result = cross_validate(name, PARAMS[name], pipeline, X_train, y_train, folds, fbeta=1.0)
        assert abs(result.mean("roc_auc") - 0.5) < 0.08, (name, result.mean("roc_auc"))
        test_auc = ranking_metrics(
            y_test, pipeline.fit(X_train, y_train).predict_proba(test[schema.columns])[:, 1]
        )
        assert abs(test_auc["roc_auc"] - 0.5) < 0.1, (name, test_auc)


def test_real_labels_score_well_above_chance(demo_frame):
    y = encode_target(demo_frame["churned"], "yes")
    schema, X = prepared(demo_frame, y)
    folds = cv_folds(y, 3, 0, "stratified", places(X))
    pipeline = build_pipeline("xgboost", PARAMS["xgboost"], schema)
    result = cross_validate("xgboost", PARAMS["xgboost"], pipeline, X, y, folds, fbeta=2.0)
    assert result.mean("roc_auc") > 0.7
    assert (~np.isnan(result.oof)).all() and 0 < result.threshold < 1


def test_time_series_folds_only_look_forward(demo_frame):
    y = encode_target(demo_frame["churned"], "yes")
    times = demo_frame["signup_date"]  # in the table's order, not sorted
    folds = cv_folds(y, 4, 0, "time", places(demo_frame, times=times))
    assert len(folds) == 4
    for train_rows, valid_rows in folds:
        assert times.iloc[train_rows].max() < times.iloc[valid_rows].min()


def test_grouped_folds_keep_groups_apart(demo_frame):
    y = encode_target(demo_frame["churned"], "yes")
    groups = demo_frame["payment_method"].fillna("none")
    by_group = places(demo_frame, ["payment_method"])
    for train_rows, valid_rows in cv_folds(y, 3, 0, "group", by_group):
        assert not set(groups.iloc[train_rows]) & set(groups.iloc[valid_rows])


def test_a_time_fold_without_positives_stops_naming_the_fold_and_the_setting():
    """Found by the generated tables: positives only late in time left the first time
    fold's training rows one class, and the baseline's solver raised."""
    y = pd.Series([0] * 50 + [1, 0] * 10)
    by_time = places(pd.DataFrame({"y": y}), times=np.arange(70))
    with pytest.raises(
        DataError,
        match=r"fold 1 of 3 \(split.strategy 'time'\): its training rows \(17\) hold one class only, 0 positives, of 10.*Lower train.cv_folds, or split by another strategy",
    ):
        cv_folds(y, 3, 0, "time", by_time)
    with pytest.raises(DataError, match=r"Lower train.tuning.inner_folds"):
        cv_folds(y, 3, 0, "time", by_time, setting="train.tuning.inner_folds")


def test_winner_is_the_best_mean_primary_metric(demo_frame):
    y = encode_target(demo_frame["churned"], "yes")
    schema, X = prepared(demo_frame, y)
    folds = cv_folds(y, 3, 0, "stratified", places(X))
    results = [
        cross_validate(n, PARAMS[n], build_pipeline(n, PARAMS[n], schema), X, y, folds, 1.0)
        for n in ("random_forest", "xgboost")
    ]
    best = select_winner(results, "pr_auc")
    assert best.mean("pr_auc") == max(r.mean("pr_auc") for r in results)


def test_folds_keep_identical_rows_together():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.integers(0, 4, size=(600, 2)), columns=["a", "b"])
    y = pd.Series((rng.random(600) < 0.3).astype(int))
    rows = places(frame)
    for train_rows, valid_rows in cv_folds(y, 3, 0, "stratified", rows):
        assert not set(rows.hashes[train_rows]) & set(rows.hashes[valid_rows])


def test_calibration_learnt_out_of_fold_undoes_class_weight_inflation(demo_frame):
    y = encode_target(demo_frame["churned"], "yes")
    schema, X = prepared(demo_frame, y)
    folds = cv_folds(y, 3, 0, "stratified", places(X))
    weighted = build_pipeline("logistic_regression", PARAMS["logistic_regression"], schema)
    raw = cross_validate("logistic_regression", {}, weighted, X, y, folds, fbeta=1.0)
    fixed = cross_validate(
        "logistic_regression", {}, weighted, X, y, folds, fbeta=1.0, calibration="sigmoid"
    )
    assert raw.calibration is None and fixed.calibration is not None
    # class_weight=balanced pushes the mean probability far above the 5% base rate ...
    assert np.mean(raw.oof) > 3 * y.mean()
    # ... and the out-of-fold map brings the Brier score below the base rate's.
    base_rate_brier = y.mean() * (1 - y.mean())
    assert raw.mean("brier") > base_rate_brier > fixed.mean("brier")
    model = calibrated(weighted.fit(X, y), fixed)
    expected = fixed.calibration.apply(weighted.predict_proba(X.head(20))[:, 1])
    np.testing.assert_allclose(model.predict_proba(X.head(20))[:, 1], expected)


def test_input_example_is_no_training_row_and_keeps_every_column_typed(demo_frame):
    X = demo_frame.drop(columns=["churned"]).copy()
    X.loc[X.index[:-3], "age"] = np.nan  # a column almost always missing
    example = synthetic_example(X, rows=5)
    assert list(example.columns) == list(X.columns) and len(example) == 5
    assert (example.dtypes == X.dtypes).all()
    assert example.notna().all().all()  # even where the training rows are mostly null
    rows = set(map(tuple, X.astype(str).itertuples(index=False)))
    assert not rows & set(map(tuple, example.astype(str).itertuples(index=False)))


@pytest.mark.parametrize("strategy", ["stratified", "group"])
def test_a_class_rarer_than_the_folds_stops_naming_the_setting_without_a_warning(strategy):
    """A class with fewer rows than folds cannot be in every fold: refused up front."""
    y = pd.Series([1, 1] + [0] * 40)
    rows = places(pd.DataFrame({"g": np.arange(42) // 2 if strategy == "group" else np.arange(42)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            DataError, match=r"2 row\(s\) of the positive class: 3 cross-validation folds"
        ):
            cv_folds(y, 3, 0, strategy, rows)


def test_folds_inside_a_fold_are_made_afresh_so_none_is_empty(demo_frame):
    """Nested tuning folds a fold's training rows by the same rule: hashed alike, every
    inner fold would miss the outer validation block and one would be empty."""
    y = encode_target(demo_frame["churned"], "yes")
    rows = places(demo_frame.drop(columns=["churned", "customer_id", "signup_date"]))
    for fit, _ in cv_folds(y, 3, 0, "stratified", rows):
        inner = cv_folds(y.iloc[fit].reset_index(drop=True), 3, 0, "stratified", rows.nested(fit))
        assert all(len(valid) > len(fit) / 5 for _, valid in inner)


def test_few_groups_give_each_fold_a_share_of_them(demo_frame):
    y = encode_target(demo_frame["churned"], "yes")
    by_region = places(demo_frame, ["region"])  # four regions: one fold each at most
    folds = cv_folds(y, 4, 0, "group", by_region)
    regions = [set(demo_frame["region"].iloc[valid]) for _, valid in folds]
    assert sorted(map(len, regions)) == [1, 1, 1, 1]
