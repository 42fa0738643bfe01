"""helpers.servers.postgres: a real PostgreSQL from the pgserver wheel's binaries, on 127.0.0.1."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from helpers.servers import postgres
from helpers.servers.postgres import start_postgres
from helpers.servers.processes import group_alive
from tests.support import skip_or_fail_in_ci

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
        psycopg.connect(
            host="127.0.0.1",
            port=server.port,
            user=postgres.SUPERUSER,
            password="wrong",
            dbname="postgres",
            connect_timeout=5,
        )


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


def test_it_never_runs_as_root(server):
    pid = server.process.pid
    if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
        # In its own user namespace, the first column of uid_map is the user it sees itself as.
        assert int(Path(f"/proc/{pid}/uid_map").read_text().split()[0]) != 0
    else:
        account = postgres.server_account()  # None unless root
        assert os.stat(f"/proc/{pid}").st_uid == (account.pw_uid if account else os.geteuid())


def test_it_starts_from_a_private_folder_holding_its_programs_and_data(monkeypatch, tmp_path):
    # As a clone under /root or a `mktemp -d` folder: no other account may enter tmp_path.
    tmp_path.chmod(0o700)
    programs = private_copy_of_the_programs(tmp_path)
    monkeypatch.setattr(postgres, "binaries_dir", lambda: programs)
    account = postgres.server_account()
    if account and not postgres.user_namespace_prefix(account.pw_uid, account.pw_gid, programs / "postgres"):
        skip_or_fail_in_ci(
            "As root, PostgreSQL runs from a private folder only in a user namespace, which "
            "needs `unshare` (util-linux) and a kernel that allows them."
        )

    with start_postgres(tmp_path / "data", PASSWORD, tmp_path / "server.log", fsync=False) as server:
        with server.connect() as connection:
            assert connection.execute("SELECT current_user").fetchone() == (postgres.SUPERUSER,)
    assert "received fast shutdown request" in (tmp_path / "server.log").read_text()  # SIGINT reached it
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700  # reached without opening the folder to others


def test_as_root_without_user_namespaces_a_private_folder_is_named_with_the_fix(monkeypatch, tmp_path):
    tmp_path.chmod(0o700)
    # It fails before anything runs as another account, so a normal account can play root here.
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres, "user_namespace_prefix", lambda *ids: None)

    names_the_folder_and_the_fix = r"cannot enter (\S+) \(mode \d+\) on the way to .*`chmod o\+x \1`"
    with pytest.raises(RuntimeError, match=names_the_folder_and_the_fix) as raised:
        start_postgres(tmp_path / "data", PASSWORD, tmp_path / "server.log")

    blocked = Path(re.search(names_the_folder_and_the_fix, str(raised.value))[1])
    # The programs are checked first: in a clone under a private folder, that folder is the one named.
    assert blocked in (tmp_path, *tmp_path.parents, *postgres.binaries_dir().parents)
    assert not blocked.stat().st_mode & stat.S_IXOTH
    assert not (tmp_path / "data" / "PG_VERSION").exists()  # it failed before initdb


def private_copy_of_the_programs(folder: Path) -> Path:
    """The wheel's ``bin`` copied into ``folder``, with the libraries its RPATH finds beside the package."""
    package = postgres.binaries_dir().parents[1]
    shutil.copytree(package / "pginstall", folder / "pgserver" / "pginstall", symlinks=True)
    shutil.copytree(package.with_name("pgserver.libs"), folder / "pgserver.libs", symlinks=True)
    return folder / "pgserver" / "pginstall" / "bin"


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
