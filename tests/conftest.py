"""Shared fixtures: a real HTTP server on 127.0.0.1 that plays the TLC site, small synthetic
months, and a temporary MLflow store.

Creating a SQLite store runs MLflow's migrations (seconds), so each test module makes one and
its tests keep apart by using their own experiment and registered model names.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import pytest
from synthetic import synthetic_month


@dataclass
class Reply:
    """One scripted answer; ``length`` larger than ``body`` simulates a connection cut mid-file."""

    status: int = 200
    body: bytes = b""
    length: int | None = None
    content_type: str | None = None


@dataclass
class FakeTLC:
    """Routes map a path to the replies given in turn (the last one repeats); any other path gets
    ``default``; ``hits`` counts requests."""

    url: str
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    default: list[Reply] = field(default_factory=lambda: [Reply(404, b"not found")])
    hits: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def tlc_server() -> Iterator[FakeTLC]:
    fake = FakeTLC(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            count = fake.hits.get(self.path, 0)
            fake.hits[self.path] = count + 1
            replies = fake.routes.get(self.path, fake.default)
            reply = replies[min(count, len(replies) - 1)]
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(reply.length if reply.length is not None else len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on which nothing listens: the port is bound, then released."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def months():
    return synthetic_month(2_000, seed=1), synthetic_month(600, seed=2), synthetic_month(600, seed=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh SQLite tracking store for the module; the previous tracking URI comes back after."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield folder
    mlflow.set_tracking_uri(previous)
    mp.undo()


def registered_champion(name: str, months) -> str:
    """Train a LinearRegression on the synthetic ``months``, register it as ``name`` with the
    ``champion`` alias, and return its version (the store is the caller's)."""
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LinearRegression

    from helpers import registry, tracking

    df_train, df_val, _ = months
    tracking.use_experiment(name)
    result = tracking.train_and_log(LinearRegression(), df_train, df_val, train_source="a", val_source="b",
                                    data_source="twin")
    version = registry.register_run(MlflowClient().get_run(result.run_id), name)
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version.version)
    return str(version.version)


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip with ``reason``; with ``CI=true`` fail instead, since CI installs what the test needs,
    so that a test can never silently stop running there."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} CI=true, so this is an error, not a skip.")
    pytest.skip(reason)


@pytest.fixture
def chromium():
    """A headless Chromium whose pages may reach only 127.0.0.1 (``helpers.browser``)."""
    # Imported here: Playwright is in .venv only, and this file also loads for the .venv-mage run.
    from helpers import browser

    try:
        browser.chromium_executable()
    except browser.BrowserMissingError as missing:
        skip_or_fail_in_ci(str(missing))
    with browser.open_browser() as session:
        yield session
