"""Write the docs' generated blocks from the files that hold their figures.

A page marks a figure `<!-- fig: FILE KEY FORMAT -->0.808<!-- /fig -->` and a whole block
`<!-- gen: NAME ARGS -->...<!-- /gen -->`; this script rewrites what stands between the
markers, so no figure is typed by hand. `--check` rewrites nothing and exits 1 naming
each page and figure that differs from its file (`make docs` runs it, and so does
tests/test_docs.py). Both also draw the ROC, PR and calibration plots from `plots/`, and
copy the benchmarks' own images, into docs/images/generated/: build products, like the
site itself, so no picture can be older than its file.

    python docs/generate.py           # rewrite the blocks (make docs-update)
    python docs/generate.py --check   # fail on any stale block (make docs)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
# Pages outside docs/ that carry generated blocks too.
FRONT_PAGES = ("README.md", "CONTRIBUTING.md")
BLOCK = re.compile(
    r"<!-- (?P<kind>fig|gen): (?P<spec>.+?) -->(?P<body>.*?)<!-- /(?P=kind) -->", re.S
)


def pages() -> list[Path]:
    found = sorted(DOCS.rglob("*.md"))
    return found + [REPO / name for name in FRONT_PAGES if (REPO / name).is_file()]


def read_json(path: str) -> Any:
    return json.loads((REPO / path).read_text())


def lookup(data: Any, key: str) -> Any:
    """`a.b[2].c` in nested JSON; a key holding a dot is written in quotes: `"x.y"`."""
    for part in re.findall(r'"[^"]+"|\[\d+\]|[^.\[\]]+', key):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part.strip('"')]
    return data


def figure(spec: str) -> str:
    """One value: `FILE KEY [FORMAT]`, FORMAT as in Python's format() (`.3f`, `,.0f`, `.1%`)."""
    path, key, *rest = spec.split()
    value = lookup(read_json(path), key)
    return format(value, rest[0]) if rest else str(value)


# Images a benchmark draws, shown as they are.
COPIED_IMAGES = ("benchmarks/results/scale.png",)

# Block generators: each returns Markdown for `<!-- gen: NAME ARGS -->`.
GENERATORS: dict[str, Callable[..., str]] = {}


def generator(name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    def register(function: Callable[..., str]) -> Callable[..., str]:
        GENERATORS[name] = function
        return function

    return register


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def config() -> Any:
    from mlops_starter.config import Config

    return Config.from_yaml(REPO / "params.yaml")


@generator("demo-results")
def demo_results() -> str:
    cv, test = read_json("metrics/cv.json"), read_json("metrics/test.json")
    others = ", ".join(
        f"{name} {scores['cv_' + cv['primary_metric']]:.3f}"
        for name, scores in cv["candidates"].items()
        if name != cv["winner"]
    )
    metric = cv["primary_metric"]
    return table(
        ["", "value"],
        [
            [f"winner (mean CV {metric})", f"{cv['winner']} {cv['cv_' + metric]:.3f} ({others})"],
            [
                "test ROC-AUC / PR-AUC",
                f"{test['roc_auc']:.3f} / {test['pr_auc']:.3f} (base rate {test['positive_rate']:.2f})",
            ],
            [
                f"test precision / recall / F1 at threshold {test['threshold']:.3f}",
                f"{test['precision']:.3f} / {test['recall']:.3f} / {test['f1']:.3f}",
            ],
            [
                "test Brier score (base rate's) / Brier skill / ECE",
                f"{test['brier']:.4f} ({test['brier_base_rate']:.4f}) / {test['brier_skill']:.3f} / {test['ece']:.3f}",
            ],
            ["test rows", f"{test['rows']:,}"],
        ],
    )


@generator("gate-bars")
def gate_bars() -> str:
    """The gate's absolute bars (params.yaml) beside the demo model's test metrics."""
    test = read_json("metrics/test.json")
    rows = [
        [
            f"`gate.min_test.binary.{metric}`",
            f"{bar:g}",
            f"{test[metric]:.3f}",
            "yes" if test[metric] >= bar else "no",
        ]
        for metric, bar in config().gate.min_test.binary.items()
    ]
    return table(["bar", "at least", "the demo model", "passes"], rows)


@generator("importance")
def importance(top: str = "5") -> str:
    frame = pd.read_csv(REPO / "plots/importance.csv").sort_values("importance", ascending=False)
    metric = read_json("metrics/cv.json")["primary_metric"]
    return table(
        ["feature", f"drop in test {metric} when shuffled", "spread (std)"],
        [
            [f"`{r.feature}`", f"{r.importance:.3f}", f"{r.std:.3f}"]
            for r in frame.head(int(top)).itertuples()
        ],
    )


def milliseconds(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


SERVERS = {
    "bentoml_service": "this BentoML service",
    "mlflow_models_serve": "`mlflow models serve --env-manager local`",
    "minimal_asgi": "a bare ASGI app: parse, compiled scorer, answer (`benchmarks/minimal_server.py`)",
    "in_process_pipeline": "in-process sklearn `predict_proba` (one caller, no HTTP)",
    "in_process_compiled": "in-process compiled scorer (one caller, no HTTP)",
}


@generator("serving-table")
def serving_table() -> str:
    results = read_json("benchmarks/results/serving.json")["results"]
    rows = []
    for key, label in SERVERS.items():
        load = results[key]
        single, batch = load["single_row"], load["batch_1000"]
        columns = load.get("batch_1000_columns")
        rows.append(
            [
                label,
                f"{single['requests_per_s']:,.0f}",
                milliseconds(single["p50_ms"]),
                milliseconds(single["p99_ms"]),
                single["errors"] + batch["errors"],
                f"{batch['rows_per_s']:,.0f}",
                f"{columns['rows_per_s']:,.0f}" if columns else "",
            ]
        )
    return table(
        [
            "served by",
            "single-row req/s",
            "p50 ms",
            "p99 ms",
            "failed",
            "1,000 records, rows/s",
            "1,000 rows as columns, rows/s",
        ],
        rows,
    )


GOALS = {
    "records_rows_vs_mlflow": ("1,000 records: rows/s over `mlflow models serve`", ">= 1.5"),
    "records_share_of_columns": ("1,000 records: rows/s over 1,000 rows as columns", ">= 0.5"),
    "single_row_share_of_minimal_asgi": ("single rows: req/s over the bare ASGI app", ">= 0.5"),
    "columnar_share_of_compiled_in_process": (
        "columns: rows/s over the compiled scorer in process",
        ">= 0.5",
    ),
    "single_row_speedup_vs_mlflow": ("single rows: req/s over `mlflow models serve`", ">= 5"),
    "shadow_single_row_p50_overhead": (
        "a challenger in shadow: single rows' p50, median of the rounds",
        "<= 0.10",
    ),
}


@generator("serving-ratios")
def serving_ratios() -> str:
    goals = read_json("benchmarks/results/serving.json")["goals"]
    return table(
        ["ratio", "goal", "measured"],
        [[label, goal, f"{goals[key]:g}"] for key, (label, goal) in GOALS.items()],
    )


@generator("container-table")
def container_table() -> str:
    result = read_json("benchmarks/results/container.json")
    start = result["cold_start_to_ready_s"]
    return table(
        ["", "measured"],
        [
            [
                "image size",
                f"{result['image_bytes'] / 1e9:.2f} GB (largest layer {result['largest_layers'][0]['bytes'] / 1e9:.2f} GB: the libraries)",
            ],
            [
                "cold start to `/readyz`",
                f"{start['container_median']:.1f} s, against {start['bentoml_serve_on_host_median']:.1f} s for `bentoml serve` of the same bento on the host",
            ],
            [
                "build (base present) / cached rebuild",
                f"{result['build_s']['first']:.1f} s / {result['build_s']['cached_rebuild']:.1f} s",
            ],
            ["engine", result["machine"]["engine"]],
        ],
    )


@generator("scale-table")
def scale_table() -> str:
    result = read_json("benchmarks/results/scale.json")
    modes = list(result["modes"])
    rows = []
    for count in result["rows"]:
        cells = [f"{count / 1e6:g}M"]
        for mode in modes:
            run = result["modes"][mode][str(count)]
            if not run.get("finished"):
                cells.append("not run")
                continue
            stage = max(run["stages"], key=lambda name: run["stages"][name]["peak_rss_gb"] or 0)
            cells.append(f"{run['peak_rss_gb']:.2f} GB ({stage}), {run['seconds']:.0f} s")
        rows.append(cells)
    return table(["rows", *modes], rows)


@generator("scale-capped")
def scale_capped() -> str:
    stages = read_json("benchmarks/results/scale.json")["capped"]["streaming"]["stages"]
    return table(
        ["stage", *stages],
        [
            ["peak RSS", *(f"{s['peak_rss_gb']:.2f} GB" for s in stages.values())],
            ["wall time", *(f"{s['seconds']:,.0f} s" for s in stages.values())],
        ],
    )


@generator("sql-table")
def sql_table() -> str:
    runs = read_json("benchmarks/results/sql_source.json")["runs"]
    return table(
        [
            "rows",
            "ingest: time",
            "ingest: peak RSS",
            "`pandas.read_sql`: time",
            "`pandas.read_sql`: peak RSS",
        ],
        [
            [
                f"{run['rows'] / 1e6:g}M",
                f"{run['ingest']['seconds']:.1f} s",
                f"{run['ingest']['peak_rss_mb']:,} MB",
                f"{run['read_sql']['seconds']:.1f} s",
                f"{run['read_sql']['peak_rss_mb']:,} MB",
            ]
            for run in runs
        ],
    )


@generator("corpus-table")
def corpus_table(path: str = "benchmarks/results/corpus.json") -> str:
    return table(
        [
            "table",
            "rows x columns",
            "positive",
            "winner",
            "ROC-AUC",
            "PR-AUC",
            "Brier (base rate)",
            "error at 0.5",
            "published",
        ],
        [
            [
                f"{t['table']} ({t['source']})",
                f"{t['rows']:,} x {t['columns']}",
                f"{t['positive_rate']:.1%}",
                t["winner"],
                f"{t['test']['roc_auc']:.3f}",
                f"{t['test']['pr_auc']:.3f}",
                f"{t['test']['brier']:.4f} ({t['test']['brier_base_rate']:.4f})",
                f"{t['test_error_at_0.5']:.1%}",
                t["published"],
            ]
            for t in read_json(path)
        ],
    )


@generator("corpus-duplicates")
def corpus_duplicates() -> str:
    with_duplicates = [
        t
        for t in read_json("benchmarks/results/corpus.json")
        if t["duplicates"]["duplicate_groups"]
    ]
    with_duplicates.sort(key=lambda t: -t["duplicates"]["rows_in_duplicate_groups"])
    return table(
        ["table", "rows in duplicate groups", "groups", "groups with conflicting labels"],
        [
            [
                t["table"],
                f"{d['rows_in_duplicate_groups']:,}",
                f"{d['duplicate_groups']:,}",
                d["groups_with_conflicting_labels"],
            ]
            for t in with_duplicates
            for d in [t["duplicates"]]
        ],
    )


@generator("corpus-fit-times")
def corpus_fit_times() -> str:
    corpus = read_json("benchmarks/results/corpus.json")
    candidates = list(corpus[0]["fit_seconds"])
    return table(
        ["table", *candidates],
        [[t["table"], *(f"{t['fit_seconds'][c]:.2f}" for c in candidates)] for t in corpus],
    )


@generator("ensembles")
def ensembles() -> str:
    """Bagging against boosting on every real table: each ensemble trained alone."""
    found = read_json("benchmarks/results/ensembles.json")
    names = list(found[0]["candidates"])

    def cells(figures: dict[str, dict[str, float]]) -> list[str]:
        """CV / test PR-AUC; the best test PR-AUC of the row in bold."""
        best = max(f["test_pr_auc"] for f in figures.values())
        out = []
        for name in names:
            f = figures[name]
            cell = f"{f['cv_pr_auc']:.3f} / {f['test_pr_auc']:.3f}"
            out.append(f"**{cell}**" if f["test_pr_auc"] == best else cell)
        return out

    return table(
        ["table", *names],
        [[t["table"], *cells(t["candidates"])] for t in found],
    )


@generator("task-tables")
def task_tables() -> str:
    """The regression and multi-class tables of the corpus: the winner's CV figure and
    the test set's, with the interval's coverage for regression."""
    rows = []
    for t in read_json("benchmarks/results/tasks.json"):
        test, primary = t["test"], t["primary_metric"]
        shown = (
            f"RMSE {test['rmse']:.3g}, R² {test['r2']:.3f}, interval coverage "
            f"{test['interval_coverage']:.1%} (target {test['interval_target_coverage']:.0%})"
            if t["task"] == "regression"
            else f"log loss {test['log_loss']:.3f}, accuracy {test['accuracy']:.1%}, "
            f"macro F1 {test['macro_f1']:.3f}, ROC-AUC {test['roc_auc_ovr']:.3f}"
        )
        rows.append(
            [
                f"{t['table']} ({t['source']})",
                f"{t['rows']:,}",
                t["task"],
                t["winner"],
                f"{primary} {t['cv']['cv_' + primary]:.3g}",
                shown,
                t["published"],
            ]
        )
    return table(["table", "rows", "task", "winner", "CV", "test", "published"], rows)


@generator("memory-map")
def memory_map() -> str:
    return table(
        [
            "rows",
            "a pass from Parquet",
            "from the mapped IPC copy",
            "own memory (Parquet / IPC)",
            "resident file pages (Parquet / IPC)",
            "files (Parquet / IPC)",
        ],
        [
            [
                f"{r['rows'] / 1e6:g}M",
                f"{r['parquet']['pass_seconds_median']:.2f} s",
                f"{r['mapped_ipc']['pass_seconds_median']:.2f} s "
                f"({r['mapped_over_parquet_time']:.2f}x)",
                f"{r['parquet']['peak_anon_mb']:,.0f} / {r['mapped_ipc']['peak_anon_mb']:,.0f} MB",
                f"{r['parquet']['peak_file_mb']:,.0f} / {r['mapped_ipc']['peak_file_mb']:,.0f} MB",
                f"{r['parquet_bytes'] / 1e6:,.0f} / {r['ipc_bytes'] / 1e6:,.0f} MB",
            ]
            for r in read_json("benchmarks/results/memory_map.json")
        ],
    )


@generator("downstream")
def downstream(stage: str) -> str:
    """The stages a change to STAGE's inputs reruns: it and everything fed by its outputs."""
    stages = YAML(typ="safe").load((REPO / "dvc.yaml").read_text())["stages"]
    reruns = [stage]
    for name, spec in stages.items():
        deps = {str(dep) for dep in spec.get("deps", [])}
        fed = {
            str(next(iter(out)) if isinstance(out, dict) else out)
            for s in reruns
            for out in stages[s].get("outs", [])
        }
        if name not in reruns and deps & fed:
            reruns.append(name)
    return ", ".join(f"`{name}`" for name in reruns)


def type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if args:
        if origin in (typing.Union, types.UnionType):
            return " or ".join("null" if a is type(None) else type_name(a) for a in args)
        return (
            f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
        )
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def params_comments() -> dict[str, str]:
    """Each params.yaml key's comments (the lines just above it and the end of its line)."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    above: list[str] = []
    for line in (REPO / "params.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"^(\s*)([A-Za-z_][\w]*):(.*)$", line)
        if not match:
            above = [] if not stripped else above
            continue
        indent, key, rest = len(match[1]), match[2], match[3]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        end = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        comments[".".join(k for _, k in stack)] = " ".join([*above, end]).strip()
        above = []
    return comments


def walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, Any, str]]:
    """(key, type, default, description) for every setting; a section yields itself first."""
    from mlops_starter.candidates import CANDIDATES

    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        if key == "train.candidates":  # a registry: each candidate a section of its settings
            for candidate, entry in CANDIDATES.items():
                yield f"{key}.{candidate}", entry.settings, None, entry.settings.__doc__ or ""
                yield from walk(entry.settings, f"{key}.{candidate}.")
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield key, annotation, None, field.description or (annotation.__doc__ or "")
            yield from walk(annotation, key + ".")
            continue
        default = (
            field.get_default(call_default_factory=True) if not field.is_required() else REQUIRED
        )
        yield key, annotation, default, field.description or ""


REQUIRED = object()


def shown(value: Any) -> str:
    if value is REQUIRED:
        return "required"
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    return f"`{json.dumps(value, default=str)}`".replace("|", "\\|")


@generator("params-reference")
def params_reference() -> str:
    """Every params.yaml key from the typed config: type, default, the demo's value, meaning."""
    from mlops_starter.config import Config

    comments = params_comments()
    given = YAML(typ="safe").load((REPO / "params.yaml").read_text())
    sections: dict[str, tuple[str, list[list[str]]]] = {"": ("", [])}
    for key, annotation, default, description in walk(Config):
        text = re.sub(r"\s+", " ", description.strip() or comments.get(key, "")).replace("|", "\\|")
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections[key] = (text, [])
            continue
        try:
            value = shown(lookup(given, key))
        except (KeyError, TypeError):
            value = ""
        sections[key.rpartition(".")[0]][1].append(
            [f"`{key}`", type_name(annotation), shown(default), value, text]
        )
    header = ["key", "type", "default", "in params.yaml", "what it does"]
    return "\n\n".join(
        "\n\n".join(
            part
            for part in (f"### `{section}`" if section else "", text, table(header, rows))
            if part
        )
        for section, (text, rows) in sections.items()
        if rows
    )


@generator("cli-reference")
def cli_reference() -> str:
    import argparse

    from mlops_starter.cli.main import build_parser

    def commands(
        parser: argparse.ArgumentParser, path: str
    ) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    yield f"{path} {name}", helps.get(name) or "", sub
                    yield from commands(sub, f"{path} {name}")

    def argument(action: argparse.Action) -> list[str]:
        names = (
            ", ".join(f"`{o}`" for o in action.option_strings)
            or f"`{action.metavar or action.dest}`"
        )
        choices = " \\| ".join(f"`{c}`" for c in action.choices) if action.choices else ""
        default = (
            ""
            if action.default in (None, False, argparse.SUPPRESS) or action.required
            else f"`{action.default}`"
        )
        return [names, choices, default, (action.help or "").replace("|", "\\|")]

    parser = build_parser()
    out = ["Every command takes `--params PATH` (default `params.yaml`) before its name."]
    for path, summary, sub in commands(parser, "mlops"):
        rows = [
            argument(a)
            for a in sub._actions
            if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        ]
        out.append(f"### `{path}`\n\n{summary}".rstrip())
        if rows:
            out.append(table(["argument", "choices", "default", "what it does"], rows))
    return "\n\n".join(out)


def make_targets() -> list[tuple[str, str]]:
    """(usage, description) for each `## target: what` comment block of the Makefile."""
    found: list[tuple[str, str]] = []
    for block in re.findall(r"((?:^## .*\n)+)", (REPO / "Makefile").read_text(), re.M):
        lines = [line[3:] for line in block.splitlines()]
        usage, _, first = lines[0].partition(": ")
        found.append((usage, " ".join([first, *lines[1:]])))
    return found


@generator("make-reference")
def make_reference() -> str:
    rows = [[f"`make {usage}`", text.replace("|", "\\|")] for usage, text in make_targets()]
    return table(["command", "what it does"], rows)


@generator("python-api")
def python_api() -> str:
    """One mkdocstrings block per library module, by area, so a new module is listed."""
    package = REPO / "src" / "mlops_starter"
    out = []
    for area in sorted(p for p in package.iterdir() if (p / "__init__.py").is_file()):
        if area.name == "cli":  # the CLI's reference is its own page
            continue
        out.append(f"## `{area.name}`")
        out += [f"::: mlops_starter.{area.name}.{m.stem}" for m in sorted(area.glob("[!_]*.py"))]
    top = [f"::: mlops_starter.{m.stem}" for m in sorted(package.glob("[!_]*.py"))]
    return "\n\n".join(["## The shared modules", *top, *out])


def render(spec: str, kind: str) -> str:
    if kind == "fig":
        return figure(spec)
    name, *args = spec.split()
    if name not in GENERATORS:
        raise SystemExit(f"unknown generated block {name!r}; known: {sorted(GENERATORS)}")
    return "\n" + GENERATORS[name](*args) + "\n"


def regenerate(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The page with every block rewritten, and (spec, shown, generated) for each that moved."""
    moved: list[tuple[str, str, str]] = []

    def replace(match: re.Match[str]) -> str:
        body = render(match["spec"], match["kind"])
        if body != match["body"]:
            moved.append(
                (f"{match['kind']}: {match['spec']}", *first_difference(match["body"], body))
            )
        return f"<!-- {match['kind']}: {match['spec']} -->{body}<!-- /{match['kind']} -->"

    return BLOCK.sub(replace, text), moved


def first_difference(shown: str, generated: str) -> tuple[str, str]:
    """The first line where a block differs: a one-line report even for a long table."""
    old, new = shown.strip().splitlines() or [""], generated.strip().splitlines() or [""]
    for was, now in zip(old + [""] * len(new), new + [""] * len(old), strict=False):
        if was != now:
            return was, now
    return shown.strip(), generated.strip()


def draw_plots(out: Path) -> None:
    """ROC, PR and reliability diagram of the demo model, from the DVC plot files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    plots = REPO / "plots"
    roc, pr, calibration = (pd.read_csv(plots / f"{n}.csv") for n in ("roc", "pr", "calibration"))
    figures = {
        "roc": (
            roc["fpr"],
            roc["tpr"],
            "false positive rate",
            "true positive rate",
            [0, 1],
            [0, 1],
        ),
        "pr": (pr["recall"], pr["precision"], "recall", "precision", None, None),
        "calibration": (
            calibration.iloc[:, 0],
            calibration.iloc[:, 1],
            "mean predicted probability",
            "observed rate",
            [0, 1],
            [0, 1],
        ),
    }
    for name, (x, y, xlabel, ylabel, diag_x, diag_y) in figures.items():
        fig, axes = plt.subplots(figsize=(4.5, 4), dpi=110)
        axes.plot(x, y, marker="o" if name == "calibration" else None, markersize=3)
        if diag_x:
            axes.plot(diag_x, diag_y, linestyle="--", color="grey", linewidth=0.8)
        axes.set(xlabel=xlabel, ylabel=ylabel)
        axes.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", metadata={"Software": None})
        plt.close(fig)


def bar_chart(
    out: Path, name: str, title: str, bars: dict[str, dict[str, float]], unit: str
) -> None:
    """Grouped horizontal bars: one group per label, one bar per series."""
    import matplotlib.pyplot as plt

    labels = list(bars)
    series = list(dict.fromkeys(key for values in bars.values() for key in values))
    height = 0.8 / len(series)
    fig, axes = plt.subplots(figsize=(8, 1.2 + 0.4 * len(labels) * len(series)), dpi=110)
    for number, key in enumerate(series):
        positions = [i + number * height for i in range(len(labels))]
        axes.barh(positions, [bars[label].get(key, 0) for label in labels], height, label=key)
    axes.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))], labels)
    axes.invert_yaxis()
    axes.set(xlabel=unit, title=title)
    if len(series) > 1:
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    axes.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", metadata={"Software": None})
    plt.close(fig)


def draw_benchmark_charts(out: Path) -> None:
    """One chart per benchmark page, from its results file."""
    serving = read_json("benchmarks/results/serving.json")["results"]
    short = {
        "bentoml_service": "this service",
        "mlflow_models_serve": "mlflow models serve",
        "minimal_asgi": "bare ASGI app",
        "in_process_pipeline": "in-process pipeline",
        "in_process_compiled": "in-process compiled",
    }
    bar_chart(
        out,
        "serving",
        "Throughput per server (2 cores)",
        {
            label: {
                "single rows, requests/s": serving[key]["single_row"]["requests_per_s"],
                "1,000-row requests, rows/s ÷ 100": serving[key]["batch_1000"]["rows_per_s"] / 100,
            }
            for key, label in short.items()
        },
        "per second",
    )
    start = read_json("benchmarks/results/container.json")["cold_start_to_ready_s"]
    bar_chart(
        out,
        "container",
        "Cold start to /readyz",
        {
            "container": {"median": start["container_median"]},
            "bentoml serve on the host": {"median": start["bentoml_serve_on_host_median"]},
        },
        "seconds",
    )
    runs = read_json("benchmarks/results/sql_source.json")["runs"]
    bar_chart(
        out,
        "sql_source",
        "Peak memory reading the table from PostgreSQL",
        {
            f"{run['rows'] / 1e6:g}M rows": {
                "ingest (streamed)": run["ingest"]["peak_rss_mb"],
                "pandas.read_sql": run["read_sql"]["peak_rss_mb"],
            }
            for run in runs
        },
        "MB",
    )
    corpus = read_json("benchmarks/results/corpus.json")
    bar_chart(
        out,
        "corpus",
        "Test ROC-AUC and PR-AUC per real table",
        {
            t["table"]: {"ROC-AUC": t["test"]["roc_auc"], "PR-AUC": t["test"]["pr_auc"]}
            for t in corpus
        },
        "score on the untouched test set",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="rewrite nothing; exit 1 on a stale block"
    )
    args = parser.parse_args(argv)
    stale = 0
    for page in pages():
        text = page.read_text()
        new, moved = regenerate(text)
        for spec, was, now in moved:
            stale += 1
            print(
                f"{page.relative_to(REPO)}: `{spec}` shows {was!r}, its file gives {now!r}",
                file=sys.stderr,
            )
        if moved and not args.check:
            page.write_text(new)
    generated = DOCS / "images" / "generated"
    draw_plots(generated)
    draw_benchmark_charts(generated)
    for image in COPIED_IMAGES:
        shutil.copyfile(REPO / image, generated / Path(image).name)
    if stale and args.check:
        print(
            f"{stale} generated block(s) stale: run `make docs-update` and commit", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
