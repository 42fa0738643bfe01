"""Integration tests: the service's Docker image, built from the Dockerfile and run as a container.

The module builds the image once (on a machine without an image registry, from a base made of
Debian packages) and runs it on the host's network: the model comes from a tracking server that
proxies its artifacts, as a team serves it, or from a mounted folder. Without a Docker daemon
the tests skip, and with CI=true they fail instead (.ci/run starts one).
"""

from __future__ import annotations

import time

import mlflow
import pytest
import requests
from sklearn.linear_model import LinearRegression
from test_serving import RIDE

from helpers import container, mlflow_server, registry
from helpers.training import save_model, train_pipeline
from tests.conftest import registered_champion, skip_or_fail_in_ci

pytestmark = pytest.mark.xdist_group("docker")

IMAGE = "ride-duration:test"
MODEL_NAME = "container-tests"
START_TIMEOUT = 180
SERVICE_USER = "10001"  # the Dockerfile's `USER`


@pytest.fixture(scope="module")
def image() -> str:
    missing = container.daemon_missing()
    if missing:
        skip_or_fail_in_ci(missing)
    container.build_image(IMAGE, container.default_base_image())
    return IMAGE


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory, months):
    """A tracking server proxying its artifacts, with a champion logged through it."""
    folder = tmp_path_factory.mktemp("tracking")
    with mlflow_server.start_server(port=0, backend_uri=f"sqlite:///{folder / 'mlflow.db'}",
                                    artifacts_dir=folder / "artifacts", timeout=START_TIMEOUT) as server:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", server.url)
            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(server.url)
            version = registered_champion(MODEL_NAME, months)
            pipeline = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{registry.CHAMPION}")
            mlflow.set_tracking_uri(previous)
        yield server, version, pipeline


@pytest.fixture(scope="module")
def champion_container(image, tracking_server):
    server, _, _ = tracking_server
    env = {"MLFLOW_TRACKING_URI": server.url, "MODEL_URI": f"models:/{MODEL_NAME}@{registry.CHAMPION}"}
    with container.run_container(image, env, port=0, health_interval="1s", timeout=START_TIMEOUT) as running:
        yield running


def test_a_missing_docker_client_is_named(monkeypatch):
    monkeypatch.setenv("WORKBOOK_DOCKER", "no-such-docker")
    assert container.daemon_missing().startswith("No `no-such-docker` command")


def test_the_container_answers_ping(champion_container):
    response = requests.get(f"{champion_container.url}/ping", timeout=10)
    assert (response.status_code, response.text) == (200, "PONG")


def test_the_container_predicts_the_champion_from_the_tracking_server(champion_container, tracking_server):
    _, version, pipeline = tracking_server

    answer = requests.post(f"{champion_container.url}/predict", json=RIDE, timeout=10).json()

    assert answer == {"duration": pytest.approx(pipeline.predict([RIDE])[0]), "model_version": version}


def test_a_bad_ride_gets_a_422_naming_its_field(champion_container):
    response = requests.post(f"{champion_container.url}/predict", json={**RIDE, "trip_distance": -1.5}, timeout=10)

    assert (response.status_code, response.json()["field"]) == (422, "trip_distance")


def test_the_healthcheck_reports_healthy(champion_container):
    deadline = time.monotonic() + 60
    while champion_container.health() != "healthy" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert champion_container.health() == "healthy"


def test_the_service_does_not_run_as_root(champion_container):
    assert champion_container.process_users() == {SERVICE_USER}


def test_the_model_loads_with_no_version_warning(champion_container):
    log = champion_container.log_path.read_text()

    assert "Booting worker" in log  # gunicorn's own log reaches the file, so a warning would too
    assert "mismatch" not in log and "InconsistentVersionWarning" not in log


def test_a_mounted_model_is_served(image, months, tmp_path):
    pipeline = train_pipeline(LinearRegression(), months[0])
    save_model(pipeline, tmp_path / "lin_reg.bin")
    tmp_path.chmod(0o755)  # the container's user is not the test's

    with container.run_container(image, {"MODEL_URI": "/models/lin_reg.bin"}, port=0,
                                 volumes={tmp_path: "/models"}, timeout=START_TIMEOUT) as mounted:
        answer = requests.post(f"{mounted.url}/predict", json=RIDE, timeout=10).json()

    assert answer == {"duration": pytest.approx(pipeline.predict([RIDE])[0]), "model_version": "lin_reg.bin"}


def test_stop_removes_the_container(image, champion_container):
    champion_container.stop()

    assert not container.container_exists(champion_container.name)
