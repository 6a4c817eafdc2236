"""`make clean-tree` tells float noise from a real change: it names each changed committed
file and, for metrics and plots, the largest absolute difference and where it is."""

import json
import subprocess
import sys
from pathlib import Path

LOCK = """schema: '2.0'
stages:
  train:
    cmd: python pipelines/train.py
    deps:
    - path: data/split/train.parquet
      md5: aaaa
    outs:
    - path: models/model.skops
      md5: {model_md5}
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def clean_tree(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlops_starter.cli.main", "clean-tree"],
        cwd=repo,
        capture_output=True,
        text=True,
    )


def test_clean_tree_names_each_changed_file_and_its_largest_difference(tmp_path):
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    (repo / "plots").mkdir()
    metrics = {"roc_auc": 0.807762, "rows": 4000, "model": "xgboost", "cv": {"pr_auc": 0.28}}
    (repo / "metrics" / "test.json").write_text(json.dumps(metrics))
    (repo / "plots" / "roc.csv").write_text("fpr,tpr\n0.0,0.0\n0.5,0.75\n1.0,1.0\n")
    (repo / "dvc.lock").write_text(LOCK.format(model_md5="2b47d038"))
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "outputs")
    assert clean_tree(repo).returncode == 0 and clean_tree(repo).stderr == ""

    metrics |= {"roc_auc": 0.807763, "model": "random_forest", "cv": {"pr_auc": 0.2801}}
    (repo / "metrics" / "test.json").write_text(json.dumps(metrics))
    (repo / "plots" / "roc.csv").write_text("fpr,tpr\n0.0,0.0\n0.5,0.74\n1.0,1.0\n")
    (repo / "dvc.lock").write_text(LOCK.format(model_md5="712f2a16"))
    (repo / "plots" / "extra.csv").write_text("a\n1\n")

    result = clean_tree(repo)
    assert result.returncode == 1
    lines = {line.strip().split(":")[0]: line.strip() for line in result.stderr.splitlines()}
    assert lines["metrics/test.json"] == (
        "metrics/test.json: 3 value(s) changed; largest absolute difference 0.0001 at "
        "cv.pr_auc (0.28 -> 0.2801); 1 non-numeric value(s) changed"
    )
    assert "largest absolute difference 0.01 at row 3 tpr (0.75 -> 0.74)" in lines["plots/roc.csv"]
    assert (
        "    stage train: outs models/model.skops 2b47d038 -> 712f2a16"
        in result.stderr.splitlines()
    )
    assert lines["plots/extra.csv"] == "plots/extra.csv: new, not committed"
