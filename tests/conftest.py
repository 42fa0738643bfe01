"""Shared fixtures: a real HTTP server on 127.0.0.1 that plays the TLC site, small synthetic
months, and a temporary MLflow store.

Creating a SQLite store runs MLflow's migrations (seconds), so each test module makes one and
its tests keep apart by using their own experiment and registered model names.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import mlflow
import pytest

from tests.support import FakeTLC, skip_or_fail_in_ci, synthetic_month

if TYPE_CHECKING:
    from helpers.servers.postgres import PostgresServer


@pytest.fixture
def tlc_server() -> Iterator[FakeTLC]:
    fake = FakeTLC(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
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


@pytest.fixture
def chromium():
    """A headless Chromium whose pages may reach only 127.0.0.1 (``helpers.servers.browser``)."""
    # Imported here: Playwright is in .venv only, and this file also loads for the .venv-mage run.
    from helpers.servers import browser

    try:
        browser.chromium_executable()
    except browser.BrowserMissingError as missing:
        skip_or_fail_in_ci(str(missing))
    with browser.open_browser() as session:
        yield session


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the session, from the pgserver package's binaries; skips
    without them, but fails in CI (where `make setup` installs them), so that the PostgreSQL tests can
    never silently stop running there."""
    # Imported here: psycopg is not in .venv-mage, which loads this file too.
    from helpers.servers.postgres import binaries_dir, start_postgres

    try:
        binaries_dir()
    except RuntimeError as missing:
        skip_or_fail_in_ci(str(missing))
    folder = tmp_path_factory.mktemp("postgres")
    # No fsync: a test server holds nothing worth a flush.
    server = start_postgres(folder / "data", secrets.token_urlsafe(12), folder / "server.log", fsync=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def mage_environment(request):
    """A test marked ``mage`` needs .venv-mage, which `make test` makes (`make mage-setup`) and `make unit` does not."""
    if request.node.get_closest_marker("mage"):
        from helpers.orchestrate import mage

        try:
            mage.mage_executable()
        except mage.MageNotInstalledError as missing:
            skip_or_fail_in_ci(str(missing))
