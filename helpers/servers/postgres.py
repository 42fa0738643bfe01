"""A PostgreSQL server on 127.0.0.1, run from the binaries that the ``pgserver`` wheel ships.

Nothing is assumed installed: ``make setup`` brings the server with the Python packages. The data
folder is initialised on first use (``initdb``) and kept, so a restarted server has its databases
back. ``postgres`` runs in the foreground as the leader of its own process group, like every
server of the course (:mod:`helpers.servers.processes`); it listens on TCP only, with a password.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import psycopg

from helpers.servers.processes import (
    LoopbackServer,
    ensure_ready,
    free_port,
    start_in_group,
)

SUPERUSER = "workbook"
INSTALL_HINT = "PostgreSQL's server binaries come with the pgserver package: run `make setup` to install it"


def binaries_dir() -> Path:
    """The ``bin`` folder of the PostgreSQL that the ``pgserver`` package ships.

    Found without importing ``pgserver``, whose import sets up locks and a runtime folder of its own.

    Raises:
        RuntimeError: The package (or its ``initdb``) is missing; the message says how to install it.
    """
    spec = importlib.util.find_spec("pgserver")
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" if spec else None
    if folder is None or not (folder / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found. {INSTALL_HINT}.")
    return folder


def server_account() -> pwd.struct_passwd | None:
    """The account that runs PostgreSQL: None (this user) unless this process is root.

    PostgreSQL refuses to run as root; as root it runs as the ``postgres`` account when one exists,
    else as ``nobody``.

    Raises:
        RuntimeError: Running as root and neither account exists.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("Running as root, and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL.")


@dataclass
class PostgresServer(LoopbackServer):
    """A running ``postgres``; ``port`` is its TCP port on 127.0.0.1."""

    data_dir: Path
    password: str
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") would wait for every client to leave.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def database_url(self, database: str, *, with_password: bool = False) -> str:
        """SQLAlchemy URL of ``database`` (psycopg 3 driver), by default without the password (see :meth:`env`)."""
        login = f"{SUPERUSER}:{quote(self.password, safe='')}" if with_password else SUPERUSER
        return f"postgresql+psycopg://{login}@127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """libpq's variable with the password, so that it never appears in a URL, a command line or a log."""
        return {"PGPASSWORD": self.password}

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """An autocommit connection to ``database`` as the superuser."""
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
                               dbname=database, autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; returns its URL (see :meth:`database_url`)."""
        with self.connect() as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def answers(self) -> bool:
        """True once the server accepts a password login."""
        try:
            with self.connect():
                return True
        except psycopg.Error:
            return False


def _ensure_traversable(folder: Path) -> None:
    # As root the server runs as another account, which must reach its data folder: let others
    # traverse (not list) the folders above it, as pytest's and mkdtemp's 0700 folders do not.
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _run(args: list[str], account: pwd.struct_passwd | None) -> None:
    as_account = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, **as_account)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def initialise(data_dir: Path, password: str) -> None:
    """``initdb`` into ``data_dir`` unless it holds a cluster already; password logins only on TCP."""
    if (data_dir / "PG_VERSION").exists():
        return
    account = server_account()
    data_dir.mkdir(parents=True, exist_ok=True)
    if account:
        os.chown(data_dir, account.pw_uid, account.pw_gid)
    data_dir.chmod(0o700)
    # initdb reads the password from a file; a temporary one the account can read, removed at once.
    with tempfile.NamedTemporaryFile("w", prefix="pwfile-", dir=data_dir.parent) as pwfile:
        pwfile.write(password)
        pwfile.flush()
        if account:
            os.chown(pwfile.name, account.pw_uid, account.pw_gid)
        _run([str(binaries_dir() / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--pwfile", pwfile.name,
              "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale"], account)


def start_postgres(data_dir: Path, password: str, log_path: Path, port: int = 0, *,
                   fsync: bool = True, timeout: float = 60) -> PostgresServer:
    """Initialise ``data_dir`` if needed, start PostgreSQL on 127.0.0.1 and wait until it accepts a login.

    Args:
        data_dir: The cluster's folder; kept between starts.
        password: The superuser's password (set by the first start; later starts must give the same).
        log_path: The server's log.
        port: TCP port; 0 picks a free one.
        fsync: False for throwaway test data, which needs no flush to disk.
        timeout: Seconds to wait for a login.

    Raises:
        RuntimeError: The binaries are missing, or the server exited or did not answer; with its log.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    account = server_account()
    if account:
        # At every start: a folder above may have been made private since (pytest does so to its own).
        _ensure_traversable(data_dir)
    initialise(data_dir, password)
    port = free_port("127.0.0.1", port)
    command = [str(binaries_dir() / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
               # TCP only: no Unix socket folder to create, or to outgrow its path length limit.
               "-c", "unix_socket_directories=", *([] if fsync else ["-F"])]
    process = start_in_group(command, None, log_path, account=account)
    server = PostgresServer(process=process, log_path=log_path, port=port, data_dir=data_dir, password=password)
    ensure_ready(server, command, server.answers, label="PostgreSQL", what=f"a login on 127.0.0.1:{port}",
                 timeout=timeout)
    return server
