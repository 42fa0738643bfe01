"""Integration tests: a real ``mlflow server`` on loopback, used the way a learner's notebook uses it.

Starting the server costs 15-60 s, so the module starts one and shares it; the test that stops it
comes last.
"""

from __future__ import annotations

import os
import socket

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

from helpers.servers.mlflow_server import MlflowServer, start_server
from helpers.servers.processes import group_alive

pytestmark = pytest.mark.servers

START_TIMEOUT = 240  # generous: CI machines are slow and the venv may hold no bytecode cache


@pytest.fixture(scope="module")
def busy_port():
    """A port some other program already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, busy_port):
    """One server for the module, asked for a busy port, with its store in a temporary folder."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBOOK_BUILD_DIR", str(tmp / "build"))  # the server log
        with start_server(port=busy_port, backend_uri=f"sqlite:///{tmp}/mlflow.db", timeout=START_TIMEOUT) as running:
            yield running


@pytest.fixture
def tracking_through(server, monkeypatch, tmp_path):
    """Point MLflow at the server for one test, from an empty cwd, and restore it afterwards."""
    previous = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(server.url)
    yield server
    mlflow.set_tracking_uri(previous)


def test_health_answers_ok_on_loopback(server: MlflowServer):
    response = requests.get(f"{server.url}/health", timeout=5)

    assert (response.status_code, response.text.strip()) == (200, "OK")
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_busy_port_is_replaced_by_a_free_one(server: MlflowServer, busy_port: int):
    assert server.port != busy_port
    assert requests.get(f"{server.url}/health", timeout=5).ok


def test_store_and_artifacts_stay_together(server: MlflowServer):
    assert server.artifacts_dir.parent.joinpath("mlflow.db").exists()
    assert server.artifacts_dir.name == "mlartifacts"


def test_runs_models_and_aliases_go_through_the_server(tracking_through: MlflowServer, tmp_path):
    server = tracking_through
    X_train = pd.DataFrame({"trip_distance": np.arange(10.0)})
    y_train = 2 * X_train["trip_distance"] + 1
    model = LinearRegression().fit(X_train, y_train)
    (tmp_path / "note.txt").write_text("logged through the server\n")

    mlflow.set_experiment("server-test")
    with mlflow.start_run():
        mlflow.log_param("alpha", 0.1)
        mlflow.log_metric("rmse", 0.0)
        mlflow.log_artifact(str(tmp_path / "note.txt"))
        # Explicit pip_requirements skip MLflow's slow requirement inference.
        model_info = mlflow.sklearn.log_model(
            model, name="model", input_example=X_train.head(2), pip_requirements=["scikit-learn"]
        )
    version = mlflow.register_model(model_info.model_uri, "test-model")
    MlflowClient().set_registered_model_alias("test-model", "champion", version.version)

    champion = mlflow.pyfunc.load_model("models:/test-model@champion")

    assert champion.predict(pd.DataFrame({"trip_distance": [20.0]}))[0] == pytest.approx(41.0)
    # Artifacts were uploaded to the server's store, not written next to the client.
    assert list(server.artifacts_dir.rglob("note.txt"))
    assert list(server.artifacts_dir.rglob("MLmodel"))
    assert not list(tmp_path.glob("ml*"))


def test_a_server_that_cannot_start_raises_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBOOK_BUILD_DIR", str(tmp_path))

    with pytest.raises(RuntimeError, match="bogus://x") as error:
        start_server(port=0, backend_uri="bogus://x", artifacts_dir=tmp_path / "artifacts", timeout=START_TIMEOUT)

    assert "exited with code" in str(error.value)
    assert "UnsupportedModelRegistryStoreURIException" in str(error.value)  # from the log's tail
    port = next(tmp_path.glob("mlflow-server-*.log")).stem.rsplit("-", 1)[1]
    assert not _processes_listening_on(port)


# Kept last: it stops the module's server.
def test_stop_leaves_no_process_behind(server: MlflowServer):
    pid = server.process.pid
    assert group_alive(pid)

    server.stop()
    server.stop()  # a second stop is harmless

    assert server.process.poll() is not None
    assert not os.path.exists(f"/proc/{pid}")  # exited and reaped, not a zombie
    assert not group_alive(pid)


def _processes_listening_on(port: str) -> list[int]:
    """PIDs whose command line says ``--port <port>`` (the server and its uvicorn workers)."""
    marker = f"--port\0{port}\0".encode()
    pids = []
    for entry in os.scandir("/proc"):
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as file:
                if entry.name.isdigit() and marker in file.read():
                    pids.append(int(entry.name))
        except OSError:
            continue  # not a process, or it ended while we looked
    return pids
