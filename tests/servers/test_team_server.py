"""Integration tests: the team server for real (MLflow's basic-auth app, PostgreSQL, SeaweedFS), used
by the course's clients with credentials from the environment, and its faults.

One server for the module (starting one costs 15-60 s); tests run in file order and build on each
other: users, a model, the pipelines that use it. The last one restarts the server with
``python -m helpers.servers.team_server`` and stops it with Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from playwright.sync_api import Error as PlaywrightError
from sklearn.linear_model import LinearRegression

from helpers.course.checks import CORRECT, INCORRECT, check, solution
from helpers.ml import models, registry
from helpers.orchestrate import mage
from helpers.serve import batch, service_process
from helpers.servers.object_store import start_object_store
from helpers.servers.processes import wait_until_ready
from helpers.servers.team_server import (
    ADMIN,
    BUCKET,
    load_credentials,
    start_team_server,
)

pytestmark = pytest.mark.servers

START_TIMEOUT = 240  # generous: CI machines are slow and the venv may hold no bytecode cache
# Generated, as the chapter's are: no password is written in the repository.
SCIENTIST, REVIEWER = ("ada", secrets.token_urlsafe(16)), ("rex", secrets.token_urlsafe(16))


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    base = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBOOK_BUILD_DIR", str(base / "build"))
        for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
            mp.delenv(name, raising=False)
        server = start_team_server(port=0, folder=base / "team-server", timeout=START_TIMEOUT)
        yield server
        server.stop()


@pytest.fixture
def login(team, monkeypatch):
    """Point MLflow at the team server and log in as someone, the way a client does: by environment."""
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
    # The clients never hold the object store's keys: the server proxies every artifact.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    mlflow.set_tracking_uri(team.url)

    def as_user(username: str, password: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        return MlflowClient(team.url)

    yield as_user
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def experiment_id(team):
    """The data scientist's experiment: created by the admin, EDIT for her, the default READ for the reviewer."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        mp.setenv("MLFLOW_TRACKING_PASSWORD", team.credentials.admin_password)
        auth = get_app_client("basic-auth", tracking_uri=team.url)
        for username, password in (SCIENTIST, REVIEWER):
            auth.create_user(username, password)
        experiment = MlflowClient(team.url).create_experiment("team-tests")
        auth.grant_user_permission(SCIENTIST[0], "experiment", experiment, "EDIT")
    return experiment


def test_without_credentials_the_server_answers_401_and_with_the_admins_200(team):
    search = f"{team.url}/api/2.0/mlflow/experiments/search?max_results=1"

    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=(ADMIN, team.credentials.admin_password), timeout=10).status_code == 200
    assert requests.get(f"{team.url}/health", timeout=10).text == "OK"  # readiness needs no login


@pytest.mark.browser
def test_the_ui_in_a_browser_asks_for_a_login_and_opens_for_the_admin(team, chromium):
    # The server answers with a login challenge, which headless Chromium, having no prompt to show,
    # cannot answer without a login given beforehand.
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        chromium.new_page().goto(team.url)
    refused = chromium.new_page(login=(ADMIN, "not-the-password"))
    assert refused.goto(team.url).status == 401
    chromium.expect(refused, refused.get_by_text("You are not authenticated"), "MLflow's refusal")

    admin = chromium.new_page(login=(ADMIN, team.credentials.admin_password))
    assert admin.goto(team.url).status == 200
    chromium.expect(admin, admin.get_by_role("link", name="Default", exact=True), "the Default experiment")
    chromium.screenshot(admin, "team-server")
    assert chromium.blocked == []


def test_a_wrong_password_gets_401_with_mlflows_message(team, login):
    client = login(ADMIN, "not-the-password")

    with pytest.raises(MlflowException, match="401") as error:
        client.search_experiments()

    assert "You are not authenticated" in str(error.value)


def test_the_reviewer_may_read_but_her_write_gets_403(team, login, experiment_id):
    client = login(*REVIEWER)

    assert client.get_experiment(experiment_id).name == "team-tests"
    with pytest.raises(MlflowException, match="403") as error:
        client.create_run(experiment_id)
    assert "Permission denied" in str(error.value)


def test_edit_does_not_delete_an_experiment_as_chapter_09s_exercise_answers(team, login, experiment_id):
    client = login(*SCIENTIST)
    with pytest.raises(MlflowException, match="403"):
        client.delete_experiment(experiment_id)
    assert check("09.delete_status", 403).status == CORRECT
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_a_model_logged_by_the_data_scientist_lands_in_the_bucket_and_loads_by_alias(team, login, experiment_id):
    login(*SCIENTIST)
    X = pd.DataFrame({"trip_distance": np.arange(10.0)})
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("rmse", 0.0)
        info = mlflow.sklearn.log_model(
            LinearRegression().fit(X, 2 * X.trip_distance + 1), name="model", pip_requirements=["scikit-learn"]
        )
    version = mlflow.register_model(info.model_uri, "team-test-model")
    MlflowClient().set_registered_model_alias("team-test-model", "champion", version.version)

    model = mlflow.pyfunc.load_model("models:/team-test-model@champion")

    assert model.predict(pd.DataFrame({"trip_distance": [20.0]}))[0] == pytest.approx(41.0)
    keys = [item["Key"] for item in team.object_store.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"{experiment_id}/models/{info.model_id}/artifacts/MLmodel" in keys
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied: the client never saw S3


@pytest.mark.mage
def test_a_mage_pipeline_trains_on_the_team_server(team, login):
    login(ADMIN, team.credentials.admin_password)

    mage.run_pipeline("sklearn_training").raise_for_status()

    challenger = registry.version_by_alias(registry.CHALLENGER)
    assert MlflowClient().get_run(challenger.run_id).info.run_name.startswith("mage-")
    MlflowClient().set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, challenger.version)


def test_batch_scoring_and_the_web_service_load_the_champion_through_the_team_server(team, login, tmp_path):
    login(ADMIN, team.credentials.admin_password)
    champion = registry.version_by_alias(registry.CHAMPION).version

    path = batch.run("green", 2021, 2, registry.champion_uri(), output_dir=tmp_path, progress=False)
    with service_process.start_service(registry.champion_uri(), port=0, workers=1) as service:
        answer = requests.post(
            f"{service.url}/predict", timeout=10, json={"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.5}
        ).json()

    assert set(pd.read_parquet(path).model_version) == {champion}
    assert answer["model_version"] == champion and answer["duration"] > 0
    assert models.current_version(registry.champion_uri()) == champion


def test_with_the_object_store_down_a_log_fails_clearly_and_works_once_it_is_back(
    team, login, experiment_id, monkeypatch, tmp_path
):
    client = login(*SCIENTIST)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail now rather than after minutes of retries
    note = tmp_path / "note.txt"
    note.write_text("kept in S3\n")
    run_id = client.create_run(experiment_id).info.run_id
    store = team.object_store
    store.stop()

    with pytest.raises(MlflowException, match="too many 500 error responses") as error:
        client.log_artifact(run_id, str(note))
    # MLflow's client retries 500s and then names the call; the server's log names the cause.
    assert f"mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/note.txt" in str(error.value)
    cause = f'Could not connect to the endpoint URL: "{store.endpoint_url}/'
    assert wait_until_ready(team.process, lambda: cause in team.log_path.read_text(), timeout=30) is None
    assert requests.get(f"{team.url}/health", timeout=10).text == "OK"  # the tracking server stays up

    team.object_store = start_object_store(
        store.data_dir, store.access_key, store.secret_key, store.log_path, port=store.port, ports=store.ports
    )
    client.log_artifact(run_id, str(note))
    assert [item.path for item in client.list_artifacts(run_id)] == ["note.txt"]


def test_a_port_in_use_is_named(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"Port {port} on 127.0.0.1 is already in use"):
            start_team_server(port=port, folder=tmp_path)
    assert not (tmp_path / "postgres").exists()  # refused before starting anything


def test_credentials_are_generated_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    first, created = load_credentials(tmp_path)
    again, created_again = load_credentials(tmp_path)

    assert created and not created_again and again == first
    assert len(first.admin_password) >= 12
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0


def test_the_admin_password_comes_from_the_environment_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "short")
    with pytest.raises(ValueError, match="at least 12 characters"):
        load_credentials(tmp_path)

    chosen = secrets.token_urlsafe(16)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", chosen)
    assert load_credentials(tmp_path)[0].admin_password == chosen


def _granting(permission: str):
    def grant_review(auth, username, experiment_id):
        auth.grant_user_permission(username, "experiment", experiment_id, permission)

    return grant_review


def test_the_grant_exercise_accepts_its_solution(team):
    namespace = {}
    exec(solution("09.grant"), namespace)  # noqa: S102 - the solution the chapter shows

    assert check("09.grant", namespace["grant_review"], server=team).status == CORRECT


@pytest.mark.parametrize(
    ("permission", "hint"),
    [("READ", "with READ the reviewer's tag still gets 403"), ("MANAGE", "MANAGE also lets him delete")],
)
def test_the_grant_exercise_explains_a_typical_wrong_answer(team, permission, hint):
    feedback = check("09.grant", _granting(permission), server=team)

    assert feedback.status == INCORRECT and hint in feedback.message


def test_the_grant_exercise_restores_the_learners_login_and_removes_its_experiment(team, login):
    login(*SCIENTIST)
    check("09.grant", _granting("EDIT"), server=team)

    assert os.environ["MLFLOW_TRACKING_USERNAME"] == SCIENTIST[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        mp.setenv("MLFLOW_TRACKING_PASSWORD", team.credentials.admin_password)
        names = [e.name for e in MlflowClient(team.url).search_experiments()]
    assert not [name for name in names if name.startswith("check-review-")]


# Kept last: it stops the module's server and starts it again from the command line.
def test_a_restart_keeps_runs_and_artifacts_and_ctrl_c_leaves_nothing(team, login, experiment_id, tmp_path):
    client = login(*REVIEWER)
    runs_before = {run.info.run_id for run in client.search_runs([experiment_id])}
    team.stop()
    env = {**os.environ, "WORKBOOK_TEAM_DIR": str(team.folder), "PYTHONUNBUFFERED": "1"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "helpers.servers.team_server", "--port", "0"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = _tracking_uri_from(cli)
        mlflow.set_tracking_uri(url)
        client = MlflowClient(url)
        assert {run.info.run_id for run in client.search_runs([experiment_id])} == runs_before
        model = mlflow.pyfunc.load_model("models:/team-test-model@champion")  # artifacts from S3
        assert model.predict(pd.DataFrame({"trip_distance": [1.0]}))[0] == pytest.approx(3.0)
        assert requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10).status_code == 401
    finally:
        os.killpg(cli.pid, signal.SIGINT)
        output = cli.communicate(timeout=120)[0]
    assert cli.returncode == 0, output
    assert "Stopping the team's MLflow server" in output
    assert team.credentials.admin_password not in output  # printed at the first start only
    assert not _processes_mentioning(str(team.folder))


def _tracking_uri_from(cli: subprocess.Popen) -> str:
    lines = []
    for line in cli.stdout:
        lines.append(line)
        if line.startswith("Tracking URI: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError("the team server printed no tracking URI:\n" + "".join(lines))


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line mentions ``text`` (PostgreSQL's and SeaweedFS's name their data folders)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return found
