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
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier

from mlops_starter.data.schema import FeatureSchema
from mlops_starter.evaluation.rounding import round_sig


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


def _estimator(name: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    params = {k: v for k, v in params.items() if k != "enabled"}
    if name == "logistic_regression":
        # l1_ratio mixes L1 (sparsity) and L2 (shrinkage); C is the inverse strength. Only
        # saga fits a mix, and it crawls on wide correlated tables: pure L2 takes lbfgs.
        solver = "lbfgs" if params["l1_ratio"] == 0 else "saga"
        return LogisticRegression(solver=solver, random_state=seed, **params)
    if name == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
    if name == "xgboost":
        return XGBClassifier(
            tree_method="hist", eval_metric="aucpr", random_state=seed, n_jobs=n_jobs, **params
        )
    raise ValueError(f"unknown candidate {name!r}")


def build_pipeline(
    name: str,
    params: dict[str, Any],
    schema: FeatureSchema,
    resampling: str = "none",
    seed: int = 0,
    n_jobs: int = -1,
    max_categories: int = 30,
) -> Pipeline:
    """An unfitted pipeline for candidate `name` (logistic_regression, random_forest, xgboost)."""
    steps: list[tuple[str, Any]] = [
        (
            "preprocess",
            _preprocessor(
                schema, scale=name == "logistic_regression", max_categories=max_categories
            ),
        )
    ]
    if resampling == "smote":
        steps.append(("resample", SMOTE(random_state=seed)))
    elif resampling == "undersample":
        steps.append(("resample", RandomUnderSampler(random_state=seed)))
    steps.append(("model", _estimator(name, params, seed, n_jobs)))
    # imbalanced-learn's Pipeline applies the sampler during fit only, never at predict.
    return ResamplingPipeline(steps) if resampling != "none" else Pipeline(steps)


def portable(fitted: Any) -> Any:
    """`fitted` (a pipeline from `build_pipeline`) as any machine would have fitted it.

    The thread count that trained it is cleared: XGBoost stores it in the model file, and
    a random forest with several jobs sums its trees' votes in the order the threads
    finish. A linear model's coefficients are rounded (evaluation/rounding.py): lbfgs
    leaves the BLAS kernel's last bits in them. Returns `fitted`, changed in place.
    """
    estimator = fitted[-1]
    if isinstance(estimator, XGBClassifier):
        estimator.set_params(n_jobs=None)
        estimator.get_booster().set_param({"nthread": 0})
    elif isinstance(estimator, RandomForestClassifier):
        estimator.set_params(n_jobs=None)
    elif isinstance(estimator, LogisticRegression):
        estimator.coef_ = round_sig(estimator.coef_)
        estimator.intercept_ = round_sig(estimator.intercept_)
    return fitted
