"""The candidate models: one registry, CANDIDATES, and the six the template ships (three
on for each task by default; Balanced Random Forest and AdaBoost off).

An entry is everything the project needs to know about one model: its settings under
`train.candidates.<name>` in params.yaml (a pydantic model, so a typo is named), how to
build its estimator for classes (binary and multi-class) and for a number (regression),
how to make the fitted one the same on every machine, the types
its model file holds (which loading it must trust) and the libraries loading it needs.
Config, training and model storage look here; serving does not (it compiles and
explains by the fitted estimator's class). A team's own candidate is one module that
calls `register_candidate`, named in params.yaml `extensions` (docs/how-to/extending.md).

Estimator libraries are imported inside `build` and `portable`, so reading params.yaml
does not import scikit-learn or XGBoost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class CandidateSettings(BaseModel):
    """A candidate's settings: `enabled`, and the hyperparameters its `build` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="false: not trained")

    def hyperparameters(self) -> dict[str, Any]:
        return self.model_dump(exclude={"enabled"})


def _unchanged(estimator: Any) -> None:
    """Nothing of the machine stays in this estimator once fitted."""


Builder = Callable[[dict[str, Any], int, int], Any]


@dataclass(frozen=True)
class Candidate:
    settings: type[CandidateSettings]
    # (hyperparameters, seed, n_jobs) -> an unfitted scikit-learn classifier; None: it
    # learns no classes
    build: Builder | None
    # clears, in place, what the training machine left in the fitted estimator
    portable: Callable[[Any], None] = _unchanged
    # the types its model file holds beyond skops's safe set and the shared pipeline's
    trusted_types: tuple[str, ...] = ()
    # the pip distributions that loading it needs beyond scikit-learn
    libraries: tuple[str, ...] = ()
    # standardise numeric inputs before it (a linear model); trees need no scaling
    scaled_inputs: bool = False
    # the same for a regressor; None: it learns no numbers (it has no regression task)
    regressor: Builder | None = None
    # settings that mean something for two classes only, and for classes only: left out
    # of a multi-class or a regression model, and of what its model.json records
    binary_only: tuple[str, ...] = ()
    classes_only: tuple[str, ...] = ()

    def learns(self, task: str) -> bool:
        """Whether this candidate is trained for a task of that name."""
        return (self.regressor if task == "regression" else self.build) is not None

    def settings_for(self, task: str, params: dict[str, Any]) -> dict[str, Any]:
        """`params` without the settings that mean nothing for `task` (a name in TASKS)."""
        unused = {"binary": (), "multiclass": self.binary_only}.get(
            task, (*self.binary_only, *self.classes_only)
        )
        return {k: v for k, v in params.items() if k not in unused}

    def estimator(self, task: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
        """An unfitted estimator for `task` (a name in tasks.TASKS) with these settings."""
        build = self.regressor if task == "regression" else self.build
        if build is None:
            raise ValueError(f"this candidate learns no {task} task")
        return build(self.settings_for(task, params), seed, n_jobs)


CANDIDATES: dict[str, Candidate] = {}


def register_candidate(name: str, candidate: Candidate) -> None:
    """Make `name` a candidate: `train.candidates.<name>` in params.yaml sets it."""
    CANDIDATES[name] = candidate


def validate_candidates(raw: Any) -> dict[str, CandidateSettings]:
    """`train.candidates` as each registered candidate's settings (defaults for those
    params.yaml leaves out); an unknown name or a bad value is named by pydantic."""
    fields: dict[str, Any] = {
        name: (entry.settings, entry.settings()) for name, entry in CANDIDATES.items()
    }
    every = create_model("Candidates", __config__=ConfigDict(extra="forbid", frozen=True), **fields)
    validated = every.model_validate(raw if raw is not None else {})
    return {name: getattr(validated, name) for name in CANDIDATES}


# --- the three the template ships -------------------------------------------------------


class LogisticRegressionSettings(CandidateSettings):
    """The baseline for classes, regularised (L2 by default, L1 or elastic net by
    l1_ratio); multinomial for three or more classes."""

    enabled: bool = Field(True, description="false: not trained")
    C: float = Field(1.0, gt=0)
    l1_ratio: float = Field(0.0, ge=0.0, le=1.0)
    class_weight: Literal["balanced"] | None = "balanced"
    max_iter: int = Field(2000, ge=10)


def _logistic_regression(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    # l1_ratio mixes L1 (sparsity) and L2 (shrinkage); C is the inverse strength. Only
    # saga fits a mix, and it crawls on wide correlated tables: pure L2 takes lbfgs.
    solver = "lbfgs" if params["l1_ratio"] == 0 else "saga"
    return LogisticRegression(solver=solver, random_state=seed, **params)


def _round_coefficients(estimator: Any) -> None:
    """lbfgs leaves the BLAS kernel's last bits in the coefficients: rounded away
    (rounding.py)."""
    from mlops_starter.rounding import round_sig

    estimator.coef_ = round_sig(estimator.coef_)
    estimator.intercept_ = round_sig(estimator.intercept_)


class RandomForestSettings(CandidateSettings):
    """Bagging: deep trees on bootstrap samples, their votes averaged."""

    enabled: bool = Field(True, description="false: not trained")
    n_estimators: int = Field(300, ge=1)
    max_depth: int | None = Field(12, ge=1)
    min_samples_leaf: int = Field(5, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = "balanced_subsample"


def _random_forest(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)


def _random_forest_regressor(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(random_state=seed, n_jobs=n_jobs, **params)


def _single_threaded(estimator: Any) -> None:
    """A forest with several jobs sums its trees' votes in the order the threads finish."""
    estimator.set_params(n_jobs=None)


class XGBoostSettings(CandidateSettings):
    """Boosting: shallow trees added one by one, each fitting what the others miss."""

    enabled: bool = Field(True, description="false: not trained")
    n_estimators: int = Field(400, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    max_depth: int = Field(4, ge=1)
    min_child_weight: float = Field(1.0, ge=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_alpha: float = Field(0.0, ge=0, description="L1 penalty on leaf weights")
    reg_lambda: float = Field(1.0, ge=0, description="L2 penalty on leaf weights")
    scale_pos_weight: float = Field(1.0, gt=0)


def _xgboost(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(
        tree_method="hist", eval_metric="aucpr", random_state=seed, n_jobs=n_jobs, **params
    )


def _xgboost_regressor(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(tree_method="hist", random_state=seed, n_jobs=n_jobs, **params)


def _xgboost_portable(estimator: Any) -> None:
    """XGBoost stores the thread count that trained it in the model file."""
    estimator.set_params(n_jobs=None)
    estimator.get_booster().set_param({"nthread": 0})


class BalancedRandomForestSettings(CandidateSettings):
    """Bagging for a rare class: each tree grows on a bootstrap that undersamples every
    class to the rarest one's size (imbalanced-learn), instead of weighting rows."""

    n_estimators: int = Field(300, ge=1)
    max_depth: int | None = Field(12, ge=1)
    min_samples_leaf: int = Field(5, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"


def _balanced_random_forest(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from imblearn.ensemble import BalancedRandomForestClassifier

    # imbalanced-learn's own defaults since 0.13, named so that no later change moves them:
    # every class undersampled, drawn with replacement, and no second bootstrap on top.
    return BalancedRandomForestClassifier(
        sampling_strategy="all",
        replacement=True,
        bootstrap=False,
        random_state=seed,
        n_jobs=n_jobs,
        **params,
    )


class AdaBoostSettings(CandidateSettings):
    """Boosting by reweighting: each shallow tree is fitted to rows weighted up where the
    trees before it were wrong (SAMME), where gradient boosting (XGBoost) fits residuals.

    No class weights: SAMME stops at the first tree whose error, counted without them,
    reaches one half, and a tree weighted towards a 5% class does at once (one to three
    trees on the real tables, PR-AUC 0.25 against 0.47). train.resampling and the tuned
    threshold handle the rare class instead."""

    n_estimators: int = Field(200, ge=1)
    learning_rate: float = Field(1.0, gt=0)
    max_depth: int = Field(2, ge=1, description="depth of each tree: 1 is a stump")


def _adaboost(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=params["max_depth"], random_state=seed)
    return AdaBoostClassifier(
        tree,
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        random_state=seed,
    )


def _adaboost_regressor(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import AdaBoostRegressor
    from sklearn.tree import DecisionTreeRegressor

    tree = DecisionTreeRegressor(max_depth=params["max_depth"], random_state=seed)
    return AdaBoostRegressor(
        tree,
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        random_state=seed,
    )


class ElasticNetSettings(CandidateSettings):
    """The baseline for a number: least squares, regularised (l1_ratio 0 is ridge, 1 the
    lasso, between them the elastic net); alpha is the penalty's strength."""

    enabled: bool = Field(True, description="false: not trained")
    alpha: float = Field(1.0, gt=0, description="penalty strength: larger is stronger")
    l1_ratio: float = Field(0.0, ge=0.0, le=1.0)
    max_iter: int = Field(2000, ge=10)


def _elastic_net(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import ElasticNet, Ridge

    # Ridge's exact solve for pure L2; coordinate descent only where L1 needs it.
    if params["l1_ratio"] == 0:
        return Ridge(alpha=params["alpha"])
    return ElasticNet(random_state=seed, selection="cyclic", **params)


register_candidate(
    "logistic_regression",
    Candidate(
        LogisticRegressionSettings,
        _logistic_regression,
        _round_coefficients,
        scaled_inputs=True,
    ),
)
register_candidate(
    "random_forest",
    Candidate(
        RandomForestSettings,
        _random_forest,
        _single_threaded,
        trusted_types=("sklearn.tree._tree.Tree",),
        regressor=_random_forest_regressor,
        classes_only=("class_weight",),
    ),
)
register_candidate(
    "xgboost",
    Candidate(
        XGBoostSettings,
        _xgboost,
        _xgboost_portable,
        trusted_types=(
            "xgboost.core.Booster",
            "xgboost.sklearn.XGBClassifier",
            "xgboost.sklearn.XGBRegressor",
        ),
        libraries=("xgboost-cpu",),
        regressor=_xgboost_regressor,
        binary_only=("scale_pos_weight",),
    ),
)
register_candidate(
    "balanced_random_forest",
    Candidate(
        BalancedRandomForestSettings,
        _balanced_random_forest,
        _single_threaded,
        trusted_types=(
            "sklearn.tree._tree.Tree",
            "imblearn.ensemble._forest.BalancedRandomForestClassifier",
        ),
    ),
)
register_candidate(
    "adaboost",
    Candidate(
        AdaBoostSettings,
        _adaboost,
        trusted_types=("sklearn.tree._tree.Tree",),
        regressor=_adaboost_regressor,
    ),
)
register_candidate(
    "elastic_net",
    Candidate(
        ElasticNetSettings, None, _round_coefficients, scaled_inputs=True, regressor=_elastic_net
    ),
)
