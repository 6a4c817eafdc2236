"""dvc.yaml must cover, for each stage, every project module the stage's script imports
(by the module's file or its area folder): a module left out would let `dvc repro`
keep results made by older code."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mlops_starter"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file that `import name` loads from src/, if it is one of ours."""
    base = ROOT / "src" / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_imports(path: Path, seen: set[Path] | None = None) -> set[Path]:
    """The package files `path` imports, followed transitively."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith(PACKAGE)]
        for name in names:
            module = module_file(name)
            if module is not None and module not in seen:
                seen.add(module)
                project_imports(module, seen)
    return seen


def covered(module: Path, deps: list[str]) -> bool:
    relative = module.relative_to(ROOT)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports(stage):
    spec = STAGES[stage].get("do", STAGES[stage])  # a foreach stage's template
    script = spec["cmd"].split()[-1]
    imported = project_imports(ROOT / script)
    assert imported, f"{script} imports nothing from {PACKAGE}?"
    missing = sorted(str(m.relative_to(ROOT)) for m in imported if not covered(m, spec["deps"]))
    assert not missing, f"add to {stage}.deps (the file or its folder): {missing}"


def test_package_folder_deps_are_not_hashed_with_bytecode():
    ignored = (ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored


def test_dvc_lock_records_the_code_and_params_in_this_tree():
    """A change to a stage's code or params must land with the dvc.lock `make run` writes,
    or a fresh clone's `dvc repro` reruns that stage and the committed lock moves
    (test_fresh_clone_e2e catches it half an hour later; this takes a second)."""
    dvc = Path(sys.executable).with_name("dvc")
    status = json.loads(
        subprocess.run(
            [dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    # Outputs a clone has not made yet show as "deleted" or "not in cache": only a
    # modified dependency means the lock is stale.
    stale = sorted(
        f"{stage}: {dep}"
        for stage, changes in status.items()
        for change in changes
        for dep, state in change.get("changed deps", {}).items()
        if state == "modified" or isinstance(state, dict)
    )
    assert not stale, f"dvc.lock is stale for {stale}: run `make run` and commit dvc.lock"
