"""What `mlops containerize` decides before any image is built: which bento, which engine,
which limits podman gets, and when a local base image cannot stand in."""

from __future__ import annotations

import json
import resource

import pytest

from mlops_starter.errors import PipelineError
from mlops_starter.serving import container
from mlops_starter.serving.container import Engine, clone_bento, find_engine, podman_config


def test_the_clone_bento_is_the_one_models_bento_json_names(tmp_path):
    built = tmp_path / "bento.json"
    built.write_text(json.dumps({"built": True, "bento": "churn-classifier-service:abc"}))
    assert clone_bento(built) == "churn-classifier-service:abc"


def test_no_bento_json_says_to_run_the_pipeline_or_name_a_version(tmp_path):
    with pytest.raises(
        PipelineError, match=r"bento.json not found: run `make run`.*VERSION=champion"
    ):
        clone_bento(tmp_path / "bento.json")


def test_a_version_that_failed_the_gate_has_no_image_and_says_which_checks(tmp_path):
    refused = tmp_path / "bento.json"
    refused.write_text(json.dumps({"built": False, "version": "7", "failed_checks": ["roc_auc"]}))
    with pytest.raises(PipelineError, match=r"version 7 failed the gate \(roc_auc\)"):
        clone_bento(refused)


def test_an_unknown_engine_setting_is_named(monkeypatch):
    monkeypatch.setenv("CONTAINER_ENGINE", "rkt")
    with pytest.raises(PipelineError, match=r"CONTAINER_ENGINE='rkt': expected one of"):
        find_engine()


def test_no_engine_on_path_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONTAINER_ENGINE", raising=False)
    with pytest.raises(PipelineError, match=r"install podman \(apt-get install podman"):
        find_engine()


def test_podman_gets_this_process_limits_and_runc(tmp_path):
    text = podman_config(tmp_path).read_text()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile != resource.RLIM_INFINITY:
        assert f'"nofile={nofile}:{nofile}"' in text
    assert 'runtime = "runc"' in text


@pytest.mark.parametrize("image", ["python:3.12-slim", "debian:bookworm", "python:3.11-alpine"])
def test_a_local_base_stands_in_for_python_3_11_slim_only(image):
    with pytest.raises(PipelineError, match=r"python:3.11-slim only"):
        container.local_base_image(Engine("podman"), image)
