"""dvc.yaml must list, for each stage, every project module the stage's script imports:
a module left out would let `dvc repro` keep results made by older code."""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mlops_starter"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def project_imports(path: Path, seen: set[str] | None = None) -> set[str]:
    """Repository-relative paths of the package modules `path` imports, followed transitively."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith(PACKAGE)]
        for name in names:
            module = ROOT / "src" / (name.replace(".", "/") + ".py")
            relative = str(module.relative_to(ROOT))
            if module.is_file() and relative not in seen:
                seen.add(relative)
                project_imports(module, seen)
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports(stage):
    spec = STAGES[stage]
    script = spec["cmd"].split()[-1]
    imported = project_imports(ROOT / script)
    assert imported, f"{script} imports nothing from {PACKAGE}?"
    assert imported <= set(spec["deps"]), (
        f"add to {stage}.deps: {sorted(imported - set(spec['deps']))}"
    )
