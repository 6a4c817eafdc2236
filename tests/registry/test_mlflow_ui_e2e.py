"""Promotion in the MLflow UI, in a real headless Chromium: the alias the UI moves is the
one `mlops history` reads and the bento `make bento` builds. Nothing is mocked: a real
`mlflow ui` on the local store that two `dvc repro` runs filled, Debian's Chromium driven
by Playwright, and a real `bentoml serve` of the result."""

import re

import httpx
import pytest
from conftest import CHROMIUM_FLAGS, ONLY_LOGISTIC, chromium, mlflow_process, screenshot_path
from mlflow.tracking import MlflowClient
from playwright.sync_api import sync_playwright

from mlops_starter.serving.process import bentoml_server, free_port

pytestmark = pytest.mark.e2e

MODEL = "churn-classifier"


@pytest.fixture(scope="module")
def two_versions(repo_copy):
    """A local store where version 1 is champion and version 2, another model, challenger."""
    copy = repo_copy(ONLY_LOGISTIC)
    copy.run("dvc", "repro", timeout=900)
    copy.set_params({"train": {"candidates": {"logistic_regression": {"C": 0.3}}}})
    copy.run("dvc", "repro", timeout=900)
    copy.client = MlflowClient(tracking_uri=f"sqlite:///{copy.root}/mlflow.db")
    assert str(copy.client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert str(copy.client.get_model_version_by_alias(MODEL, "challenger").version) == "2"
    return copy


@pytest.fixture(scope="module")
def mlflow_ui(two_versions, tmp_path_factory):
    """`mlflow ui` on the copy's own store, as a newcomer starts it with `make ui`."""
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    with mlflow_process("ui", [], log, cwd=two_versions.root, env=two_versions.env) as url:
        yield url


def move_champion_in_the_ui(url: str, version: str, screenshot, versions_screenshot) -> None:
    """Open the version's page, add the `champion` alias in the alias dialog, save; then
    the registered model's page, where the aliases column shows the move."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/#/models/{MODEL}/versions/{version}")
            page.get_by_text(f"Version {version}", exact=True).wait_for()
            assistant = page.get_by_role("button", name="Close")  # MLflow's chat side panel
            if assistant.count():
                assistant.first.click()
            # "Add aliases" on a version with none, a pencil titled "Edit aliases" otherwise.
            page.get_by_title(re.compile(r"^(Add|Edit) aliases$")).click()
            dialog = page.get_by_role("dialog")
            aliases = dialog.get_by_role("combobox")
            aliases.fill("champion")
            aliases.press("Enter")
            # The UI warns that the alias leaves the version that holds it now.
            dialog.get_by_text(
                re.compile(r'"champion" alias is also being used on version 1')
            ).wait_for()
            page.screenshot(path=screenshot)
            dialog.get_by_role("button", name="Save aliases").click()
            dialog.wait_for(state="hidden")
            page.goto(f"{url}/#/models/{MODEL}")
            page.get_by_text("@ champion").first.wait_for()
            page.screenshot(path=versions_screenshot)
        finally:
            browser.close()


def test_champion_moved_in_the_ui_is_what_history_and_the_bento_follow(
    two_versions, mlflow_ui, tmp_path
):
    # Only the CLI (register's first promotion) has moved the alias so far: no note.
    before = two_versions.run("mlops", "history").stdout
    assert "champion: version 1" in before
    assert "moved outside this CLI" not in before

    screenshot = screenshot_path("mlflow-ui-promotion.png")
    versions = screenshot_path("mlflow-ui-versions.png")
    move_champion_in_the_ui(mlflow_ui, "2", str(screenshot), str(versions))
    assert screenshot.stat().st_size > 10_000 and versions.stat().st_size > 10_000

    assert str(two_versions.client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    history = two_versions.run("mlops", "history").stdout
    assert "champion: version 2" in history
    assert "moved outside this CLI (e.g. in the MLflow UI)" in history

    built = two_versions.run("mlops", "package", timeout=600).stdout  # what `make bento` runs
    bento = re.search(r"built bento (\S+) of churn-classifier version 2", built).group(1)
    env = two_versions.env | {"MLOPS_PREDICTION_LOG_DIR": str(tmp_path / "predictions")}
    with bentoml_server(bento, free_port(), tmp_path / "serve.log", env) as url:
        assert httpx.get(f"{url}/metadata", timeout=30).json()["version"] == "2"
