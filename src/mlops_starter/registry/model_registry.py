"""The MLflow model registry as the deployment contract.

Serving and CD resolve `models:/<name>@champion`. Promotion and rollback move that
alias and nothing else; no version is ever deleted. Every move is written to the
registered model as a tag `alias_log.<seq>` (who, when, why, from, to), so the
history can be read back from MLflow alone. MLflow keeps no alias history of its
own, so a move made in the UI shows up as a gap between the log and the alias.

MLflow's alias API has no compare-and-set either, so two moves at once (CD promoting
while a person rolls back) would each log the champion they read before the other
moved it. Every move is therefore made under a lock kept in the registry itself: a
registered model named `<name>.alias-lock` that exists while a move is made. Creating
a registered model is atomic in every MLflow store (its name is unique), so of two
movers one creates it and the other waits its turn; the log stays a chain in which each
move's "from" is the previous move's "to".
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_starter.errors import PipelineError
from mlops_starter.tasks import Answers, answers_of

CHAMPION = "champion"
CHALLENGER = "challenger"
LOG_PREFIX = "alias_log."
GATE_TAG = "gate.passed"
CARD_TAG = "model_card"  # the card's artifact path in the version's training run
# "complete" once every step of the register stage ran for a version. A version without
# it was left half-made (the stage or the tracking server died): never promoted or
# packaged, and completed by the next run of the stage.
REGISTRATION_TAG = "registration"
# The moves that put a new version in place: what `rollback` undoes.
PROMOTIONS = frozenset({"promote", "auto-promote", "forced-promote", "experiment-promote"})
EXPERIMENT_END = "experiment-end"
LOCK_SUFFIX = ".alias-lock"
LOCK_TAG = "holder"
# A move takes a second or two: a lock older than this was left by a mover that died.
LOCK_LEASE_SECONDS = 120.0


def same_version(a: object, b: object) -> bool:
    """MLflow 3 gives a version number as an int, the CLI, tags and HTTP as a string:
    compare them as one type, everywhere."""
    return a is not None and b is not None and str(a) == str(b)


class RegistryError(PipelineError):
    """A registry action that cannot be done as asked (unknown version, failed gate, ...)."""


# What MLflow answers for a name, version or alias that is not there. Anything else (a
# timeout, a refused connection, a 5xx) is the server failing, never "not found": read as
# "no champion", a slow answer would let register promote a first version a second time.
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def _unreachable(exc: MlflowException) -> RegistryError:
    return RegistryError(f"the tracking server did not answer as expected: {exc.message}")


@dataclass(frozen=True)
class AliasMove:
    seq: int
    action: str  # one of PROMOTIONS, rollback, or experiment-end (the champion kept)
    from_version: str | None
    to_version: str
    actor: str
    at: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, logged: dict[str, Any]) -> AliasMove:
        """A logged move; earlier releases wrote `from_version` as MLflow's int."""
        source = logged["from_version"]
        return cls(
            **logged
            | {
                "from_version": None if source is None else str(source),
                "to_version": str(logged["to_version"]),
            }
        )


def chain_breaks(moves: list[AliasMove]) -> list[AliasMove]:
    """Moves whose "from" is not the previous move's "to": between the two, the champion
    was moved outside this CLI (in the MLflow UI, or through the API)."""
    return [
        move
        for before, move in itertools.pairwise(moves)
        if not same_version(move.from_version, before.to_version)
    ]


def moved_outside_cli(moves: list[AliasMove], champion_version: object) -> bool:
    """True when `champion` holds another version than the last logged move put there:
    someone moved it in the MLflow UI or through the API."""
    return (
        bool(moves)
        and champion_version is not None
        and not same_version(champion_version, moves[-1].to_version)
    )


class Registry:
    """One registered model in one MLflow registry."""

    def __init__(
        self, client: MlflowClient, model_name: str, lock_wait_seconds: float = 60.0
    ) -> None:
        self.client = client
        self.name = model_name
        self.lock_wait_seconds = lock_wait_seconds

    @classmethod
    def connect(cls, model_name: str, tracking_uri: str | None = None) -> Registry:
        """Uses MLFLOW_TRACKING_URI (or MLflow's local default) unless a URI is given."""
        return cls(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), model_name)

    def version_by_alias(self, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException as exc:
            if exc.error_code in _NOT_FOUND:
                return None  # no such model yet, or the alias is not set
            raise _unreachable(exc) from exc

    def champion(self) -> ModelVersion | None:
        return self.version_by_alias(CHAMPION)

    def version(self, version: str | int) -> ModelVersion:
        """A version by number (int or string) or by alias (champion, challenger)."""
        version = str(version)
        if version in (CHAMPION, CHALLENGER):
            found = self.version_by_alias(version)
            if found is None:
                raise RegistryError(f"model '{self.name}' has no version with alias '{version}'")
            return found
        try:
            return self.client.get_model_version(self.name, version)
        except MlflowException as exc:
            if exc.error_code in _NOT_FOUND:
                raise RegistryError(f"model '{self.name}' has no version {version}") from None
            raise _unreachable(exc) from exc

    def serving_metadata(self, version: ModelVersion) -> dict[str, Any]:
        """What the train stage wrote into the version's MLmodel for serving: threshold,
        positive label, id column, data hash, feature profile (nulls left out)."""
        uri = f"models:/{self.name}/{version.version}"
        try:
            metadata = mlflow.models.get_model_info(uri).metadata or {}
        except (MlflowException, OSError, ImportError) as exc:
            # ImportError: the artifact store's client (boto3, say) is not installed here.
            raise RegistryError(
                f"cannot read the model of '{self.name}' version {version.version} "
                f"({version.source}): {exc}"
            ) from exc
        return {key: value for key, value in metadata.items() if value is not None}

    def answers(self, version: ModelVersion, metadata: dict[str, Any]) -> Answers:
        """How `version` answers (its task's fields and decision rule), from its serving
        `metadata`; one that lacks what serving needs is refused, naming what."""
        missing = None if "feature_profile" in metadata else "'feature_profile'"
        try:
            answers = answers_of(metadata)
        except KeyError as key:
            missing = str(key)
        if missing:
            raise PipelineError(
                f"version {version.version} of '{self.name}' was logged without {missing} in "
                "its MLmodel metadata (older than serving support); retrain it with `make run`"
            )
        return answers

    def latest_from_runs(self, run_ids: list[str]) -> ModelVersion:
        """The newest version registered from any of `run_ids` (runs that logged the same
        model file)."""
        listed = ", ".join(f"'{run_id}'" for run_id in run_ids)
        found = self.client.search_model_versions(f"name = '{self.name}' and run_id IN ({listed})")
        if not found:
            raise RegistryError(
                f"no version of '{self.name}' was registered from the runs that logged this "
                f"model file ({', '.join(run_ids[:3])}{', ...' if len(run_ids) > 3 else ''})"
            )
        return max(found, key=lambda v: int(v.version))

    def unfinished_from_run(self, run_id: str) -> list[ModelVersion]:
        """Versions registered from `run_id` whose registration never finished, oldest first."""
        found = self.client.search_model_versions(f"name = '{self.name}' and run_id = '{run_id}'")
        unfinished = [
            v for v in found if v.tags.get(REGISTRATION_TAG) not in ("complete", "abandoned")
        ]
        return sorted(unfinished, key=lambda v: int(v.version))

    def resume(self, version: ModelVersion, tags: dict[str, str]) -> ModelVersion:
        """Finish a half-made version: (re)write its tags and point `challenger` at it."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version.version, key, value)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version.version)
        return self.client.get_model_version(self.name, version.version)

    def mark(self, version: ModelVersion, state: str) -> None:
        """Record how `version`'s registration ended: complete, or abandoned."""
        self.client.set_model_version_tag(self.name, version.version, REGISTRATION_TAG, state)

    def register(self, model_uri: str, run_id: str, tags: dict[str, str]) -> ModelVersion:
        """Add `model_uri` as a new version, tag it, and point `challenger` at it."""
        try:
            self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code not in _NOT_FOUND:
                raise _unreachable(exc) from exc
            self.client.create_registered_model(
                self.name, description="Managed by mlops_starter.registry"
            )
        # MLflow 3 logs models as `models:/m-<id>`; registering one needs that id spelled out.
        model_id = (
            model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        )
        created = self.client.create_model_version(
            self.name, model_uri, run_id=run_id, tags=tags, model_id=model_id
        )
        self.client.set_registered_model_alias(self.name, CHALLENGER, created.version)
        return created

    def attach_card(self, version: ModelVersion, card: str, summary: str) -> str:
        """Log the model card beside the version's training run, point the version's
        `model_card` tag at it and make `summary`, with where the card is, its description
        (shown in the UI)."""
        path = f"model_card_v{version.version}.md"
        self.client.log_text(str(version.run_id), card, path)
        self.client.set_model_version_tag(self.name, version.version, CARD_TAG, path)
        description = f"{summary} Model card: artifact {path} of run {version.run_id}."
        self.client.update_model_version(self.name, version.version, description=description)
        return path

    def card(self, version: ModelVersion) -> str | None:
        """The model card of `version`, or None if it was registered without one."""
        path = version.tags.get(CARD_TAG)
        if path is None:
            return None
        local = self.client.download_artifacts(str(version.run_id), path)
        return Path(local).read_text()

    def history(self) -> list[AliasMove]:
        tags = self.client.get_registered_model(self.name).tags
        moves = [json.loads(v) for k, v in tags.items() if k.startswith(LOG_PREFIX)]
        return [AliasMove.from_dict(m) for m in sorted(moves, key=lambda m: m["seq"])]

    @contextmanager
    def _champion_lock(self, actor: str, action: str) -> Iterator[None]:
        """Hold the registry's alias lock while the champion is read, moved and logged.
        A mover that finds it held waits its turn (up to lock_wait_seconds), then is
        refused naming who holds it; a lock older than its lease is taken over."""
        lock = self.name + LOCK_SUFFIX
        holder: dict[str, Any] = {
            "actor": actor,
            "action": action,
            "since": time.time(),
            "process": f"{socket.gethostname()}:{os.getpid()}",
            "token": uuid.uuid4().hex,
        }
        deadline = time.monotonic() + self.lock_wait_seconds
        while not self._take_lock(lock, holder):
            held = self._lock_holder(lock)
            if held is not None and time.time() - held["since"] > LOCK_LEASE_SECONDS:
                self._release_lock(lock, held["token"])  # its mover died mid-move
                continue
            if time.monotonic() > deadline:
                who = (
                    f"{held['actor']} ({held['action']}, process {held['process']}, since "
                    f"{datetime.fromtimestamp(held['since'], UTC).isoformat(timespec='seconds')})"
                    if held
                    else "another mover"
                )
                raise RegistryError(
                    f"the champion of '{self.name}' is being moved by {who}; nothing was moved: "
                    f"try again when that move is done (`mlops history` shows it)"
                )
            time.sleep(0.05 + random.random() * 0.2)  # noqa: S311 (jitter, not security)
        try:
            yield
        finally:
            self._release_lock(lock, holder["token"])

    def _take_lock(self, lock: str, holder: dict[str, Any]) -> bool:
        try:
            self.client.create_registered_model(
                lock,
                tags={LOCK_TAG: json.dumps(holder)},
                description=f"Held while the champion alias of '{self.name}' is moved; "
                "removed when the move is done.",
            )
        except MlflowException as exc:
            # Held by another mover; or held a moment ago: MLflow's store looks the holder
            # up after the failed insert, and finds it gone if it was released meanwhile.
            if exc.error_code in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                return False
            raise
        return True

    def _lock_holder(self, lock: str) -> dict[str, Any] | None:
        try:
            tags = self.client.get_registered_model(lock).tags
        except MlflowException:
            return None  # released meanwhile
        return json.loads(tags[LOCK_TAG]) if LOCK_TAG in tags else None

    def _release_lock(self, lock: str, token: str) -> None:
        """Delete the lock if it is still the one with this token (not a successor's)."""
        held = self._lock_holder(lock)
        if held is not None and held["token"] == token:
            with suppress(MlflowException):  # released meanwhile
                self.client.delete_registered_model(lock)

    def _logged(
        self, current: ModelVersion | None, to_version: str, action: str, actor: str, reason: str
    ) -> AliasMove:
        """Append a move to the alias log (registered-model tags, one per move). Called
        under the lock, with the champion read under it."""
        move = AliasMove(
            seq=len(self.history()) + 1,
            action=action,
            from_version=str(current.version) if current else None,
            to_version=str(to_version),
            actor=actor,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            reason=reason,
        )
        self.client.set_registered_model_tag(
            self.name, f"{LOG_PREFIX}{move.seq:06d}", json.dumps(move.to_dict())
        )
        return move

    def _move_champion(
        self, current: ModelVersion | None, to_version: str, action: str, actor: str, reason: str
    ) -> AliasMove:
        move = self._logged(current, to_version, action, actor, reason)
        self.client.set_registered_model_alias(self.name, CHAMPION, move.to_version)
        self.client.set_model_version_tag(self.name, move.to_version, "champion.since", move.at)
        self.client.set_model_version_tag(self.name, move.to_version, "champion.reason", reason)
        return move

    def _check_expected(self, current: ModelVersion | None, expected: str | None) -> None:
        if expected is not None and not same_version(
            current.version if current else None, expected
        ):
            raise RegistryError(
                f"the champion of '{self.name}' is version {current.version if current else 'unset'}, "
                f"not {expected} as this move expected (it was moved meanwhile): nothing was moved; "
                "read it again (report again) before acting"
            )

    def promote(
        self,
        version: str | int,
        actor: str,
        reason: str = "",
        force: bool = False,
        automatic: bool = False,
        by_experiment: bool = False,
        expect_champion: str | None = None,
    ) -> AliasMove | None:
        """Point `champion` at `version`. A version whose gate failed needs force and a reason.

        Idempotent: when `version` already is champion, nothing moves and None is returned.
        With `expect_champion`, refused unless that version is champion when the move is made.
        """
        target = self.version(version)
        if target.tags.get(REGISTRATION_TAG) != "complete":
            raise RegistryError(
                f"version {target.version} of '{self.name}' was left half-made (its registration "
                f"never finished: {REGISTRATION_TAG}={target.tags.get(REGISTRATION_TAG, 'missing')}); "
                "rerun `dvc repro` to complete it"
            )
        gate_passed = target.tags.get(GATE_TAG) == "true"
        if not gate_passed:
            if not force:
                raise RegistryError(
                    f"version {target.version} of '{self.name}' did not pass the gate "
                    f"({GATE_TAG}={target.tags.get(GATE_TAG, 'missing')}); promote with --force and --reason"
                )
            if not reason.strip():
                raise RegistryError(
                    "a forced promotion needs a --reason, which is recorded in the registry"
                )
        if not gate_passed:
            action = "forced-promote"
        elif by_experiment:
            action = "experiment-promote"
        else:
            action = "auto-promote" if automatic else "promote"
        with self._champion_lock(actor, action):
            current = self.champion()
            self._check_expected(current, expect_champion)
            if current is not None and same_version(current.version, target.version):
                return None
            move = self._move_champion(current, target.version, action, actor, reason or action)
        if not gate_passed:
            self.client.set_model_version_tag(
                self.name, target.version, "forced_promotion.reason", reason
            )
        return move

    def rollback(
        self, actor: str, to_version: str | int | None = None, reason: str = ""
    ) -> AliasMove | None:
        """Undo the latest promotion (or move `champion` to `to_version`).

        Idempotent: when `champion` already holds the target, nothing moves and None is returned.
        """
        with self._champion_lock(actor, "rollback"):
            current = self.champion()
            if to_version is None:
                promotions = [
                    m for m in self.history() if m.action in PROMOTIONS and m.from_version
                ]
                if not promotions:
                    raise RegistryError(f"'{self.name}' has no earlier champion to roll back to")
                to_version = str(promotions[-1].from_version)
            target = self.version(to_version)
            if current is not None and same_version(current.version, target.version):
                return None
            return self._move_champion(
                current, target.version, "rollback", actor, reason or "rollback"
            )

    def end_experiment(
        self,
        experiment: str,
        challenger: str | int,
        actor: str,
        reason: str,
        expect_champion: str | None = None,
    ) -> AliasMove | None:
        """Record in the alias log that `experiment` ended with the champion kept, and tag
        the challenger with why. Idempotent: a daily report that keeps saying "worse" ends
        the experiment once. With `expect_champion`, refused unless that one is champion."""
        tag = f"experiment.{experiment}.ended"
        with self._champion_lock(actor, EXPERIMENT_END):
            champion = self.champion()
            if champion is None:
                raise RegistryError(f"'{self.name}' has no champion to keep")
            self._check_expected(champion, expect_champion)
            target = self.version(challenger)  # read under the lock: ended once
            if tag in target.tags:
                return None
            self.client.set_model_version_tag(self.name, target.version, tag, reason)
            return self._logged(champion, str(champion.version), EXPERIMENT_END, actor, reason)
