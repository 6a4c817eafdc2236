"""A changed split never makes the champion look better than it is: on a real `dvc repro`,
each setting that moves the champion's training rows into the new test set lets an
equally good challenger pass and fails a truly worse one (trained on shuffled labels),
and the champion's score on a random part of the rows it never saw matches its own test
score."""

import copy as deepcopy

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import deep_update

pytestmark = pytest.mark.e2e

BASE = {
    "data": {"demo": {"n_rows": 8000, "positive_rate": 0.12}},
    # One candidate, two folds: the gate's comparison is under test here, not the search.
    "train": {
        "cv_folds": 2,
        "candidates": {
            "logistic_regression": {"enabled": False},
            "random_forest": {"enabled": False},
        },
    },
    "evaluate": {"importance_repeats": 1},
    # ROC-AUC varies less than PR-AUC on a few hundred unseen rows: a model at chance is
    # told from the champion on every split below.
    "gate": {"bootstrap_rounds": 300, "compare_metric": "roc_auc"},
}
# Each moves rows the champion trained on into the test set. (scale.mode does not:
# every mode places rows alike, tests/training/test_mode_parity.py.)
CHANGED_SPLITS = {
    "split.seed": {"split": {"seed": 43}},
    "split.test_size": {"split": {"test_size": 0.3}},
    "split.strategy": {"split": {"strategy": "time"}},
}
CHECK = "not_worse_than_champion_roc_auc"


@pytest.fixture(scope="module")
def champion(repo_copy):
    """A copy whose champion, version 1, was trained on the base split."""
    repo = repo_copy(BASE)
    repo.run("dvc", "repro", "register", timeout=900)
    repo.base_params = repo.params()
    return repo


def with_params(repo, changes: dict) -> None:
    """The champion's params with `changes` (not those of the previous test)."""
    params = deep_update(deepcopy.deepcopy(repo.base_params), changes)
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def gate_comparison(repo) -> tuple[dict, dict]:
    report = repo.read_json("reports/gate.json")
    assert report["champion_before"] == "1"
    (check,) = [c for c in report["checks"] if c["name"] == CHECK]
    return check, report["champion_comparison"]


def shuffle_training_labels(repo) -> None:
    path = repo.root / "data" / "split" / "train.parquet"
    train = pd.read_parquet(path)
    train["churned"] = np.random.default_rng(0).permutation(train["churned"].to_numpy())
    train.to_parquet(path, index=False)


@pytest.mark.parametrize("setting", sorted(CHANGED_SPLITS))
def test_a_changed_split_passes_an_equal_challenger_and_fails_a_worse_one(champion, setting):
    with_params(champion, CHANGED_SPLITS[setting])
    champion.run("dvc", "repro", "register", timeout=900)
    check, comparison = gate_comparison(champion)
    assert check["passed"] and check["assessed"], check["detail"]
    assert comparison["excluded_rows"] > 0, comparison
    assert f"the {comparison['excluded_rows']} rows it trained on were left out" in check["detail"]
    if setting != "split.strategy":
        # A new seed or test size leaves a random part of the champion's own test rows
        # unseen, so its score there matches its test score, within the interval. A time
        # split leaves the latest of them: another population, so no match is promised
        # (on this table its ~300 latest unseen rows happen to score well above the rest).
        low, high = comparison["champion_unseen_interval"]
        assert low <= comparison["champion_test_score"] <= high, comparison

    # The same split, a model that learnt nothing: it must not pass as "no difference".
    shuffle_training_labels(champion)
    for stage in ("train", "evaluate", "register"):
        champion.run("dvc", "repro", "--single-item", stage, timeout=900)
    check, comparison = gate_comparison(champion)
    assert check["assessed"] and not check["passed"], check["detail"]
    assert "worse than the champion" in check["detail"]
    assert comparison["challenger_unseen_score"] < comparison["champion_unseen_score"] - 0.1
