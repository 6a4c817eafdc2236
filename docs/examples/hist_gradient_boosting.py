"""A candidate of a team's own: scikit-learn's HistGradientBoostingClassifier, boosting
on binned features, fast on large tables. List this module in params.yaml `extensions`
and switch it on there:

    train:
      candidates:
        hist_gradient_boosting:
          enabled: true
          max_iter: 200
"""

from typing import Any

from pydantic import Field

from mlops_starter.candidates import Candidate, CandidateSettings, register_candidate


class HistGradientBoostingSettings(CandidateSettings):
    """Histogram-based boosting (scikit-learn)."""

    max_iter: int = Field(200, ge=1, description="boosting rounds")
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_leaf_nodes: int = Field(31, ge=2, description="leaves per tree at most")
    l2_regularization: float = Field(0.0, ge=0)


def build(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # No early stopping: it would hold out rows of its own, by a seed of its own.
    return HistGradientBoostingClassifier(random_state=seed, early_stopping=False, **params)


register_candidate(
    "hist_gradient_boosting",
    Candidate(
        HistGradientBoostingSettings,
        build,
        # What its model file holds beyond skops's safe set (skops.io.get_untrusted_types).
        trusted_types=("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",),
    ),
)
