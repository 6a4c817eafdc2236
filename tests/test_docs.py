"""The docs tell the truth: every figure they take from a results file is that file's, and
every make target, params.yaml key, mlops command and file path they name exists."""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import typing
from functools import cache
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from pydantic import BaseModel

from mlops_starter.cli.main import build_parser
from mlops_starter.config import Config

spec = importlib.util.spec_from_file_location("docs_generate", REPO_ROOT / "docs/generate.py")
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)

PAGES = generate.pages()
# Paths the docs use as examples of a user's own files or of files inside a bento or an
# image, which no checkout holds.
ILLUSTRATIVE_PATHS = {
    "data/source/customers.csv",
    "new_customers.csv",
    "scores.parquet",
    "s.parquet",
    "big.parquet",
    "labels.csv",
    "env/docker/Dockerfile",
    "apis/openapi.yaml",
    "logs/*.jsonl*",
    "model_card_v1.md",
}
PATH_SUFFIXES = (
    ".py",
    ".yaml",
    ".yml",
    ".toml",
    ".lock",
    ".json",
    ".csv",
    ".md",
    ".parquet",
    ".db",
)
TOP_FOLDERS = {p.name for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
TOP_FOLDERS |= {".github", ".ci", ".dvc"}
LIBRARY = REPO_ROOT / "src" / "mlops_starter"


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT))


# --- figures ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_generated_block_is_what_its_file_gives(page):
    _, moved = generate.regenerate(page.read_text())
    assert not moved, "\n".join(
        f"{page_id(page)}: `{spec}` shows {was!r}, its file gives {now!r} (make docs-update)"
        for spec, was, now in moved
    )


def test_the_docs_carry_generated_figures_from_each_results_folder():
    specs = " ".join(m["spec"] for page in PAGES for m in generate.BLOCK.finditer(page.read_text()))
    for source in ("metrics/test.json", "benchmarks/results/serving.json", "params-reference"):
        assert source in specs


def docs_tree_copy(root: Path) -> Path:
    """The docs and the files their figures come from, in a folder of their own."""
    for name in ("docs", "metrics", "plots", "benchmarks/results", "reports", "src"):
        shutil.copytree(
            REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("generated", "__pycache__")
        )
    for name in ("README.md", "CONTRIBUTING.md", "params.yaml", "dvc.yaml", "Makefile"):
        shutil.copyfile(REPO_ROOT / name, root / name)
    return root


def test_a_stale_figure_fails_the_check_naming_the_page_and_the_figure(tmp_path):
    root = docs_tree_copy(tmp_path)
    page = root / "docs/explanation/calibration.md"
    text = page.read_text()
    figure = re.search(r"<!-- fig: metrics/test.json brier_skill \.3f -->([^<]+)<!--", text)
    page.write_text(
        text.replace(figure.group(0), figure.group(0).replace(figure.group(1), "0.999"))
    )

    done = subprocess.run(
        [sys.executable, str(root / "docs/generate.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert (
        "docs/explanation/calibration.md: `fig: metrics/test.json brier_skill .3f`" in done.stderr
    )
    assert "shows '0.999', its file gives" in done.stderr
    assert page.read_text().count("0.999") == 1, "--check must not rewrite the page"


def test_a_results_file_that_moves_makes_its_table_stale(tmp_path):
    root = docs_tree_copy(tmp_path)
    serving = root / "benchmarks/results/serving.json"
    figures = json.loads(serving.read_text())
    figures["results"]["bentoml_service"]["single_row"]["requests_per_s"] = 12.0
    serving.write_text(json.dumps(figures))
    done = subprocess.run(
        [sys.executable, str(root / "docs/generate.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "docs/benchmarks/serving.md: `gen: serving-table`" in done.stderr
    assert "| this BentoML service | 12 |" in done.stderr

    rewritten = subprocess.run(
        [sys.executable, str(root / "docs/generate.py")], capture_output=True
    )
    assert rewritten.returncode == 0
    assert "| this BentoML service | 12 |" in (root / "docs/benchmarks/serving.md").read_text()


# --- names -----------------------------------------------------------------------------


def code_spans(text: str) -> list[str]:
    """Inline code and the lines of fenced blocks: where the docs name things."""
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", prose) + [
        line for block in fenced for line in block.splitlines()
    ]


def named(pattern: str) -> list[tuple[str, str]]:
    """(page, name) for each match of pattern in the docs' code."""
    found = []
    for page in PAGES:
        for span in code_spans(page.read_text()):
            found += [(page_id(page), m) for m in re.findall(pattern, span.split(" #")[0])]
    return sorted(set(found))


@cache
def make_targets() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):(?!=)", makefile, re.M))


def test_every_make_target_the_docs_name_exists():
    used = named(r"\bmake((?: [A-Z_]+=\S+)*) ([a-z][\w-]*)")
    missing = [(page, target) for page, (_, target) in used if target not in make_targets()]
    assert used and not missing, (
        f"make targets named in the docs but not in the Makefile: {missing}"
    )


def test_every_make_target_has_its_help_line():
    documented = {usage.split()[0] for usage, _ in generate.make_targets()}
    documented |= {"pull"}  # shares `## push / pull`
    assert make_targets() - documented - {"pull"} == set(), "add a `## target: what` line"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }


def test_every_mlops_command_the_docs_name_exists():
    used = named(r"\bmlops((?: [a-z][\w-]*)+)")
    missing = []
    for page, words in used:
        parser, path = build_parser(), []
        for word in words.split():
            commands = subcommands(parser)
            if not commands:
                break  # an argument of the command found so far
            if word not in commands:
                missing.append((page, f"mlops {' '.join([*path, word])}"))
                break
            parser, path = commands[word], [*path, word]
    assert used and not missing, f"mlops commands named in the docs but not in the CLI: {missing}"


def config_key_exists(key: str) -> bool:
    """A dotted params.yaml key in the typed config; `<placeholder>` parts match anything,
    and so does whatever lies under a mapping-typed setting (`gate.min_test.binary.roc_auc`)."""
    section: object = Config
    for part in key.split("."):
        if part.startswith("<") or typing.get_origin(section) is dict:
            return True
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return False  # a leaf setting has nothing below it
        fields = {field.alias or name: field for name, field in section.model_fields.items()}
        if part not in fields:
            return False
        section = fields[part].annotation
        # `data.source` is a path or a database section: look into the section.
        models = [
            a for a in typing.get_args(section) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        section = models[0] if models else section
    return True


def python_name_exists(dotted: str) -> bool:
    """`data.batches.row_keys`, `storage.model_bytes`: a module (or one of its names) in src."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = LIBRARY.joinpath(*parts[:cut])
        for path in (module.with_suffix(".py"), module / "__init__.py"):
            if path.is_file():
                rest = parts[cut:]
                return (
                    not rest
                    or re.search(rf"\b{re.escape(rest[0])}\b", path.read_text()) is not None
                )
    return False


@cache
def library_text() -> str:
    return "\n".join(path.read_text() for path in LIBRARY.rglob("*.py"))


def tag_exists(name: str) -> bool:
    """An MLflow tag or metric name (`data.train_md5`, `gate.passed`) the library writes."""
    prefix = name.rpartition(".")[0]
    return f'"{name}"' in library_text() or f'"{prefix}.{{' in library_text()  # f"test.{m}"


def test_every_params_key_the_docs_name_exists():
    sections = {field.alias or name for name, field in Config.model_fields.items()}
    dotted = named(r"(?<![\w./-])([a-z_]+(?:\.(?:[A-Za-z_][\w]*|<[a-z]+>))+)(?![\w/(-])")
    set_keys = named(r"-S ([a-z_][\w.]*)=")
    missing = [
        (page, key)
        for page, key in dotted
        if key.split(".")[0] in sections
        and not config_key_exists(key)
        and not key.endswith(PATH_SUFFIXES)
        and not python_name_exists(key)
        and not tag_exists(key)
    ]
    missing += [
        (page, key) for page, key in set_keys if key != "key" and not config_key_exists(key)
    ]
    assert dotted and set_keys and not missing, (
        f"params.yaml keys (or Python names) named in the docs that do not exist: {missing}"
    )


def ignored_by_git(path: str) -> bool:
    """Made at run time and kept out of git (mlflow.db, build/, mlruns/)."""
    probe = path + "x" if path.endswith("/") else path  # a folder's pattern needs a child
    return subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO_ROOT).returncode == 0


@cache
def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True)
    return listed.stdout.splitlines()


@cache
def dvc_outputs() -> set[str]:
    paths = Config.from_yaml(REPO_ROOT / "params.yaml").paths.model_dump()
    text = (REPO_ROOT / "dvc.yaml").read_text()
    return {
        re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m[1]], out)
        for out in re.findall(r"^\s+- (\$\{paths\.[^}]+\}[^:\s]*)", text, re.M)
    }


def expand_braces(path: str) -> list[str]:
    """`plots/{roc,pr}.csv` is two paths."""
    match = re.search(r"\{([^}]*)\}", path)
    if not match:
        return [path]
    return [
        expanded
        for choice in match[1].split(",")
        for expanded in expand_braces(path[: match.start()] + choice + path[match.end() :])
    ]


def written_by_library(name: str) -> bool:
    """An artifact name the code writes (`test_slices.json`, `model_card_v<N>.md`)."""
    pattern = "".join(
        r"\{[^}]*\}" if part.startswith("<") else re.escape(part)
        for part in re.split(r"(<[^>]+>)", name)
    )
    return re.search(rf"[\"']{pattern}[\"']", library_text()) is not None


def module_attribute_exists(path: str) -> bool:
    """`data/sources.ingest`: a function or constant of a library module."""
    module, _, name = path.rpartition(".")
    source = LIBRARY / f"{module}.py"
    pattern = rf"\bdef {re.escape(name)}\b|\bclass {re.escape(name)}\b|^{re.escape(name)}\b"
    return source.is_file() and re.search(pattern, source.read_text(), re.M) is not None


def one_path_exists(path: str) -> bool:
    """In git (here or under src/mlops_starter/), made by the DAG, or made at run time."""
    folder = path.endswith("/")
    path = path.removeprefix("./").rstrip("/")
    if "/" not in path and not folder:  # a bare file name: a tracked file, or one the code writes
        pattern = re.sub(r"<[^>]+>", "*", path)
        named = {Path(tracked).name for tracked in tracked_files()}
        found = any(fnmatch.fnmatch(n, pattern) for n in named)
        return found or written_by_library(path) or ignored_by_git(path)
    pattern = re.sub(r"<[^>]+>", "*", path)
    for candidate in (pattern, f"src/mlops_starter/{pattern}"):
        if any(
            fnmatch.fnmatch(t, candidate) or fnmatch.fnmatch(t, candidate + "/*")
            for t in tracked_files()
        ):
            return True
    return (
        module_attribute_exists(path)
        or path in dvc_outputs()
        or ignored_by_git(path + "/" if folder else path.replace("*", "x"))
    )


def path_exists(path: str) -> bool:
    return all(one_path_exists(each) for each in expand_braces(path.rstrip(".,:;")))


def test_every_file_path_the_docs_name_exists():
    tokens = named(r"(?<![\w:$~/.-])((?:\.?[\w.<>{},*-]+/)*[\w.<>{},*-]+(?:/|\.[a-z]+))(?![\w/])")
    checked = []
    for page, token in tokens:
        first = token.split("/")[0]
        is_path = "/" in token and (first in TOP_FOLDERS or (LIBRARY / first).is_dir())
        is_file = (
            "/" not in token
            and token.endswith(PATH_SUFFIXES)
            and not token.startswith(".")
            and not config_key_exists(token)  # `data.csv` is a section of params.yaml
        )
        if (is_path or is_file) and token not in ILLUSTRATIVE_PATHS:
            checked.append((page, token))
    missing = [(page, token) for page, token in checked if not path_exists(token)]
    assert checked and not missing, f"paths named in the docs that do not exist: {missing}"


def test_every_test_file_the_docs_name_exists():
    named_tests = named(r"(tests/[\w/]+\.py)")
    missing = [(page, path) for page, path in named_tests if not (REPO_ROOT / path).is_file()]
    assert named_tests and not missing, f"test files named in the docs that do not exist: {missing}"
