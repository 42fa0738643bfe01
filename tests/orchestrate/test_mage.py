"""Chapter 05's Mage project, for real: every pipeline with ``mage run`` in ``.venv-mage``, then the
Mage server on loopback with its triggers (API, sensor, schedule) and its failure alert.

The module has its own MLflow store, data cache and ``MAGE_DATA_DIR``, so the registry versions it
creates never show up in another module's or chapter's. Tests run in file order and build
on each other like the chapter does: prepare, train, deploy, serve, score.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import tempfile
import time
import tomllib
import warnings
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from helpers.core import config, twin
from helpers.core.tlc import trip_filename
from helpers.ml import models, registry
from helpers.monitor import alerts, retraining
from helpers.orchestrate import mage
from helpers.serve import service_process
from tests.support import import_graph, imported_modules


@pytest.fixture(scope="module", autouse=True)
def mage_home(store, tmp_path_factory):
    """Own data cache and build dir (so MAGE_DATA_DIR too) for the module, on the module's store."""
    base = tmp_path_factory.mktemp("mage-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBOOK_DATA_DIR", str(base / "data"))
        mp.setenv("WORKBOOK_BUILD_DIR", str(base / "build"))
        yield base


def project_files() -> dict[str, str]:
    """The committed files of the project and their hashes (Mage's git-ignored run files left out)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "orchestration"], cwd=config.REPO_ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    return {name: hashlib.sha256((config.REPO_ROOT / name).read_bytes()).hexdigest() for name in listed if name}


@pytest.fixture(scope="module")
def committed_project():
    return project_files()


def lock_versions(text: str) -> dict[str, str]:
    return {name.lower(): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", text, re.M)}


def test_the_mage_environment_builds_models_from_the_course_versions():
    mage_pins = lock_versions((config.REPO_ROOT / "orchestration" / "requirements.lock").read_text())
    course = {
        package["name"]: package["version"]
        for package in tomllib.loads((config.REPO_ROOT / "uv.lock").read_text())["package"]
    }
    for name in ("scikit-learn", "pandas", "xgboost-cpu", "skops", "pyarrow", "hyperopt"):
        assert mage_pins[name] == course[name], name
    assert mage_pins["mlflow-skinny"] == course["mlflow"]
    assert mage_pins["mage-ai"] == "0.9.80"


def helpers_modules_used_by_blocks() -> set[str]:
    """Every helpers module a block imports, directly or through the imports those modules run
    (``"serve.batch"``; not the Spark engine, which batch imports only when asked for)."""
    graph = import_graph(at_import=True)
    todo = set().union(
        *(imported_modules(path.read_text(), graph, at_import=True) for path in mage.PROJECT_DIR.rglob("*.py"))
    )
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        seen.add(module)
        todo |= graph[module] - seen
    return seen


def test_every_helpers_module_the_blocks_run_is_tested_in_the_mage_environment():
    listed = {name.removeprefix("tests/").removesuffix(".py") for name in mage_tests()}
    tests = {module: module.replace(".", "/test_", 1) for module in helpers_modules_used_by_blocks()}
    tested = {test for test in tests.values() if (config.REPO_ROOT / "tests" / f"{test}.py").exists()}
    assert tested - listed == set()
    assert {"orchestrate/test_pipelines", "ml/test_tracking", "ml/test_registry", "serve/test_batch"} <= tested


def mage_tests() -> list[str]:
    """The Makefile's ``MAGE_TESTS``: the tests of the modules Mage's blocks run."""
    makefile = (config.REPO_ROOT / "Makefile").read_text()
    return re.findall(r"tests/\w+/test_\w+\.py", makefile.split("MAGE_TESTS :=")[1].split("\n\n")[0])


@pytest.mark.mage
def test_the_modules_mages_blocks_run_pass_their_tests_in_mages_own_environment(tmp_path):
    # A test of its own rather than a second pytest after this one, so it runs beside the learner's path.
    result = subprocess.run(
        [
            str(mage.MAGE_VENV / "bin" / "python"),
            "-m",
            "pytest",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "-q",
            "--basetemp",
            str(tmp_path / "basetemp"),
            *mage_tests(),
        ],
        cwd=config.REPO_ROOT,
        env=config.learner_environ({"WORKBOOK_OFFLINE": "1", "WORKBOOK_QUICK": "1"}),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_without_mage_installed_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(mage, "MAGE_VENV", tmp_path / "no-venv")
    with pytest.raises(mage.MageNotInstalledError, match="make mage-setup"):
        mage.run_pipeline("data_preparation")


def test_the_project_lists_every_pipeline_with_block_files_that_exist():
    blocks = mage.describe()
    assert list(blocks.pipeline.unique()) == [
        "data_preparation",
        "sklearn_training",
        "xgboost_training",
        "deploying",
        "batch_inference",
        "retraining",
    ]
    for file in blocks.file:
        assert (mage.PROJECT_DIR / file).exists(), file
    assert blocks.query("pipeline == 'retraining'").iloc[0].type == "sensor"


def test_an_unknown_pipeline_is_named_with_the_choices():
    with pytest.raises(ValueError, match="no pipeline 'training'.*data_preparation"):
        mage.run_pipeline("training")


def test_a_copy_of_the_project_is_made_fresh_each_time():
    target = config.build_dir() / "05_orchestration" / "project"
    copy = mage.copy_project(target)
    assert mage.pipeline_names(copy) == mage.pipeline_names()
    (copy / "transformers" / "build_sets.py").write_text("a learner's block")
    (copy / "transformers" / "extra.py").write_text("a file of the first run")
    outputs = mage.data_dir() / target.name / "pipelines" / "data_preparation" / ".variables"
    outputs.mkdir(parents=True)

    mage.copy_project(target)

    assert (copy / "transformers" / "build_sets.py").read_text() == (
        mage.PROJECT_DIR / "transformers" / "build_sets.py"
    ).read_text()
    assert not (copy / "transformers" / "extra.py").exists() and not outputs.exists()


# What `mage run` printed for a block whose second test failed, as run_pipeline keeps it (traceback frames cut).
FAILED_RUN = """green: train 2021-01, validate 2021-02
--------------------------------------------------------------
1/1 tests passed.
==============================================================
FAIL: test_sets (block: build_sets)
--------------------------------------------------------------
Traceback (most recent call last):
RuntimeError: no running event loop
During handling of the above exception, another exception occurred:
Traceback (most recent call last):
  File "<string>", line 13, in test_sets
AssertionError: too long a ride
--------------------------------------------------------------
1/2 tests passed.
Exception: Failed to pass tests for block build_sets"""


def test_a_runs_test_results_are_read_from_what_mage_printed():
    run = mage.PipelineRun("data_preparation", 1, 8.0, FAILED_RUN)
    assert not run.ok
    assert run.tests_passed() == [(1, 1), (1, 2)]
    assert run.failed_tests() == {"build_sets.test_sets": "AssertionError: too long a ride"}
    assert run.error() == "Exception: Failed to pass tests for block build_sets"


@pytest.mark.mage
@pytest.mark.servers
def test_data_preparation_builds_train_and_validation_sets(committed_project):
    run = mage.run_pipeline("data_preparation").raise_for_status()
    assert run.output.count("tests passed") == 3
    sets = mage.block_output("data_preparation", "build_sets")
    assert sets.groupby("split").size().to_dict() == {"train": 73_711, "validation": 61_936}
    assert sets.duration.between(1, 60).all()


@pytest.mark.mage
@pytest.mark.servers
def test_a_failing_data_test_fails_the_run_and_says_why():
    run = mage.run_pipeline("data_preparation", {"train_month": "2021-03", "validation_month": "2021-02"})
    assert not run.ok
    with pytest.raises(mage.PipelineFailedError, match="must come after training month 2021-03"):
        run.raise_for_status()


@pytest.mark.mage
@pytest.mark.servers
def test_sklearn_training_tracks_runs_and_registers_a_challenger():
    mage.run_pipeline("sklearn_training").raise_for_status()
    trained = mage.block_output("sklearn_training", "train_sklearn")
    assert set(trained["candidates"]) == {"LinearRegression", "Ridge"}
    challenger = registry.version_by_alias(registry.CHALLENGER)
    assert challenger.run_id == trained["run_id"]
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("nyc-taxi-experiment").experiment_id])
    assert {run.info.run_name for run in runs} >= {"mage-LinearRegression", "mage-Ridge"}


@pytest.mark.mage
@pytest.mark.servers
def test_deploying_promotes_the_first_challenger():
    mage.run_pipeline("deploying").raise_for_status()
    decision = mage.block_output("deploying", "promote_challenger")
    assert decision["promoted"] and decision["reason"] == "there was no champion yet"
    assert str(registry.version_by_alias(registry.CHAMPION).version) == decision["challenger"]


@pytest.mark.mage
@pytest.mark.servers
def test_a_pipeline_model_loads_in_the_course_environment_without_version_warnings(caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        model = models.load(registry.champion_uri())
    assert model.predict([{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.5}])[0] > 0
    complaints = [str(w.message) for w in caught] + [record.getMessage() for record in caplog.records]
    assert not [text for text in complaints if "mismatch" in text.lower() or "version" in text.lower()]


@pytest.fixture(scope="module")
def service(mage_home):
    """The chapter 07 web service under gunicorn, on the champion alias, re-checking it every second."""
    with service_process.start_service(registry.champion_uri(), port=0, env={"MODEL_REFRESH_SECONDS": "1"}) as svc:
        yield svc


@pytest.mark.mage
@pytest.mark.servers
def test_deploying_a_better_challenger_moves_the_champion_and_the_service_follows(service):
    import requests

    before = requests.get(f"{service.url}/health", timeout=5).json()["model_version"]
    # Five trials, so the boosted model reliably beats the linear champion even in quick mode.
    mage.run_pipeline("xgboost_training", {"max_evals": 5}).raise_for_status()
    mage.run_pipeline("deploying", {"service_url": service.url}).raise_for_status()
    decision = mage.block_output("deploying", "promote_challenger")
    assert decision["promoted"], decision["reason"]
    served = mage.block_output("deploying", "check_serving")
    assert served["served"] == served["champion"] == decision["challenger"] != before
    answer = requests.post(
        f"{service.url}/predict", json={"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.5}, timeout=5
    ).json()
    assert answer["model_version"] == decision["challenger"]


@pytest.mark.mage
@pytest.mark.servers
def test_batch_inference_scores_a_month_with_the_champion():
    mage.run_pipeline("batch_inference", {"month": "2021-02"}).raise_for_status()
    summary = mage.block_output("batch_inference", "score_month")
    assert summary["rides"] == 64_572
    assert summary["model_version"] == str(registry.version_by_alias(registry.CHAMPION).version)
    assert Path(summary["path"]).is_relative_to(config.build_dir() / "predictions")


def land_month(year: int, month: int) -> None:
    """Put a month's file where downloads land, as if the TLC had just published it."""
    path = config.data_dir() / trip_filename("green", year, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(twin.make_twin("green", year, month), path)


@pytest.mark.mage
@pytest.mark.servers
def test_retraining_runs_straight_through_when_its_month_is_there_and_copies_the_champion():
    champion = registry.ensure_champion()  # the earlier tests made one; alone, this one does
    before = len(MlflowClient().search_model_versions(f"name='{registry.MODEL_NAME}'"))
    land_month(2021, 2)
    mage.run_pipeline("retraining", {"train_month": "2021-01"}).raise_for_status()
    assert len(MlflowClient().search_model_versions(f"name='{registry.MODEL_NAME}'")) == before + 1
    trained = mage.block_output("retraining", "train_champion_recipe")
    assert trained["recipe"] == registry.recipe(champion).tags()
    challenger = registry.version_by_alias(registry.CHALLENGER)
    assert challenger.tags[registry.RECIPE_VERSION_TAG] == str(champion.version)
    copied, original = registry.recipe(challenger), registry.recipe(champion)
    assert (copied.estimator, copied.params) == (original.estimator, original.params)


# --- The server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inbox():
    with alerts.AlertInbox() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(inbox, mage_home):
    with mage.start_server(port=0, alert_webhook=inbox.url) as running:
        yield running


@pytest.mark.mage
@pytest.mark.servers
def test_the_api_trigger_runs_inference_to_success(server):
    run_id = server.trigger("inference_api", {"month": "2021-01"})
    run = server.wait(run_id, timeout=180)
    assert run["status"] == "completed", server.block_statuses(run_id)
    predictions = (
        config.build_dir() / "predictions" / "taxi_type=green" / "year=2021" / "month=01" / "predictions.parquet"
    )
    assert pq.read_metadata(predictions).num_rows == 76_518


@pytest.mark.mage
@pytest.mark.servers
def test_a_failed_run_shows_the_failed_block_and_delivers_the_alert(server, inbox):
    run_id = server.trigger("inference_api", {"model_uri": "models:/nyc-taxi-duration@no-such-alias"})
    assert server.wait(run_id, timeout=180)["status"] == "failed"
    assert server.block_statuses(run_id) == {"score_month": "failed"}
    alert = inbox.wait_for("batch_inference", timeout=60)
    assert alert.title == "Failed to run Mage pipeline batch_inference"
    assert "Failed blocks: score_month" in alert.text


# How the Mage UI labels a run's status (its runs page's status filter).
UI_STATUS = {
    "completed": "Done",
    "failed": "Failed",
    "running": "Running",
    "cancelled": "Cancelled",
    "initial": "Ready",
}


@pytest.mark.mage
@pytest.mark.servers
def test_the_mage_ui_lists_the_pipelines_and_the_status_of_the_triggered_runs(server, chromium):
    # Mage's front end is known to assume its default port; this server listens on another.
    assert server.port != mage.DEFAULT_PORT
    page = chromium.new_page(timeout=60)
    page.goto(f"{server.url}/pipelines")
    for name in mage.pipeline_names():
        chromium.expect(page, page.get_by_role("link", name=name, exact=True), f"the pipeline {name}")
    chromium.screenshot(page, "mage-pipelines")

    runs = [
        run
        for run in server.api("GET", "pipeline_runs", params={"_limit": 50})["pipeline_runs"]
        if run["pipeline_uuid"] == "batch_inference"
    ]
    assert {run["status"] for run in runs} >= {"completed", "failed"}  # the two triggers above
    page.goto(f"{server.url}/pipelines/batch_inference/runs")
    for run in runs:
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=str(run["id"]), exact=True))
        chromium.expect(
            page, row.filter(has_text=UI_STATUS[run["status"]]), f"run {run['id']} as {UI_STATUS[run['status']]}"
        )
    chromium.screenshot(page, "mage-runs")

    # The editor runs blocks in a kernel over a web socket: where the port mix-up would show.
    with page.expect_websocket():
        page.goto(f"{server.url}/pipelines/batch_inference/edit")
    chromium.expect(page, page.get_by_text("def score_month"), "the code of the block score_month")
    assert {urlparse(url).port for url in chromium.web_sockets} == {server.port}
    assert chromium.blocked == []


@pytest.mark.mage
@pytest.mark.servers
def test_the_sensor_starts_retraining_when_the_new_month_lands(server):
    def versions() -> int:
        return len(MlflowClient().search_model_versions(f"name='{registry.MODEL_NAME}'"))

    before = versions()
    run_id = server.trigger("retrain_api", {"train_month": "2021-04"})  # waits for May 2021
    server.wait(run_id, timeout=120, until=("running",))
    time.sleep(5)
    assert server.run(run_id)["status"] == "running" and versions() == before  # held by the sensor
    land_month(2021, 5)
    run = server.wait(run_id, timeout=240)
    assert run["status"] == "completed", server.block_statuses(run_id)
    assert versions() == before + 1
    newest = max(int(v.version) for v in MlflowClient().search_model_versions(f"name='{registry.MODEL_NAME}'"))
    assert str(registry.version_by_alias(registry.CHALLENGER).version) == str(newest)


@pytest.mark.mage
@pytest.mark.servers
def test_a_client_uses_only_a_mage_server_of_this_checkout(server, monkeypatch, tmp_path):
    assert mage.MageClient(server.url).answers()
    # Another clone's `make mage` on the same port would train on that clone's code and stores.
    monkeypatch.setattr(mage, "PROJECT_DIR", tmp_path / "another-clone" / "orchestration")
    assert not mage.MageClient(server.url).answers()


@pytest.mark.mage
@pytest.mark.servers
def test_monitoring_retrains_through_mage_when_it_runs(server):
    land_month(2021, 6)
    champion = registry.ensure_champion()  # the earlier tests made one; alone, this one does
    retrained = retraining.retrain("2021-05", mage_url=server.url)
    assert (retrained.via, retrained.validation_month) == ("mage", "2021-06")
    assert retrained.recipe_version == str(champion.version)
    assert set(retrained.blocks.values()) == {"completed"} and "register_challenger" in retrained.blocks
    assert str(registry.version_by_alias(registry.CHALLENGER).version) == retrained.version


@pytest.mark.mage
@pytest.mark.servers
def test_the_monthly_schedule_is_live(server):
    monthly = server.schedule("retrain_monthly")
    assert (monthly["schedule_type"], monthly["schedule_interval"], monthly["status"]) == ("time", "@monthly", "active")
    assert pd.Timestamp(monthly["next_pipeline_run_date"]).day == 1


@pytest.mark.mage
@pytest.mark.servers
def test_running_mage_leaves_the_committed_project_unchanged(server, committed_project):
    assert project_files() == committed_project


# Kept last: it stops the module's server.
@pytest.mark.mage
@pytest.mark.servers
def test_a_stopped_server_leaves_nothing_in_the_temp_folder(server):
    scratch = server.scratch
    assert scratch.parent == Path(tempfile.gettempdir())
    assert any(scratch.glob("tmp*.json")), "no kernel connection file in the server's folder: nothing to prove"

    server.stop()

    assert not scratch.exists()
