"""ONNX, honestly: why a model file is skops, served by the compiled scorer, and not ONNX
(docs/interview-questions.md, question 11). skl2onnx converts the project's pipeline
but not what it does; each test below is one blocker, with the error it gives, and
fails the day skl2onnx lifts it. The last shows that with the three gone the
conversion is exact to 1e-6: the blockers are the reason, not ONNX."""

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from conftest import candidate_defaults
from onnxruntime.capi.onnxruntime_pybind11_state import Fail
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.training.candidates import build_pipeline

FOREST = {"n_estimators": 30, "max_depth": 8, "min_samples_leaf": 5, "class_weight": None}


@pytest.fixture(scope="module")
def demo(demo_frame):
    frame = demo_frame.head(4000)
    schema = FeatureSchema.infer(frame, ["churned", "customer_id", "signup_date"])
    return schema, frame[schema.columns], encode_target(frame["churned"], "yes")


def converted(pipeline, schema: FeatureSchema) -> onnxruntime.InferenceSession:
    inputs = [(c, FloatTensorType([None, 1])) for c in schema.numeric]
    inputs += [(c, StringTensorType([None, 1])) for c in schema.categorical]
    model = convert_sklearn(pipeline, initial_types=inputs, options={"zipmap": False})
    return onnxruntime.InferenceSession(model.SerializeToString())


def onnx_proba(session, schema: FeatureSchema, rows: pd.DataFrame, missing: str) -> np.ndarray:
    """ONNX's string tensors hold no null: a missing category goes in as `missing`."""
    feeds = {c: rows[[c]].to_numpy(np.float32) for c in schema.numeric}
    feeds |= {c: rows[[c]].astype(object).fillna(missing).to_numpy(str) for c in schema.categorical}
    return session.run(None, feeds)[1][:, 1]


def forest(schema: FeatureSchema, X: pd.DataFrame, y: pd.Series, **blockers) -> Pipeline:
    """A random forest behind the project's preprocessing without the three blockers (no
    missing-value indicators, no pooling of rare categories) unless `blockers` asks for
    the project's `imputer` or `encoder` back."""
    project = build_pipeline("random_forest", FOREST, schema)[0]
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                project.transformers[0][1] if "imputer" in blockers else SimpleImputer(),
                schema.numeric,
            ),
            (
                "categorical",
                project.transformers[1][1]
                if "encoder" in blockers
                else OneHotEncoder(handle_unknown="ignore"),
                schema.categorical,
            ),
        ]
    )
    model = RandomForestClassifier(random_state=0, max_features="sqrt", **FOREST)
    return Pipeline([("preprocess", preprocess), ("model", model)]).fit(X, y)


def test_the_missing_value_indicators_are_lost_in_conversion(demo):
    """SimpleImputer(add_indicator=True): the converter emits the imputed columns only,
    so a linear model is refused and a forest asks for a column that is not there."""
    schema, X, y = demo
    linear = build_pipeline(
        "logistic_regression", candidate_defaults()["logistic_regression"], schema
    )
    with pytest.raises(RuntimeError, match=r"Mismatch between expected shape \[None, 5\]"):
        converted(linear.fit(X, y), schema)
    session = converted(forest(schema, X, y, imputer=True), schema)
    with pytest.raises(Fail, match=r"requests feature \d+ but input tensor has \d+ features"):
        onnx_proba(session, schema, X.head(50), "(missing)")


def test_an_infrequent_or_unseen_category_stops_the_onnx_encoder(hard_table):
    """OneHotEncoder(handle_unknown="infrequent_if_exist"), which pools rare values."""
    schema, X, y, scoring = hard_table
    pooled = forest(schema, X, y, encoder=True)
    with pytest.raises(Fail, match="Unknown Category"):
        onnx_proba(converted(pooled, schema), schema, scoring, "(missing)")


def test_a_missing_category_cannot_be_sent_as_sklearn_encodes_it(demo):
    """sklearn gives a missing category a column of its own; ONNX gets some text instead."""
    schema, X, y = demo
    model = forest(schema, X, y)
    gaps = X[X[schema.categorical].isna().any(axis=1)].head(200)
    assert len(gaps) > 20
    scored = onnx_proba(converted(model, schema), schema, gaps, "")
    assert np.abs(scored - model.predict_proba(gaps)[:, 1]).max() > 1e-3


def test_without_the_three_the_conversion_is_exact_to_1e_6(demo):
    schema, X, y = demo
    text = X.astype({c: object for c in schema.categorical})
    text[schema.categorical] = text[schema.categorical].fillna("(missing)")
    model = forest(schema, text, y)
    scored = onnx_proba(converted(model, schema), schema, text, "(missing)")
    np.testing.assert_allclose(scored, model.predict_proba(text)[:, 1], atol=1e-6)
