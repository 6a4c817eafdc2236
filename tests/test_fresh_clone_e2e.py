"""A newcomer's `make run` in a fresh clone leaves `git status` clean: everything
committed is what the code makes from the data and params, byte for byte, and what is
one machine's (run ids, registry versions, bento tags, timings) lives in MLflow, the
BentoML store and git-ignored files."""

import pytest
from conftest import make_repo_copy

pytestmark = pytest.mark.e2e


def test_the_default_run_leaves_the_committed_files_as_they_were(tmp_path):
    clone = make_repo_copy(tmp_path / "clone", as_committed=True)
    run = clone.run("dvc", "repro", timeout=900)
    # A fresh clone has none of the git-ignored stamps, so every stage with an effect
    # outside the repository (MLflow, the registry, the BentoML store) ran here.
    for stage in ("train", "evaluate", "register", "package"):
        assert f"Running stage '{stage}'" in run.stdout, stage
    assert clone.read_json("models/bento.json")["built"] is True
    changed = clone.run("git", "status", "--porcelain").stdout
    assert changed == "", f"`dvc repro` changed committed files:\n{changed}"
