"""The compiled scorer equals the pipeline it was compiled from (within 1e-6) for every
candidate, with and without calibration and resampling, on real-table hazards; and a
pipeline it cannot reproduce is served as it is, never scored wrongly."""

import logging

import numpy as np
import pytest
from conftest import candidate_defaults
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from mlops_starter.data.profile import feature_profile
from mlops_starter.evaluation.calibration import CalibratedClassifier, CalibrationMap
from mlops_starter.serving.scorer import (
    TOLERANCE,
    build_scorer,
    columns_to_frame,
    compile_model,
    difference,
    frame_to_columns,
    hard_cases,
)
from mlops_starter.training.candidates import build_pipeline

PARAMS = candidate_defaults()
PARAMS["random_forest"] |= {"n_estimators": 25}
PARAMS["xgboost"] |= {"n_estimators": 60}
PARAMS["balanced_random_forest"] |= {"n_estimators": 25}
PARAMS["adaboost"] |= {"n_estimators": 40}


@pytest.fixture(scope="module")
def profile(hard_table):
    schema, X, _, _ = hard_table
    return feature_profile(X, schema)


def fitted(hard_table, name, calibration=None, resampling="none", max_categories=30):
    schema, X, y, _ = hard_table
    pipeline = build_pipeline(
        name, PARAMS[name], schema, resampling, seed=0, max_categories=max_categories
    )
    pipeline.fit(X, y)
    if calibration is None:
        return pipeline
    raw = pipeline.predict_proba(X)[:, 1]
    return CalibratedClassifier(pipeline, CalibrationMap.fit(raw, y.to_numpy(), calibration))


CASES = [
    ("logistic_regression", None, "none"),
    ("logistic_regression", "sigmoid", "smote"),
    ("random_forest", "isotonic", "none"),
    ("xgboost", None, "none"),
    ("xgboost", "sigmoid", "undersample"),
    ("balanced_random_forest", "sigmoid", "none"),
    ("adaboost", None, "smote"),
]


@pytest.mark.parametrize(("name", "calibration", "resampling"), CASES)
def test_compiled_scores_equal_the_pipeline_on_test_rows_and_hard_cases(
    hard_table, profile, name, calibration, resampling
):
    _, X, _, scoring = hard_table
    model = fitted(hard_table, name, calibration, resampling)
    scorer = compile_model(model)
    assert scorer.kind == "compiled"
    cases = columns_to_frame(hard_cases(profile), profile)
    for rows in (X.tail(1000), scoring, cases):
        assert difference(scorer, model, rows) <= TOLERANCE
    one_row = frame_to_columns(scoring.iloc[[3]])
    assert scorer.predict(one_row).shape == (1,)


def test_hard_cases_cover_every_category_unseen_and_missing_values(profile):
    cases = hard_cases(profile)
    for name, spec in profile.items():
        values = cases[name]
        if spec["kind"] == "category":
            assert set(spec["categories"]) | {"never-seen", None} <= set(values.tolist())
        else:
            assert np.isnan(values).any() and np.nanmax(values) >= 3e38 <= -np.nanmin(values)
    rows = len(cases["plan"])
    nulls = np.column_stack(
        [
            np.isnan(v) if profile[n]["kind"] != "category" else v == None  # noqa: E711
            for n, v in cases.items()
        ]
    )
    assert nulls.sum(axis=1).max() == len(profile)  # one row with every feature missing
    assert rows > max(len(s.get("categories", ())) for s in profile.values())


def test_categories_capped_or_rare_in_training_land_where_sklearn_puts_them(hard_table, profile):
    model = fitted(hard_table, "xgboost", max_categories=5)
    encoder = model.steps[0][1].named_transformers_["categorical"]
    assert any(rare is not None for rare in encoder.infrequent_categories_)
    assert (
        difference(compile_model(model), model, columns_to_frame(hard_cases(profile), profile))
        <= TOLERANCE
    )


def test_a_step_it_cannot_compile_falls_back_to_the_pipeline_with_one_log_line(
    hard_table, profile, caplog
):
    _, _, _, scoring = hard_table
    model = fitted(hard_table, "logistic_regression")
    numeric = model.steps[0][1].named_transformers_["numeric"]
    numeric.steps[0] = ("impute", _as_fitted(SimpleImputer(strategy="most_frequent"), numeric))
    with caplog.at_level(logging.WARNING):
        scorer, check = build_scorer(model, profile, scoring)
    assert scorer.kind == "pipeline" and "most_frequent" in check["reason"]
    assert len([r for r in caplog.records if "scorer" in r.getMessage()]) == 1
    np.testing.assert_array_equal(
        scorer.predict(frame_to_columns(scoring)), model.predict_proba(scoring)[:, 1]
    )


class ShiftedScaler(StandardScaler):
    """Does more than its learned state says: a compiled copy would score it wrongly."""

    def transform(self, X, copy=None):
        return super().transform(X, copy=copy) + 1.0


def test_a_compiled_scorer_that_disagrees_is_caught_by_the_check(hard_table, profile):
    scoring = hard_table[3]
    model = fitted(hard_table, "logistic_regression")
    numeric = model.steps[0][1].named_transformers_["numeric"]
    scaler = numeric.steps[1][1]
    shifted = ShiftedScaler()
    shifted.__dict__.update(scaler.__dict__)
    numeric.steps[1] = ("scale", shifted)
    scorer, check = build_scorer(model, profile, scoring)
    assert scorer.kind == "pipeline" and "differs from the pipeline" in check["reason"]
    good, passed = build_scorer(fitted(hard_table, "logistic_regression"), profile, scoring)
    assert good.kind == "compiled" and passed["max_abs_difference"] <= TOLERANCE
    assert passed["rows"] == len(scoring) + len(hard_cases(profile)["plan"])


def _as_fitted(imputer, numeric):
    """A most-frequent imputer fitted like the pipeline's own (same columns)."""
    fitted_imputer = numeric.steps[0][1]
    imputer.__dict__.update(fitted_imputer.__dict__)
    imputer.strategy = "most_frequent"
    return imputer
