"""The layout is the architecture: folders are the DAG's areas, imports point one way
(from pipelines and the CLI down to the areas, from the areas down to the shared
modules), and every stage script is a thin door over one library function."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "mlops_starter"
SHARED = {
    "candidates",
    "config",
    "errors",
    "expected_performance",  # class scores, realized and expected: evaluation and monitoring
    "extensions",
    "lineage",
    "metrics",  # binary's scores: its task, training, evaluation, the gate and monitoring
    "rounding",
    "runner",
    "storage",
}
# Which other areas each area may import. Serving never imports training: a bento
# carries the fitted model, not the code that made it.
# The task (tasks/) is below them all: every area asks it what differs by task.
MAY_IMPORT: dict[str, set[str]] = {
    "tasks": set(),
    "data": {"tasks"},
    "validation": {"tasks", "data"},
    "evaluation": {"tasks", "data"},
    "training": {"tasks", "data", "evaluation"},
    "registry": {"tasks", "data", "evaluation"},
    "serving": {"tasks", "data", "registry"},
    "monitoring": {"tasks", "data", "evaluation", "registry", "serving"},
    "cli": {
        "tasks",
        "data",
        "validation",
        "training",
        "evaluation",
        "registry",
        "serving",
        "monitoring",
    },
}

# Within an area, modules that must stay apart: the experiment's routing is plain Python
# beside the service (tested without a server) and never reaches back into it; the
# verdict reads the log and the registry, never the serving code it judges.
MAY_NOT_IMPORT: dict[str, set[str]] = {
    "serving/routing.py": {"mlops_starter.serving.service", "bentoml", "_bentoml_sdk"},
    # What the endpoints share never reaches back into the list of endpoints.
    **{
        f"serving/{module}.py": {"mlops_starter.serving.service"}
        for module in ("answers", "loading", "metrics", "middleware", "openapi", "schema")
    },
    "monitoring/experiment.py": {"mlops_starter.serving", "bentoml", "_bentoml_sdk"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, by its full dotted name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def imported_packages(path: Path) -> set[str]:
    """The first part below mlops_starter of every project import in `path` (area or shared module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == "mlops_starter":
            names = [f"mlops_starter.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mlops_starter" and len(parts) > 1:
                found.add(parts[1])
    return found


def source_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_every_area_is_a_folder_and_only_shared_modules_sit_at_the_top():
    top_modules = {p.stem for p in PACKAGE_DIR.glob("*.py")} - {"__init__"}
    assert top_modules == SHARED
    areas = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert areas == set(MAY_IMPORT)


@pytest.mark.parametrize("module", sorted(SHARED))
def test_shared_modules_import_no_area(module):
    assert imported_packages(PACKAGE_DIR / f"{module}.py") <= SHARED


@pytest.mark.parametrize("area", sorted(MAY_IMPORT))
def test_area_imports_point_down(area):
    allowed = SHARED | MAY_IMPORT[area] | {area}
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - allowed)
        for path in source_files(PACKAGE_DIR / area)
        if imported_packages(path) - allowed
    }
    assert not wrong, f"{area} may import only {sorted(allowed)}; found {wrong}"


@pytest.mark.parametrize("module", sorted(MAY_NOT_IMPORT))
def test_modules_kept_apart_within_an_area(module):
    forbidden = MAY_NOT_IMPORT[module]
    wrong = sorted(
        name
        for name in imported_modules(PACKAGE_DIR / module)
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    )
    assert not wrong, f"{module} must not import {sorted(forbidden)}; found {wrong}"


def test_the_module_rule_catches_a_forbidden_import(tmp_path):
    reaching_back = tmp_path / "bad.py"
    reaching_back.write_text("from mlops_starter.serving import service\nimport bentoml.io\n")
    assert {"mlops_starter.serving.service", "bentoml.io"} <= imported_modules(reaching_back)


@pytest.mark.parametrize("script", source_files(ROOT / "pipelines"), ids=lambda p: p.name)
def test_stage_scripts_are_thin_doors(script):
    assert len(script.read_text().splitlines()) < 40
    assert imported_packages(script) - SHARED, "a stage calls one library function of an area"


def test_import_rule_catches_an_upward_import(tmp_path):
    upward = tmp_path / "bad.py"
    upward.write_text("from mlops_starter.cli.main import main\nfrom mlops_starter import config\n")
    assert imported_packages(upward) == {"cli", "config"}


def test_the_cli_starts_without_the_slow_libraries():
    """`mlops <anything>` imports the command modules; each stage-only library
    (GX alone takes seconds to import) must load inside the command that uses it."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mlops_starter.cli.main; print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    slow = {"great_expectations", "sklearn", "xgboost", "bentoml", "skops", "imblearn"}
    assert not slow & set(loaded)
