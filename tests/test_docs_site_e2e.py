"""The docs site as a reader meets it: built with `mkdocs build --strict` (a broken link
or anchor fails the build), served over HTTP, and opened in a real headless Chromium that
follows every link of the tutorial and finds each page of the navigation."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from functools import partial
from urllib.parse import urljoin, urlparse

import pytest
import yaml
from conftest import CHROMIUM_FLAGS, REPO_ROOT, VENV_BIN, chromium
from playwright.sync_api import sync_playwright

from mlops_starter.serving.process import free_port

pytestmark = pytest.mark.e2e


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built site without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site `make docs` builds, served on a free loopback port."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "docs/generate.py", "--check"], cwd=REPO_ROOT, check=True)
    built = subprocess.run(
        [str(VENV_BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    handler = partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def open_page(browser, url: str):
    page = browser.new_page()
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    return page


def test_the_tutorial_links_lead_to_pages_that_exist(site, browser):
    page = open_page(browser, urljoin(site, "tutorial/"))
    assert page.locator("h1").first.inner_text().startswith("Tutorial")
    links = page.locator("article a[href]").evaluate_all("links => links.map(a => a.href)")
    internal = sorted({link.split("#")[0] for link in links if link.startswith(site)})
    assert len(internal) >= 10, internal
    for link in internal:
        target = open_page(browser, link)
        assert target.locator("article h1").count() == 1, f"{link} has no title"
        target.close()
    images = page.locator("article img").evaluate_all(
        "imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert images and all(width > 0 for _, width in images), images


def test_every_page_of_the_navigation_is_in_the_site(site, browser):
    # mkdocs.yml names a Python function (the mermaid fence): read only its nav.
    text = (REPO_ROOT / "mkdocs.yml").read_text()
    nav = nav_pages(yaml.safe_load(text[text.index("\nnav:") :])["nav"])
    for source in nav:
        path = "" if source == "index.md" else source.removesuffix(".md") + "/"
        page = open_page(browser, urljoin(site, path))
        assert page.locator("article h1").count() == 1, f"{source}: no title"
        page.close()


def test_the_home_page_shows_the_plots_drawn_from_plots(site, browser):
    page = open_page(browser, site)
    sources = page.locator("article img").evaluate_all(
        "imgs => imgs.filter(i => i.naturalWidth > 0).map(i => i.getAttribute('src'))"
    )
    names = {urlparse(src).path.rsplit("/", 1)[-1] for src in sources}
    assert {"roc.png", "pr.png", "calibration.png"} <= names


def test_the_reference_pages_are_generated_in_the_site(site, browser):
    params = open_page(browser, urljoin(site, "reference/params/"))
    assert params.get_by_text("train.threshold_fbeta", exact=True).count() == 1
    cli = open_page(browser, urljoin(site, "reference/cli/"))
    assert cli.locator("h3", has_text="mlops promote").count() == 1
    api = open_page(browser, urljoin(site, "reference/python-api/"))
    assert api.get_by_text("mlops_starter.config", exact=False).count() >= 1
