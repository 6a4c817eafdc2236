"""The GitHub workflows are linted, and every step calls a Makefile target that exists."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, VENV_BIN

from mlops_starter.cli.main import main as mlops

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
MAKE_TARGETS = set(
    re.findall(r"^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
)


def test_actionlint_finds_nothing():
    done = subprocess.run(
        [str(VENV_BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_is_a_make_target(workflow):
    steps = [
        step
        for job in yaml.safe_load(workflow.read_text())["jobs"].values()
        for step in job["steps"]
    ]
    commands = [step["run"] for step in steps if "run" in step]
    assert commands, "a workflow with no run step?"
    for command in commands:
        assert command.startswith("make "), f"logic outside the Makefile: {command!r}"
        words = shlex.split(command)[1:]
        if ">>" in words:
            words = words[: words.index(">>")]
        targets = [w for w in words if "=" not in w]
        assert targets and set(targets) <= MAKE_TARGETS, f"{command!r}: unknown target"


def gate_report(tmp_path: Path, passed: bool) -> Path:
    checks = [
        {"name": "min_roc_auc", "value": 0.8, "bar": ">= 0.7", "passed": True, "detail": ""},
        {"name": "min_recall", "value": 0.2, "bar": ">= 0.4", "passed": passed, "detail": ""},
    ]
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"model": "m", "version": "7", "passed": passed, "checks": checks}))
    path.with_suffix(".md").write_text("### Validation gate\n")
    return path


def test_gate_command_hands_its_result_to_github(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    mlops(
        [
            "--params",
            str(REPO_ROOT / "params.yaml"),
            "gate",
            "--report",
            str(gate_report(tmp_path, True)),
        ]
    )
    assert (tmp_path / "output").read_text() == "version=7\npassed=true\n"
    assert "Validation gate" in (tmp_path / "summary").read_text()


def test_gate_command_exits_1_naming_each_failed_check(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        mlops(
            [
                "--params",
                str(REPO_ROOT / "params.yaml"),
                "gate",
                "--report",
                str(gate_report(tmp_path, False)),
            ]
        )
    assert exited.value.code == 1
    assert "gate check failed: min_recall: 0.2 (bar: >= 0.4)" in capsys.readouterr().err


def test_supported_pythons_agree_in_makefile_pyproject_and_ci():
    """One list of Pythons: the Makefile refuses others, pyproject admits exactly these,
    and CI tests each of them."""
    import tomllib

    from packaging.specifiers import SpecifierSet

    makefile = (REPO_ROOT / "Makefile").read_text()
    supported = re.search(r"^SUPPORTED_PYTHONS := (.+)$", makefile, re.MULTILINE).group(1).split()
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    admitted = [
        f"3.{minor}"
        for minor in range(8, 20)
        if f"3.{minor}.0" in SpecifierSet(requires["requires-python"])
    ]
    ci = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text())
    assert supported == admitted == ci["jobs"]["test"]["strategy"]["matrix"]["python"]


def test_make_refuses_an_unsupported_python_before_installing_anything(tmp_path):
    """A Python 3.10 (faked: this machine may have none) gets one line, and no venv."""
    fake = tmp_path / "python3.10"
    fake.write_text(
        "#!/bin/sh\n"
        'exec python3 -c \'import sys; sys.version_info = (3, 10, 0, "final", 0); '
        'exec(sys.argv[1])\' "$2"\n'
    )
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "env", f"PYTHON={fake}", f"VENV={venv}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "is Python 3.10; this project supports 3.11 3.12 3.13" in done.stderr
    assert not venv.exists()


def test_ci_audits_dependencies_history_and_dockerfiles_with_pinned_scanners():
    audit = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text())["jobs"]["audit"]
    steps = audit["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0  # every commit, for the history's secrets
    assert [s["run"] for s in steps if "run" in s] == ["make audit", "make audit-deps"]
    scanners = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert {"gitleaks/gitleaks-action", "aquasecurity/trivy-action"} <= set(scanners)
    for name in ("gitleaks/gitleaks-action", "aquasecurity/trivy-action"):
        assert re.fullmatch(r"[0-9a-f]{40}", scanners[name]["uses"].split("@")[1]), name
    trivy = scanners["aquasecurity/trivy-action"]["with"]
    assert trivy["scan-type"] == "config" and trivy["exit-code"] == "1"


def test_the_experiment_workflow_acts_only_on_a_decided_verdict():
    """Scheduled and by hand; the verdict is handed from the report to the job that acts,
    which runs for better or worse only, behind `production`, and rolls back only a
    promotion whose smoke test failed."""
    flow = yaml.safe_load((REPO_ROOT / ".github/workflows/experiment.yml").read_text())
    assert {"schedule", "workflow_dispatch"} <= set(flow[True])  # YAML 1.1 reads `on` as True
    assert flow["concurrency"]["group"] == "cd"
    decide, act = flow["jobs"]["decide"], flow["jobs"]["act"]
    [report] = [s for s in decide["steps"] if s.get("run") == "make experiment-report"]
    assert decide["outputs"]["verdict"] == f"${{{{ steps.{report['id']}.outputs.verdict }}}}"
    assert act["needs"] == "decide" and act["environment"] == "production"
    assert "'better'" in act["if"] and "'worse'" in act["if"] and "undecided" not in act["if"]
    runs = [s.get("run", "") for s in act["steps"]]
    assert runs.index("make experiment-conclude") < runs.index("make smoke")
    [rollback] = [s for s in act["steps"] if s.get("run", "").startswith("make rollback")]
    assert "failure()" in rollback["if"] and "'better'" in rollback["if"]


def test_the_monitor_starts_the_retrain_which_promotes_nothing():
    """monitor.yml starts retrain.yml when `mlops monitor` hands retrain=true (even on the
    alert's exit 3); retrain.yml gates the new version and builds the shadow experiment's
    image, and no step of it moves an alias: experiment.yml's verdict does."""
    monitor = yaml.safe_load((REPO_ROOT / ".github/workflows/monitor.yml").read_text())
    assert monitor["permissions"]["actions"] == "write"
    steps = monitor["jobs"]["monitor"]["steps"]
    [check] = [s for s in steps if s.get("run") == "make monitor"]
    [start] = [s for s in steps if s.get("run", "").startswith("make start-retrain")]
    assert steps.index(start) > steps.index(check)
    assert f"steps.{check['id']}.outputs.retrain == 'true'" in start["if"]
    assert "always()" in start["if"]
    retrain = yaml.safe_load((REPO_ROOT / ".github/workflows/retrain.yml").read_text())
    assert "workflow_dispatch" in retrain[True] and retrain["concurrency"]["group"] == "cd"
    steps = [s for job in retrain["jobs"].values() for s in job["steps"]]
    [build] = [s for s in steps if s.get("run") == "make retrain"]
    [image] = [s for s in steps if s.get("run", "").startswith("make containerize")]
    assert f"steps.{build['id']}.outputs.bento" in image["run"]
    moves = ("promote", "rollback", "experiment-conclude")
    assert not [s for s in steps if any(m in s.get("run", "") for m in moves)]
    recipe = subprocess.run(
        ["make", "-n", "retrain"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    gate = next(i for i, line in enumerate(recipe) if line.endswith("mlops gate"))
    package = next(i for i, line in enumerate(recipe) if "mlops package" in line)
    assert gate < package and "--challenger challenger --mode shadow" in recipe[package]
