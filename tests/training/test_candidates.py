import numpy as np
import pytest
import skops.io
from conftest import DEMO_TARGETS, candidate_defaults

from mlops_starter.candidates import CANDIDATES as REGISTRY
from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.storage import load_model, model_bytes, trusted_types, write_bytes
from mlops_starter.training.candidates import build_pipeline

CANDIDATES = candidate_defaults()
FAST = {
    "random_forest": {"n_estimators": 20},
    "xgboost": {"n_estimators": 30},
    "logistic_regression": {"max_iter": 300},
    "balanced_random_forest": {"n_estimators": 20},
    "adaboost": {"n_estimators": 30},
    "elastic_net": {},
}


LEARNERS = [
    (task, name)
    for task in DEMO_TARGETS
    for name in sorted(CANDIDATES)
    if REGISTRY[name].learns(task)
]
FINISHED = {
    "multiclass": {"temperature": 1.3, "cost_matrix": None},
    "regression": {"interval_half_width": 4.5, "interval_coverage": 0.9},
}


@pytest.fixture(scope="module")
def xy(demo_frame):
    schema = FeatureSchema.infer(demo_frame, ["churned", "customer_id", "signup_date"])
    return schema, demo_frame[schema.columns], encode_target(demo_frame["churned"], "yes")


def answers(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


@pytest.mark.parametrize(
    ("task", "name", "resampling"),
    [
        (task, name, resampling)
        for task, name in LEARNERS
        for resampling in ("none", "smote", "undersample")
        if task != "regression" or resampling == "none"
    ],
)
def test_every_candidate_fits_and_round_trips_through_skops(
    tmp_path, demo_tasks, task, name, resampling
):
    """For each task, finished as train finishes it (the multi-class temperature, the
    regression interval), so every type a model file holds is one loading trusts."""
    learner, schema, X, y = demo_tasks[task]
    model = build_pipeline(
        name, CANDIDATES[name] | FAST[name], schema, resampling, seed=0, n_jobs=1, task=task
    ).fit(X, y)
    if task in FINISHED:
        model = learner.finish(model, FINISHED[task])
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert set(untrusted) <= set(trusted_types()), "add the type to the candidate's trusted_types"
    write_bytes(tmp_path / "model.skops", model_bytes(model))
    reloaded = load_model(tmp_path / "model.skops")
    np.testing.assert_allclose(answers(reloaded, X.head(50)), answers(model, X.head(50)))


@pytest.mark.parametrize(("task", "name"), LEARNERS)
def test_refitting_gives_the_same_model_file_byte_for_byte(demo_tasks, task, name):
    """dvc.lock records the model file's hash: a retrain on the same inputs must not change it."""
    _, schema, X, y = demo_tasks[task]

    def fitted():
        return build_pipeline(name, CANDIDATES[name] | FAST[name], schema, seed=0, task=task).fit(
            X, y
        )

    first, second = fitted(), fitted()
    # skops alone names entries by object id, so two equal models give different files.
    assert skops.io.dumps(first) != skops.io.dumps(second)
    assert model_bytes(first) == model_bytes(second)


def test_pipeline_accepts_unseen_categories_and_missing_values(xy):
    schema, X, y = xy
    model = build_pipeline("xgboost", CANDIDATES["xgboost"] | FAST["xgboost"], schema).fit(X, y)
    odd = X.head(3).copy()
    odd.loc[odd.index[0], "plan"] = "never-seen"
    odd.loc[odd.index[1], ["tenure_months", "payment_method"]] = [np.nan, None]
    proba = model.predict_proba(odd)[:, 1]
    assert proba.shape == (3,) and np.all((proba >= 0) & (proba <= 1))


def test_resampling_happens_only_inside_fit(xy):
    """The sampler changes what the estimator is fitted on, never how many rows are predicted."""
    schema, X, y = xy
    model = build_pipeline(
        "logistic_regression", CANDIDATES["logistic_regression"], schema, "undersample"
    )
    model.fit(X, y)
    assert model.predict_proba(X).shape[0] == len(X)


def test_adaboost_takes_no_class_weights_because_they_stop_it_at_once(xy):
    """Why AdaBoostSettings has no class_weight: SAMME stops at the first tree whose
    error, counted without the class weights, reaches one half, and a tree weighted
    towards the demo's 5% class does. Unweighted, it boosts every round."""
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    schema, X, y = xy
    encoded = build_pipeline("adaboost", CANDIDATES["adaboost"], schema)[0].fit_transform(X)

    def rounds(class_weight):
        tree = DecisionTreeClassifier(max_depth=2, class_weight=class_weight, random_state=0)
        return len(AdaBoostClassifier(tree, n_estimators=30, random_state=0).fit(encoded, y))

    assert rounds("balanced") <= 3
    assert rounds(None) == 30


def test_a_task_s_model_records_only_the_settings_it_uses():
    """model.json's params are what the estimator was built with: no class weights for a
    number, no positive-class weight for three classes."""
    forest, boost = REGISTRY["random_forest"], REGISTRY["xgboost"]
    forest_params, boost_params = CANDIDATES["random_forest"], CANDIDATES["xgboost"]
    assert forest.settings_for("binary", forest_params) == forest_params
    assert "class_weight" in forest.settings_for("multiclass", forest_params)
    assert "class_weight" not in forest.settings_for("regression", forest_params)
    for task in ("multiclass", "regression"):
        assert "scale_pos_weight" not in boost.settings_for(task, boost_params)
    regressor = forest.estimator("regression", forest_params, 0, 1)
    assert type(regressor).__name__ == "RandomForestRegressor"
    assert regressor.get_params()["max_depth"] == forest_params["max_depth"]
