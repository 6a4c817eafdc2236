"""The same bytes on every machine: what the DAG commits must not depend on the thread
count, the BLAS kernel or the last bits of any float. Another CPU or kernel cannot be
made in-process; the noise they cause can, and that is what these tests inject."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_TARGETS, candidate_defaults, places
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from mlops_starter.candidates import CANDIDATES
from mlops_starter.config import TrainConfig
from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.evaluation.calibration import CalibrationMap
from mlops_starter.metrics import classification_metrics, curve_tables
from mlops_starter.rounding import ROUNDING_CHUNK, round_sig, rounded_figures
from mlops_starter.storage import model_bytes
from mlops_starter.training.candidates import build_pipeline, portable
from mlops_starter.training.cv import (
    calibrated,
    cross_validate,
    cv_folds,
    summarize_oof,
    summarize_task_oof,
)

FAST = {
    "random_forest": {"n_estimators": 40},
    "xgboost": {"n_estimators": 60},
    "logistic_regression": {},
    "balanced_random_forest": {"n_estimators": 40},
    "adaboost": {"n_estimators": 60},
    "elastic_net": {},
}
PARAMS = {name: p | FAST[name] for name, p in candidate_defaults().items()}
LEARNERS = [
    (task, name)
    for task in DEMO_TARGETS
    for name in sorted(PARAMS)
    if CANDIDATES[name].learns(task)
]


@pytest.fixture(scope="module")
def training(demo_frame):
    frame = demo_frame.head(4000)
    schema = FeatureSchema.infer(frame, ["churned", "customer_id", "signup_date"])
    y = encode_target(frame["churned"], "yes")
    return (
        schema,
        frame[schema.columns],
        y,
        cv_folds(y, 3, 0, "stratified", places(frame[schema.columns])),
    )


@pytest.fixture(scope="module")
def every_task(demo_tasks):
    """Per task: the task, the feature schema, features, target and folds."""
    prepared = {}
    for name, (task, schema, X, y) in demo_tasks.items():
        folds = cv_folds(pd.Series(y), 3, 0, "stratified", places(X), classes=task.has_classes)
        prepared[name] = (task, schema, X, pd.Series(y), folds)
    return prepared


def fingerprint(task_name, name, every_task, n_jobs):
    """The CV summary and the finished refit's model file, as train commits them."""
    task, schema, X, y, folds = every_task[task_name]
    pipeline = build_pipeline(name, PARAMS[name], schema, seed=0, n_jobs=n_jobs, task=task_name)
    result = cross_validate(
        name, PARAMS[name], pipeline, X, y, folds, 2.0, "sigmoid", task=task, settings=TrainConfig()
    )
    model = calibrated(portable(clone(pipeline).fit(X, y), name), result)
    return json.dumps(result.summary()), hashlib.md5(model_bytes(model)).hexdigest()


@pytest.mark.parametrize(("task", "name"), LEARNERS)
def test_thread_counts_change_no_byte_of_the_model_or_its_cv_summary(every_task, task, name):
    """train.n_jobs 1, 2 and -1, and one BLAS thread or all of them: one result, for
    every candidate of every task."""
    reference = fingerprint(task, name, every_task, n_jobs=1)
    assert fingerprint(task, name, every_task, n_jobs=2) == reference
    assert fingerprint(task, name, every_task, n_jobs=-1) == reference
    with threadpool_limits(limits=1):
        assert fingerprint(task, name, every_task, n_jobs=-1) == reference


def jittered(values: np.ndarray, seed: int, ulps: int) -> np.ndarray:
    """`values` moved by up to `ulps` units in the last place, each its own way: the
    difference between two BLAS kernels or two libm builds."""
    steps = np.random.default_rng(seed).integers(-ulps, ulps + 1, size=values.shape)
    moved = values.copy()
    for _ in range(ulps):
        moved = np.where(steps > 0, np.nextafter(moved, np.inf), moved)
        moved = np.where(steps < 0, np.nextafter(moved, -np.inf), moved)
        steps = steps - np.sign(steps)
    return moved


@pytest.fixture(scope="module")
def out_of_fold(training):
    """Raw out-of-fold probabilities of a real model, with their labels and folds."""
    schema, X, y, folds = training
    pipeline = build_pipeline("logistic_regression", PARAMS["logistic_regression"], schema)
    result = cross_validate("logistic_regression", {}, pipeline, X, y, folds, 2.0)
    return result.oof, y.to_numpy(), [valid for _, valid in folds]


def summary_of(oof, y, valid_rows, calibration):
    result = summarize_oof("m", {}, oof, y, valid_rows, 2.0, calibration, 0.0)
    knots = None if result.calibration is None else result.calibration.knots.tolist()
    return result.threshold, knots, json.dumps(result.fold_metrics), json.dumps(result.summary())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ulps=st.integers(1, 8))
@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic", "none"])
def test_last_bit_noise_in_out_of_fold_scores_moves_no_threshold_map_or_figure(
    out_of_fold, calibration, seed, ulps
):
    oof, y, valid_rows = out_of_fold
    assert summary_of(jittered(oof, seed, ulps), y, valid_rows, calibration) == summary_of(
        oof, y, valid_rows, calibration
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ulps=st.integers(1, 8))
@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_last_bit_noise_in_the_calibration_fit_inputs_moves_no_parameter(
    out_of_fold, method, seed, ulps
):
    oof, y, _ = out_of_fold
    inputs = round_sig(oof)  # what summarize_oof hands the fit
    reference = CalibrationMap.fit(inputs, y, method).knots
    np.testing.assert_array_equal(
        CalibrationMap.fit(jittered(inputs, seed, ulps), y, method).knots, reference
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ulps=st.integers(1, 8))
def test_last_bit_noise_in_test_scores_moves_no_reported_figure(out_of_fold, seed, ulps):
    """evaluate's metrics and curve tables, as the files DVC commits hold them."""
    oof, y, _ = out_of_fold

    def committed(proba):
        proba = round_sig(proba)
        tables = rounded_figures(curve_tables(y, proba, 0.07))
        return json.dumps(rounded_figures(classification_metrics(y, proba, 0.07))) + "".join(
            table.to_csv(index=False) for table in tables.values()
        )

    assert committed(jittered(oof, seed, ulps)) == committed(oof)


def test_rounding_keeps_six_significant_digits_and_leaves_other_values_alone():
    assert round_sig(0.07017032244666352) == 0.0701703
    assert round_sig(-1234567.891) == -1234570.0
    assert round_sig(3.14159e-12) == 3.14159e-12
    np.testing.assert_array_equal(
        round_sig(np.array([[0.123456789, np.nan], [np.inf, 0.0]])),
        np.array([[0.123457, np.nan], [np.inf, 0.0]]),
    )
    table = pd.DataFrame({"self": [0.1234567], "count": [3], "name": ["a"]})
    figures = {"auc": 0.81234567, "rows": 4000, "ok": True, "table": table, "list": [0.55555555]}
    rounded = rounded_figures(figures)
    assert rounded["auc"] == 0.812346 and rounded["rows"] == 4000 and rounded["ok"] is True
    assert rounded["list"] == [0.555556]
    assert rounded["table"].to_dict("list") == {"self": [0.123457], "count": [3], "name": ["a"]}


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(), min_size=1, max_size=40), st.integers(1, 7))
def test_rounding_a_long_array_in_chunks_rounds_each_value_as_alone(values, rows):
    """round_sig works through an array a chunk at a time (to bound its memory): wherever
    the chunk edges fall, each value comes out as the scalar rounding gives it."""
    array = np.resize(np.array(values), (rows, 2 * ROUNDING_CHUNK // rows + 1))
    expected = np.vectorize(round_sig)(array)
    np.testing.assert_array_equal(round_sig(array), expected)


@pytest.fixture(scope="module")
def task_out_of_fold(every_task):
    """Per task (multi-class, regression): raw out-of-fold predictions of a real model,
    with their targets and folds."""
    found = {}
    for name in ("multiclass", "regression"):
        task, schema, X, y, folds = every_task[name]
        pipeline = build_pipeline("xgboost", PARAMS["xgboost"], schema, n_jobs=1, task=name)
        result = cross_validate(
            "xgboost", {}, pipeline, X, y, folds, 2.0, task=task, settings=TrainConfig()
        )
        found[name] = task, result.oof, y.to_numpy(), [valid for _, valid in folds]
    return found


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ulps=st.integers(1, 8))
@pytest.mark.parametrize("task_name", ["multiclass", "regression"])
def test_last_bit_noise_moves_no_temperature_interval_or_figure(
    task_out_of_fold, task_name, seed, ulps
):
    """What a multi-class or regression task learns from out-of-fold predictions (the
    temperature, the conformal half-width) and every fold's figures, as another BLAS
    kernel or libm would leave the predictions."""
    task, oof, y, valid_rows = task_out_of_fold[task_name]

    def summary(predictions: np.ndarray) -> str:
        result = summarize_task_oof(
            task, "m", {}, predictions, y, valid_rows, TrainConfig(), 0.0, []
        )
        return json.dumps([result.learnt, result.fold_metrics, result.summary()])

    assert summary(jittered(oof, seed, ulps)) == summary(oof)
