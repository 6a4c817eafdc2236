"""What the service serves, read from the bento: its arguments, and the registry
versions it holds (the champion, and a challenger when an experiment runs), loaded and
checked before the service says it is ready."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import bentoml
from pydantic import Field

from mlops_starter.config import ServeConfig
from mlops_starter.serving.routing import ServedVersion, load_challenger, served_version
from mlops_starter.storage import LoggedModel


class ServeArgs(ServeConfig):
    """The bento's arguments: `serve:` of params.yaml and the versions to serve."""

    model_tag: str = Field(description="BentoML model store tag, written by `mlops package`")
    challenger_tag: str | None = Field(
        None, description="the challenger's tag (`mlops package --challenger`), or none"
    )
    extensions: list[str] = Field(
        [],
        description="params.yaml's extensions: a team candidate's types are trusted once imported",
    )


@dataclass(frozen=True)
class BentoVersion:
    """A registry version as `mlops package` put it in the model store: its MLflow model
    folder, registry labels, and the serving metadata the train stage wrote (threshold,
    positive label, id column, training data hash, per-feature profile, model card)."""

    tag: str
    model_path: str
    labels: dict[str, str]
    info: dict[str, Any]

    @classmethod
    def of(cls, model: bentoml.models.BentoModel) -> BentoVersion:
        stored = model.stored
        if stored is None:
            raise RuntimeError(
                f"model {model.tag} is not in the BentoML model store; run `make serve` or `make bento`"
            )
        return cls(
            str(model.tag),
            stored.path_of("mlflow_model"),
            dict(stored.info.labels),
            dict(stored.info.metadata),
        )

    @property
    def profile(self) -> dict[str, dict[str, Any]]:
        return dict(self.info["feature_profile"])

    @property
    def id_field(self) -> str | None:
        return self.info.get("id_column")

    @property
    def version(self) -> str:
        return self.labels.get("registered_version", "unknown")


@dataclass(frozen=True)
class LoadedChampion:
    pipeline: Any
    served: ServedVersion
    scorer_check: dict[str, Any]


def load_champion(champion: BentoVersion) -> LoadedChampion:
    """The champion's pipeline (allow-listed types only) and its compiled scorer, checked
    against the pipeline here as at packaging time; a model that cannot score raises,
    so the service never turns ready."""
    logged = LoggedModel.load(champion.model_path)
    served, check = served_version(logged.pipeline, champion.info, champion.labels)
    served.answers.pipeline_raw(logged.pipeline, logged.input_example())
    return LoadedChampion(logged.pipeline, served, check)


def load_challenger_of(
    champion: BentoVersion, challenger: bentoml.models.BentoModel | None, mode: str
) -> tuple[ServedVersion | None, str | None]:
    """The challenger, or None and why the experiment is off. A challenger that cannot
    load or take the champion's requests turns the experiment off, never the service."""
    if mode == "off":
        return None, "serve.experiment.mode is off"
    if challenger is None:
        return None, "this bento holds no challenger (`mlops package --challenger VERSION`)"
    try:
        version = BentoVersion.of(challenger)
        served = load_challenger(version.model_path, version.info, version.labels, champion.info)
    except Exception as error:  # any failure of the challenger leaves the champion serving
        reason = f"challenger {challenger.tag} failed to load: {error}"
        logging.getLogger(__name__).error("the experiment is off: %s", reason)
        return None, reason
    return served, None
