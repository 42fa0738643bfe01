"""Integration tests: the service's Docker image, built from the Dockerfile and run as a container.

The module builds the image once (on a machine without an image registry, from a base made of
Debian packages) and runs it on the host's network: the model comes from a tracking server that
proxies its artifacts, as a team serves it, or from a mounted folder. Without a Docker daemon
the tests skip, and with CI=true they fail instead (.ci/run starts one).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import mlflow
import pytest
import requests
from sklearn.linear_model import LinearRegression

from helpers.core import config
from helpers.core.polling import wait_for
from helpers.ml import registry
from helpers.ml.training import save_model, train_pipeline
from helpers.serve import container
from helpers.servers import mlflow_server
from tests.support import RIDE, registered_champion, skip_or_fail_in_ci, write_chapter_file

pytestmark = [pytest.mark.docker, pytest.mark.servers, pytest.mark.xdist_group("docker")]

IMAGE = "ride-duration:test"
# The image's default MODEL_URI, so the Dockerfile's run line needs no MODEL_URI of its own.
MODEL_NAME = "nyc-taxi-duration"
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
    with mlflow_server.start_server(
        port=0,
        backend_uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifacts_dir=folder / "artifacts",
        timeout=START_TIMEOUT,
    ) as server:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", server.url)
            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(server.url)
            version = registered_champion(MODEL_NAME, months)
            pipeline = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{registry.CHAMPION}")
            mlflow.set_tracking_uri(previous)
        yield server, version, pipeline


def documented_run(image: str, tag_line: str, replacements: dict[str, str], *extra: str):
    """Run the Dockerfile's own ``docker run`` line that contains ``tag_line``, with ``replacements``
    made in it and ``extra`` options (a short health check) added; ``start_container`` adds a free PORT."""
    lines = [
        line.removeprefix("#").strip()
        for line in (config.REPO_ROOT / "Dockerfile").read_text().splitlines()
        if line.removeprefix("#").strip().startswith("docker run")
    ]
    [line] = [line for line in lines if tag_line in line]
    for placeholder, value in replacements.items():
        assert placeholder in line, f"the Dockerfile's run line no longer has {placeholder!r}: {line}"
        line = line.replace(placeholder, value)
    *options, documented_image = shlex.split(line)
    assert (options[:2], documented_image) == (["docker", "run"], container.IMAGE)
    return container.start_container([*options[2:], *extra], image, port=0, timeout=START_TIMEOUT)


@pytest.fixture(scope="module")
def champion_container(image, tracking_server):
    """The Dockerfile's Linux run line, serving the image's default model, the champion, from the tracking server."""
    server, _, _ = tracking_server
    documented_server = {"127.0.0.1:5001": f"127.0.0.1:{server.port}"}
    with documented_run(
        image,
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5001",
        documented_server,
        "--health-interval",
        "1s",
        "--health-start-period",
        "1s",
    ) as running:
        yield running


def fake_docker(folder: Path, version: str, has_buildx: bool) -> Path:
    """A ``docker`` program that answers ``buildx version`` and ``version`` as a client of ``version`` would."""
    folder.mkdir()
    script = folder / "docker"
    buildx = "exit 0" if has_buildx else 'echo "docker: unknown command: docker buildx" >&2; exit 1'
    script.write_text(f'#!/bin/sh\nif [ "$1" = buildx ]; then {buildx}; fi\necho {version}\n')
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    ("versions", "chosen"),
    [
        ((("28.2.2", False), ("20.10.24", False)), 1),  # this machine: a new client without buildx, Debian's
        ((("28.2.2", True), ("20.10.24", False)), 0),
        ((("28.2.2", False),), None),
    ],
)
def test_the_default_client_is_the_first_on_path_that_builds_with_buildkit(monkeypatch, tmp_path, versions, chosen):
    scripts = [fake_docker(tmp_path / str(index), *version) for index, version in enumerate(versions)]
    monkeypatch.delenv("WORKBOOK_DOCKER", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join(str(script.parent) for script in scripts))
    container._buildkit_docker.cache_clear()
    try:
        assert container.docker_client() == (str(scripts[chosen]) if chosen is not None else "docker")
        if chosen is None:
            monkeypatch.setenv("WORKBOOK_DOCKER", str(scripts[0]))
            assert "apt-get install docker-buildx" in container.daemon_missing()
    finally:
        container._buildkit_docker.cache_clear()


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
    # A timeout's WaitTimeout says the last status Docker reported (e.g. "starting" or "unhealthy").
    wait_for(champion_container.health, done=lambda status: status == "healthy", timeout=60, poll=0.5)


def test_the_service_does_not_run_as_root(champion_container):
    assert champion_container.process_users() == {SERVICE_USER}


def test_the_model_loads_with_no_version_warning(champion_container):
    log = champion_container.log_path.read_text()

    assert "Booting worker" in log  # gunicorn's own log reaches the file, so a warning would too
    assert "mismatch" not in log and "InconsistentVersionWarning" not in log


def test_a_mounted_model_is_served_by_the_dockerfiles_run_line(image, months, tmp_path):
    pipeline = train_pipeline(LinearRegression(), months[0])
    save_model(pipeline, tmp_path / "pipeline.bin")
    tmp_path.chmod(0o755)  # the container's user is not the test's

    with documented_run(image, "MODEL_URI=/models/pipeline.bin", {"$PWD/models": str(tmp_path)}) as mounted:
        answer = requests.post(f"{mounted.url}/predict", json=RIDE, timeout=10).json()

    assert answer == {"duration": pytest.approx(pipeline.predict([RIDE])[0]), "model_version": "pipeline.bin"}


def test_stop_removes_the_container(image, champion_container):
    champion_container.stop()

    assert not container.container_exists(champion_container.name)


def test_chapter_07s_dockerfile_builds_from_the_layers_of_the_projects_image(image, tmp_path):
    dockerfile = write_chapter_file("07", "Dockerfile", tmp_path)

    log = container.build_image(f"{IMAGE}-chapter", container.default_base_image(), dockerfile=dockerfile)
    try:
        step = re.search(r"^#(\d+) \[[^\]]+\] RUN .*pipenv install", log, re.M)
        assert step, log[-2000:]
        assert f"#{step.group(1)} CACHED" in log, "the chapter's build reinstalled the service's packages"
    finally:
        subprocess.run([container.docker_client(), "image", "rm", "--force", f"{IMAGE}-chapter"], capture_output=True)
