"""Local explanations are exact: for every candidate, base value + contributions equals
the model's raw output for every row, whatever the encoders did to the columns."""

import numpy as np
import pytest
from conftest import candidate_defaults
from scipy.special import expit, softmax
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from mlops_starter.serving.explain import ExplainError, encoded_sources, explain, refusal
from mlops_starter.tasks.multiclass import CalibratedMulticlass
from mlops_starter.tasks.regression import IntervalRegressor
from mlops_starter.training.candidates import build_pipeline

PARAMS = candidate_defaults()
PARAMS["random_forest"] |= {"n_estimators": 25}
PARAMS["xgboost"] |= {"n_estimators": 60}
PARAMS["balanced_random_forest"] |= {"n_estimators": 25}


@pytest.mark.parametrize(
    "name", ["logistic_regression", "random_forest", "xgboost", "balanced_random_forest"]
)
def test_contributions_add_up_to_the_margin_for_every_candidate(hard_table, name):
    schema, X, y, scoring = hard_table
    pipeline = build_pipeline(name, PARAMS[name], schema, seed=0).fit(X, y)
    found = explain(pipeline, scoring)
    assert list(found.contributions.columns) == schema.columns
    np.testing.assert_allclose(
        found.base_value + found.contributions.sum(axis=1), found.margin, atol=1e-4
    )
    np.testing.assert_allclose(found.served, pipeline.predict_proba(scoring)[:, 1])
    if found.scale == "log-odds":
        np.testing.assert_allclose(expit(found.margin), found.served, atol=1e-5)
    else:
        np.testing.assert_allclose(found.margin, found.served, atol=1e-9)


def test_every_encoded_column_is_traced_to_its_feature(hard_table):
    schema, X, y, _ = hard_table
    preprocessor = build_pipeline("xgboost", PARAMS["xgboost"], schema).fit(X, y).steps[0][1]
    sources = encoded_sources(preprocessor, schema.columns)
    names = preprocessor.get_feature_names_out()
    assert len(sources) == len(names)
    for source, name in zip(sources, names, strict=True):
        assert schema.columns[source] in name  # e.g. missingindicator_age -> age


def test_a_model_without_a_method_is_refused_by_name(hard_table):
    schema, X, y, scoring = hard_table
    pipeline = build_pipeline("xgboost", PARAMS["xgboost"], schema).fit(X, y)
    pipeline.steps[-1] = ("model", type("GradientBoostingClassifier", (), {})())
    with pytest.raises(ExplainError, match="GradientBoostingClassifier"):
        explain(pipeline, scoring)


def test_a_booster_that_kept_its_matrices_feature_names_is_explained(hard_table):
    """Found by the generated tables: XGBoost trained on Dask keeps its matrices' names
    (f0, f1, ...), and an unnamed matrix was refused by the booster."""
    schema, X, y, scoring = hard_table
    pipeline = build_pipeline("xgboost", PARAMS["xgboost"], schema, seed=0).fit(X, y)
    booster = pipeline.steps[-1][1].get_booster()
    booster.feature_names = [f"f{i}" for i in range(booster.num_features())]
    found = explain(pipeline, scoring)
    np.testing.assert_allclose(
        found.base_value + found.contributions.sum(axis=1), found.margin, atol=1e-4
    )


def test_a_model_with_no_attribution_method_is_refused_naming_its_estimator():
    unknown = Pipeline([("preprocess", "passthrough"), ("model", HistGradientBoostingClassifier())])
    assert "no attribution method for a HistGradientBoostingClassifier" in refusal(unknown)
    known = Pipeline([("preprocess", "passthrough"), ("model", XGBClassifier())])
    assert refusal(known) is None


def test_the_adaboost_candidate_is_refused_by_name(hard_table):
    """Its probability is a softmax of weighted tree votes: no exact attribution here."""
    schema, X, y, _ = hard_table
    pipeline = build_pipeline("adaboost", PARAMS["adaboost"] | {"n_estimators": 10}, schema)
    assert "no attribution method for a AdaBoostClassifier" in refusal(pipeline.fit(X, y))


@pytest.mark.parametrize("name", ["elastic_net", "random_forest", "xgboost"])
def test_a_regression_s_contributions_add_up_to_the_value_it_serves(hard_table, name):
    schema, X, y, scoring = hard_table
    value = X["monthly_charges"].fillna(0) * 2 + y * 10  # a number to learn
    pipeline = build_pipeline(name, PARAMS[name], schema, seed=0, task="regression")
    model = IntervalRegressor(pipeline.fit(X, value), half_width=1.0, coverage=0.9)
    found = explain(model, scoring)
    assert found.scale == "value"
    np.testing.assert_allclose(
        found.base_value + found.contributions.sum(axis=1), found.margin, rtol=1e-4, atol=1e-3
    )
    np.testing.assert_allclose(found.served, model.predict(scoring), rtol=1e-5)
    np.testing.assert_allclose(found.margin, found.served, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest", "xgboost"])
def test_each_class_s_contributions_add_up_to_its_margin(hard_table, name):
    """A multi-class model is explained per class: the contributions to each class's
    margin, beside the calibrated probability /predict serves for it."""
    schema, X, y, scoring = hard_table
    codes = (y + (X["tenure_months"].fillna(0) > 24).astype(int) * 2).clip(0, 2).to_numpy()
    pipeline = build_pipeline(name, PARAMS[name], schema, seed=0, task="multiclass")
    model = CalibratedMulticlass(pipeline.fit(X, codes), 1.3, None, ["a", "b", "c"])
    margins = []
    for code in range(3):
        found = explain(model, scoring, code)
        np.testing.assert_allclose(
            found.base_value + found.contributions.sum(axis=1), found.margin, atol=1e-4
        )
        np.testing.assert_allclose(found.served, model.predict_proba(scoring)[:, code])
        margins.append(found.margin)
    if name != "random_forest":  # log-odds: the softmax of the margins, tempered, is served
        expected = softmax(np.column_stack(margins) / 1.3, axis=1)
        np.testing.assert_allclose(expected, model.predict_proba(scoring), atol=1e-5)
