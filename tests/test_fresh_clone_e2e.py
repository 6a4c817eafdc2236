"""A newcomer's `make run` in a fresh clone leaves `git status` clean: everything
committed is what the code makes from the data and params, byte for byte, and what is
one machine's (run ids, registry versions, bento tags, timings) lives in MLflow, the
BentoML store and git-ignored files. What DVC tracks reaches a teammate through the
default DVC remote."""

import json

import pytest
from conftest import RepoCopy, make_repo_copy

from mlops_starter.storage import file_md5

pytestmark = pytest.mark.e2e


def test_the_default_run_leaves_the_committed_files_as_they_were_and_teammates_pull_it(tmp_path):
    clone = make_repo_copy(tmp_path / "clone", as_committed=True)
    run = clone.run("dvc", "repro", timeout=900)
    # A fresh clone has none of the git-ignored stamps, so every stage with an effect
    # outside the repository (MLflow, the registry, the BentoML store) ran here.
    for stage in ("train", "evaluate", "register", "package"):
        assert f"Running stage '{stage}'" in run.stdout, stage
    assert clone.read_json("models/bento.json")["built"] is True
    # `make clean-tree`'s check: silent and 0 when nothing moved, else each file and by how much.
    unchanged = clone.run("mlops", "clean-tree", check=False)
    assert unchanged.returncode == 0, f"`dvc repro` changed committed files:\n{unchanged.stderr}"

    # A teammate's clone gets the same data and model files from the DVC remote. The
    # committed default remote is ../dvc-storage, beside each clone: here, beside both.
    clone.run("dvc", "push")
    assert (tmp_path / "dvc-storage" / "files" / "md5").is_dir()
    clone.run("git", "clone", "-q", str(clone.root), str(tmp_path / "teammate"))
    teammate = RepoCopy(tmp_path / "teammate")
    teammate.run("dvc", "pull")
    status = json.loads(teammate.run("dvc", "status", "--json").stdout)
    assert status == {}  # DVC hashes a file source itself: nothing to do
    for relative in ("models/model.skops", "data/split/test.parquet", "models/registered.json"):
        assert file_md5(teammate.root / relative) == file_md5(clone.root / relative), relative
