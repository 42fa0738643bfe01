"""helpers.servers.postgres: a real PostgreSQL from the pgserver wheel's binaries, on 127.0.0.1."""

from __future__ import annotations

import os
import secrets

import psycopg
import pytest
import sqlalchemy as sa

from helpers.servers import postgres
from helpers.servers.postgres import start_postgres
from helpers.servers.processes import group_alive

pytestmark = pytest.mark.servers

PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("postgres")


@pytest.fixture(scope="module")
def server(folder):
    with start_postgres(folder / "data", PASSWORD, folder / "server.log", fsync=False) as running:
        yield running


def test_it_accepts_the_password_on_loopback_and_refuses_a_wrong_one(server):
    with server.connect() as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=server.port, user=postgres.SUPERUSER, password="wrong",
                        dbname="postgres", connect_timeout=5)


def test_creating_a_database_twice_keeps_the_first(server):
    url = server.create_database("twice")
    engine = sa.create_engine(server.database_url("twice", with_password=True))
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE kept (x int)"))
    engine.dispose()

    assert server.create_database("twice") == url
    with server.connect("twice") as connection:
        assert connection.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_the_url_carries_no_password_unless_asked(server):
    assert PASSWORD not in server.database_url("mlflow")
    assert server.env() == {"PGPASSWORD": PASSWORD}


def test_as_root_it_runs_as_another_account(server):
    owner = os.stat(f"/proc/{server.process.pid}").st_uid
    assert owner != 0 if os.geteuid() == 0 else owner == os.geteuid()


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(postgres.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="run `make setup` to install it"):
        postgres.binaries_dir()


# Kept last: it stops the module's server.
def test_a_restart_keeps_the_databases_and_stop_leaves_no_process(server, folder):
    server.stop()
    assert not group_alive(server.pgid)
    folder.parent.chmod(0o700)  # as pytest makes its folders private again between tests

    with start_postgres(folder / "data", PASSWORD, folder / "again.log", fsync=False) as again:
        with again.connect("twice") as connection:
            assert connection.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    assert not group_alive(again.pgid)
