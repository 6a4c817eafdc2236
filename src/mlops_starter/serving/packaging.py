"""From a registry version to a bento: import the MLflow model into the BentoML model
store (labelled with its registry name, version and run id) and build a bento that
pins it, with the serving settings from params.yaml as bento arguments.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from bentoml._internal.bento.build_config import BentoEnvSchema
from bentoml._internal.container.frontend.dockerfile import CONTAINER_METADATA
from bentoml.exceptions import NotFound
from mlflow.entities.model_registry import ModelVersion
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ruamel.yaml import YAML

from mlops_starter.config import Config, ServeConfig
from mlops_starter.data.batches import iter_parquet
from mlops_starter.errors import PipelineError
from mlops_starter.registry.model_registry import GATE_TAG, REGISTRATION_TAG, Registry
from mlops_starter.serving.loading import BentoVersion
from mlops_starter.serving.openapi import published
from mlops_starter.serving.schema import contract_of
from mlops_starter.serving.scorer import build_scorer
from mlops_starter.storage import LoggedModel
from mlops_starter.tasks import answers_of

SERVICE = "mlops_starter.serving.service:ClassifierService"


def bento_model_tag(model_name: str, version: ModelVersion) -> str:
    """`<name>:v<version>-<run id prefix>`: readable, and distinct across registries
    whose version numbers collide."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    return f"{name}:v{version.version}-{str(version.run_id)[:12]}"


def import_version(
    registry: Registry, version: ModelVersion, check_rows: pd.DataFrame | None = None
) -> str:
    """Put a registry version into the BentoML store (once) and return its tag.

    The compiled scorer is derived here and checked against the registered pipeline on
    generated hard cases and `check_rows` (the test set, when the package stage runs);
    the check's outcome goes into the bento model's metadata, served at /metadata."""
    tag = bento_model_tag(registry.name, version)
    try:
        bentoml.models.get(tag)
        return tag
    except NotFound:
        pass
    uri = f"models:/{registry.name}/{version.version}"
    # BentoML metadata takes plain values only: a null (no id column) is left out.
    serving = registry.serving_metadata(version)
    answers = registry.answers(version, serving)
    profile = serving["feature_profile"]
    if check_rows is not None and not set(profile) <= set(check_rows.columns):
        check_rows = None  # a table of another shape: the generated cases still check it
    scorer, check = build_scorer(
        LoggedModel.load(uri).pipeline,
        profile,
        None if check_rows is None else check_rows[list(profile)],
        answers,
    )
    serving["scorer_check"] = {"kind": scorer.kind, "detail": scorer.detail, **check}
    if card := registry.card(version):
        serving["model_card"] = card  # served at GET /metadata
    bentoml.mlflow.import_model(
        tag,
        uri,
        labels={
            "registered_model": registry.name,
            "registered_version": str(version.version),
            "run_id": str(version.run_id),
        },
        metadata=serving,
    )
    return tag


def serve_arguments(
    model_tag: str,
    settings: ServeConfig,
    challenger_tag: str | None = None,
    extensions: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """The service's arguments; `extensions` (params.yaml's) are imported before it loads
    a model, so a team candidate's trusted types are known there too."""
    return {
        "model_tag": model_tag,
        "challenger_tag": challenger_tag,
        "extensions": list(extensions),
        **settings.model_dump(exclude={"port"}),
    }


def import_challenger(
    registry: Registry, champion: ModelVersion, challenger: ModelVersion, settings: ServeConfig
) -> str:
    """Import the challenger of an experiment beside `champion` and return its tag, or
    refuse in one line: no experiment mode set, the same version twice, a version the gate
    did not pass, or one that cannot take the champion's requests."""
    from mlops_starter.serving.routing import schema_differences

    if settings.experiment.mode == "off":
        raise PipelineError(
            "serve.experiment.mode is off: set it to shadow or split in params.yaml "
            "before building a bento with a challenger"
        )
    if str(champion.version) == str(challenger.version):
        raise PipelineError(f"version {champion.version} cannot challenge itself")
    for role, version in (("champion", champion), ("challenger", challenger)):
        if version.tags.get(GATE_TAG) != "true" or version.tags.get(REGISTRATION_TAG) != "complete":
            raise PipelineError(
                f"the {role}, version {version.version} of '{registry.name}', did not pass the "
                f"gate ({GATE_TAG}={version.tags.get(GATE_TAG, 'missing')}): an experiment "
                "serves gated versions only"
            )
    tags = import_version(registry, champion), import_version(registry, challenger)
    metadata = [dict(bentoml.models.get(tag).info.metadata) for tag in tags]
    if differences := schema_differences(*metadata):
        raise PipelineError(
            f"version {challenger.version} cannot challenge version {champion.version}: "
            + "; ".join(differences)
        )
    return tags[1]


# The project's dependencies that only training, validation and tracking use: the bento
# leaves them (and what only they need) out, which keeps the image smaller by a third.
# The image test (tests/serving/test_container_e2e.py) serves from an image without them.
NOT_SERVED = frozenset(
    {"dvc", "great-expectations", "optuna", "dask", "distributed", "tqdm", "psycopg", "statsmodels"}
)


def runtime_pins(project: str = "mlops-starter") -> list[str]:
    """`name==version` for the project's serving dependencies (no dev extras, nothing in
    NOT_SERVED), as installed here from requirements.lock: the bento gets exactly the
    libraries the model was trained and tested with."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = importlib.metadata.distribution(name)
        if name != project:
            pins[name] = f"{dist.metadata['Name']}=={dist.version}"
        for line in dist.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if requirement.marker and not any(
                requirement.marker.evaluate(env) for env in environments
            ):
                continue
            name_of = canonicalize_name(requirement.name)
            if name == project and name_of in NOT_SERVED:
                continue
            pending.append((name_of, frozenset(requirement.extras)))
    return sorted(pins.values(), key=str.lower)


# The image's one system step, run as root: the prediction log's mount point, owned by the
# unprivileged user the service runs as. Docker copies this ownership into a new named
# volume mounted there (deploy/compose.yaml), so the service can write its log.
IMAGE_SETUP = "mkdir -p /predictions && chown bentoml:bentoml /predictions"


@contextlib.contextmanager
def image_setup_step(command: str) -> Iterator[None]:
    """While a bento is built, its image's system step is `command` instead of BentoML's
    default, which installs a C toolchain and git (0.6 GB) for libraries that compile
    from source. Every library the bento pins installs from a wheel (bentofile.yaml sets
    UV_NO_BUILD: one that would need compiling fails the image build, by name), and
    python:3.11-slim has the CA certificates. BentoML offers no option for this step."""
    debian = CONTAINER_METADATA["debian"]
    default = debian["default_install_command"]
    debian["default_install_command"] = command
    try:
        yield
    finally:
        debian["default_install_command"] = default


def build_bento(
    model_tag: str,
    settings: ServeConfig,
    repo_root: str | Path = ".",
    challenger_tag: str | None = None,
    extensions: list[str] = (),  # type: ignore[assignment]
) -> bentoml.Bento:
    """Build the bento from bentofile.yaml with src/ as build context, pinning the
    model (and a challenger's), its registry labels, the serving settings and the
    runtime libraries."""
    root = Path(repo_root)
    options = YAML(typ="safe").load((root / "bentofile.yaml").read_text())
    options["python"] = {**options.get("python", {}), "packages": runtime_pins()}
    # bentoml.bentos.build takes envs as schema objects (a bentofile read by the CLI is converted).
    options["envs"] = [BentoEnvSchema(**env) for env in options.get("envs", [])]
    with image_setup_step(IMAGE_SETUP):
        bento = bentoml.bentos.build(
            **options,
            name=f"{model_tag.split(':')[0]}-service",
            labels=dict(bentoml.models.get(model_tag).info.labels),
            build_ctx=str(root / "src"),
            args=serve_arguments(model_tag, settings, challenger_tag, extensions),
        )
    publish_document(bento, model_tag, settings)
    return bento


def publish_document(bento: bentoml.Bento, model_tag: str, settings: ServeConfig) -> None:
    """Put in the bento (apis/openapi.yaml) the document the service serves at
    /docs.json (serving/openapi.py), in place of BentoML's, which leaves answers out."""
    champion = BentoVersion.of(bentoml.models.BentoModel(model_tag))
    path = Path(bento.path) / "apis" / "openapi.yaml"
    spec = YAML(typ="safe").load(path.read_text())
    contract = contract_of(champion.profile, champion.id_field, settings)
    writer = YAML(typ="safe")
    writer.default_flow_style = False
    with path.open("w") as out:
        writer.dump(published(spec, contract, champion.version, answers_of(champion.info)), out)


def package_gated_version(run_ids: list[str], cfg: Config) -> dict[str, Any]:
    """The package stage: a bento of the newest version registered from the training runs
    that logged the model file, only if it passed the gate (its tags in the registry say so).

    Returns models/bento.json: what was built, or which gate checks kept it from being built.
    """
    log = logging.getLogger("package")
    registry = Registry.connect(cfg.mlflow.registered_model)
    version = registry.latest_from_runs(run_ids)
    if version.tags.get(REGISTRATION_TAG) != "complete":
        raise PipelineError(
            f"version {version.version} of '{registry.name}' was left half-made by an interrupted "
            "register stage; rerun `dvc repro` to complete it"
        )
    if version.tags.get(GATE_TAG) != "true":
        failed = version.tags.get("gate.failed_checks", "unknown").split(",")
        log.warning("version %s failed the gate (%s): no bento built", version.version, failed)
        return {"built": False, "version": str(version.version), "failed_checks": failed}
    # The scorer's check: the test set, or its first scale.sample_rows rows when it is large.
    check_rows = next(iter_parquet(cfg.paths.test, cfg.scale.sample_rows))
    model_tag = import_version(registry, version, check_rows)
    bento = build_bento(model_tag, cfg.serve, extensions=cfg.extensions)
    log.info("built bento %s of %s version %s", bento.tag, registry.name, version.version)
    return {
        "built": True,
        "bento": str(bento.tag),
        "bento_model": model_tag,
        "scorer": bentoml.models.get(model_tag).info.metadata.get("scorer_check"),
        "registered_model": registry.name,
        "version": str(version.version),
        "run_id": version.run_id,
    }
