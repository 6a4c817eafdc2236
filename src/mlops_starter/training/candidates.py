"""Candidate models, each ONE pipeline: preprocessing, optional resampling, estimator.

Because the pipeline is the unit that is fitted, cross-validation refits the
imputers, encoders, scaler and resampler inside every training fold: nothing
learns from the rows it is scored on.
"""

from __future__ import annotations

from typing import Any

from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ResamplingPipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_starter.candidates import CANDIDATES
from mlops_starter.data.schema import FeatureSchema


def _preprocessor(schema: FeatureSchema, scale: bool, max_categories: int) -> ColumnTransformer:
    numeric_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", add_indicator=True))
    ]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    # Missing is a category of its own; rare, unseen and (past max_categories) the least
    # frequent values share one column, so a 500-value column cannot explode the width.
    categorical = OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        min_frequency=10,
        max_categories=max_categories,
        sparse_output=False,
    )
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), schema.numeric),
            ("categorical", categorical, schema.categorical),
        ],
        verbose_feature_names_out=False,
    )


def build_pipeline(
    name: str,
    params: dict[str, Any],
    schema: FeatureSchema,
    resampling: str = "none",
    seed: int = 0,
    n_jobs: int = -1,
    max_categories: int = 30,
    task: str = "binary",
) -> Pipeline:
    """An unfitted pipeline for the registered candidate `name` (src/mlops_starter/
    candidates.py) with hyperparameters `params`, learning `task` (a name in tasks.TASKS)."""
    candidate = CANDIDATES[name]
    params = {k: v for k, v in params.items() if k != "enabled"}
    steps: list[tuple[str, Any]] = [
        (
            "preprocess",
            _preprocessor(schema, scale=candidate.scaled_inputs, max_categories=max_categories),
        )
    ]
    if resampling == "smote":
        steps.append(("resample", SMOTE(random_state=seed)))
    elif resampling == "undersample":
        steps.append(("resample", RandomUnderSampler(random_state=seed)))
    steps.append(("model", candidate.estimator(task, params, seed, n_jobs)))
    # imbalanced-learn's Pipeline applies the sampler during fit only, never at predict.
    return ResamplingPipeline(steps) if resampling != "none" else Pipeline(steps)


def portable(fitted: Any, name: str) -> Any:
    """`fitted` (a pipeline from `build_pipeline` for candidate `name`) as any machine
    would have fitted it: the candidate's `portable` clears what this one left in its
    estimator (a thread count, unrounded coefficients). Returns `fitted`, changed in place.
    """
    CANDIDATES[name].portable(fitted[-1])
    return fitted
