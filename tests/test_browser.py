"""What a learner looks at, in a real browser: `make lab` running chapter 01, and the MLflow UI on a
store filled the way chapters 03-04 fill it. (The Mage UI and the team server's login are checked
in tests/test_mage.py and tests/test_team_server.py, on the servers those modules start anyway.)

Each check is a function that opens the page, waits for what a learner should see and raises
``PageCheckError`` when it is not there; the last tests point the same checks at a server that
serves a blank page, to show they fail. Screenshots go to ``config.screenshots_dir()``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import Page

from helpers.core import config
from helpers.course import runner as course
from helpers.ml import registry, tracking
from helpers.servers import mlflow_server
from helpers.servers.browser import LoopbackBrowser, PageCheckError
from helpers.servers.processes import (
    GroupProcess,
    claimed_port,
    ensure_ready,
    start_in_group,
)
from tests.support import Reply

pytestmark = [pytest.mark.browser, pytest.mark.servers]

CHAPTER_01 = config.REPO_ROOT / "notebooks" / "01_environment.ipynb"
LAB_START_SECONDS = 120


# --- The checks ----------------------------------------------------------------------------------


def run_notebook_in_lab(
    chromium: LoopbackBrowser, url: str, notebook: str, expected: str, timeout: float = 120
) -> None:
    """Open ``url`` (the lab's, with its token), open ``notebook`` from the file browser, run all its
    cells from the Run menu and wait for an output holding ``expected``."""
    page = chromium.new_page()
    page.goto(url)
    chromium.expect(
        page, page.get_by_text(notebook, exact=True), f"the file {notebook} in the file browser", timeout
    ).dblclick()
    chromium.expect(page, page.get_by_text("| Idle"), "the kernel ready (Idle)", timeout)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    output = page.locator(".jp-OutputArea-output").filter(has_text=expected)
    chromium.expect(page, output, f"the output {expected!r}", timeout).scroll_into_view_if_needed()
    chromium.screenshot(page, "lab-chapter-01")


def mlflow_runs_listed(
    chromium: LoopbackBrowser, url: str, experiment: str, run_names: list[str], timeout: float = 30
) -> None:
    """From the MLflow UI's home page, open ``experiment``'s training runs and see each run listed."""
    page = mlflow_page(chromium)
    page.goto(url)
    chromium.expect(
        page, page.get_by_role("link", name=experiment, exact=True), f"the experiment {experiment}", timeout
    ).click()
    chromium.expect(page, page.get_by_text("Training runs", exact=True), "the Training runs link", timeout).click()
    for name in run_names:
        chromium.expect(page, page.get_by_role("link", name=name, exact=True), f"the run {name}", timeout)
    _close_assistant(page)
    chromium.screenshot(page, "mlflow-runs")


def mlflow_run_metric(
    chromium: LoopbackBrowser, url: str, experiment_id: str, run_id: str, metric: str, value: float, timeout: float = 30
) -> None:
    """On a run's page, see ``metric`` with its ``value`` in the run's metrics table."""
    page = mlflow_page(chromium)
    page.goto(f"{url}/#/experiments/{experiment_id}/runs/{run_id}")
    row = (
        page.get_by_role("row")
        .filter(has=page.get_by_role("cell", name=metric, exact=True))
        .filter(has_text=repr(value))
    )
    chromium.expect(page, row, f"the metric {metric} = {value!r}", timeout).scroll_into_view_if_needed()
    _close_assistant(page)
    chromium.screenshot(page, "mlflow-run")


def mlflow_model_alias(
    chromium: LoopbackBrowser, url: str, model: str, version: str, alias: str, timeout: float = 30
) -> None:
    """On a registered model's page, see ``version`` listed with ``alias``."""
    page = mlflow_page(chromium)
    page.goto(f"{url}/#/models/{model}")
    row = page.get_by_role("row").filter(has_text=f"Version {version}").filter(has_text=f"@ {alias}")
    chromium.expect(page, row, f"version {version} of {model} with the alias {alias}", timeout)
    _close_assistant(page)
    chromium.screenshot(page, "mlflow-model")


def mlflow_page(chromium: LoopbackBrowser) -> Page:
    """A tab that dismisses MLflow's feature tours ("Got it") whenever one covers the page, as a learner does."""
    page = chromium.new_page()
    page.add_locator_handler(page.get_by_role("button", name="Got it", exact=True), lambda tour: tour.click())
    return page


def _close_assistant(page: Page) -> None:
    # MLflow 3 opens its chat assistant beside every page; a learner closes it to see the page, and
    # the screenshots are of the page.
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()


# --- make lab ------------------------------------------------------------------------------------


def lab_url(log: Path, port: int) -> str | None:
    """The URL with its token that `make lab` prints, once it has printed it."""
    found = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=\w+", log.read_text(errors="replace"))
    return found.group(0) if found else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """`make lab` on a free port, on a copy of chapter 01 (so running it leaves the committed one as it
    is), with JupyterLab's news prompt off; yields the URL it printed."""
    base = tmp_path_factory.mktemp("lab")
    (base / "notebooks").mkdir()
    shutil.copy(CHAPTER_01, base / "notebooks")
    (base / "config").mkdir()
    (base / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"root_dir": str(base / "notebooks")}})
    )
    notification = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
    }
    log = base / "lab.log"
    with claimed_port("127.0.0.1", 0) as port:
        command = ["make", "--no-print-directory", "lab", f"LAB_PORT={port}"]
        server = GroupProcess(start_in_group(command, env, log, cwd=config.REPO_ROOT), log)
        ensure_ready(
            server,
            command,
            lambda: lab_url(log, port) is not None,
            label="make lab",
            what="its URL with the token",
            timeout=LAB_START_SECONDS,
        )
    yield lab_url(log, port)
    server.stop()


def test_make_lab_runs_chapter_01_through_the_ui_to_its_key_result(lab, chromium):
    expected = course.key_result(nbformat.read(CHAPTER_01, as_version=4))
    assert expected and "trips" in expected

    run_notebook_in_lab(chromium, lab, CHAPTER_01.name, expected)

    assert chromium.blocked == []


# --- The MLflow UI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_ui(store):
    """An MLflow server on a store holding what chapters 03-04 leave: runs in the course's experiment
    and the registered model with its champion."""
    registry.ensure_candidates(2)
    champion = registry.ensure_champion()
    with mlflow_server.start_server(port=0, backend_uri=mlflow.get_tracking_uri()) as server:
        yield server, champion


def test_the_mlflow_ui_lists_the_experiments_runs(mlflow_ui, chromium):
    server, _ = mlflow_ui
    experiment = MlflowClient().get_experiment_by_name(tracking.EXPERIMENT_NAME)
    names = [run.info.run_name for run in MlflowClient().search_runs([experiment.experiment_id])]
    assert len(names) >= 2

    mlflow_runs_listed(chromium, server.url, tracking.EXPERIMENT_NAME, names)

    assert chromium.blocked == []


def test_the_mlflow_ui_shows_a_runs_metrics(mlflow_ui, chromium):
    server, champion = mlflow_ui
    run = MlflowClient().get_run(champion.run_id)

    mlflow_run_metric(chromium, server.url, run.info.experiment_id, run.info.run_id, "rmse", run.data.metrics["rmse"])

    assert chromium.blocked == []


def test_the_mlflow_ui_shows_the_registered_model_with_its_champion(mlflow_ui, chromium):
    server, champion = mlflow_ui

    mlflow_model_alias(chromium, server.url, registry.MODEL_NAME, str(champion.version), registry.CHAMPION)

    assert chromium.blocked == []


# --- The same checks on a page that is not the expected one --------------------------------------


@pytest.fixture
def blank_server(tlc_server) -> str:
    """A server on loopback that answers every path with an empty page."""
    tlc_server.default = [Reply(200, b"<!doctype html><html><body></body></html>", content_type="text/html")]
    return tlc_server.url


def test_the_lab_check_fails_on_a_server_that_is_not_jupyterlab(blank_server, chromium):
    with pytest.raises(PageCheckError, match=r"does not show the file 01_environment\.ipynb .* The page shows no text"):
        run_notebook_in_lab(chromium, f"{blank_server}/lab?token=abc", CHAPTER_01.name, "76,518 trips", timeout=2)


def test_the_mlflow_checks_fail_on_a_server_that_is_not_mlflow(blank_server, chromium):
    with pytest.raises(PageCheckError, match="does not show the experiment nyc-taxi-experiment after 2 s"):
        mlflow_runs_listed(chromium, blank_server, tracking.EXPERIMENT_NAME, ["a-run"], timeout=2)
    with pytest.raises(PageCheckError, match="does not show version 1 of nyc-taxi-duration with the alias champion"):
        mlflow_model_alias(chromium, blank_server, registry.MODEL_NAME, "1", registry.CHAMPION, timeout=2)


# --- The README's screenshots --------------------------------------------------------------------


def test_the_readme_shows_every_screenshot_make_screenshots_takes_and_they_stay_small():
    makefile = (config.REPO_ROOT / "Makefile").read_text()
    names = re.search(r"^SCREENSHOTS := (.+)$", makefile, re.M).group(1).split()
    readme = (config.REPO_ROOT / "README.md").read_text()
    shown = re.findall(r"\(docs/screenshots/([\w-]+)\.png\)", readme)
    assert shown == names
    sizes = [(config.REPO_ROOT / "docs" / "screenshots" / f"{name}.png").stat().st_size for name in names]
    assert sum(sizes) < 1_000_000
