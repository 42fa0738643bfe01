"""A PostgreSQL server on 127.0.0.1, run from the binaries that the ``pgserver`` wheel ships.

Nothing is assumed installed: ``make setup`` brings the server with the Python packages. The data
folder is initialised on first use (``initdb``) and kept, so a restarted server has its databases
back. ``postgres`` runs in the foreground as the leader of its own process group, like every
server of the course (:mod:`helpers.servers.processes`); it listens on TCP only, with a password.

PostgreSQL refuses to run as root. As root (CI, a container) it runs in a user namespace as an
unprivileged user that stands for root (:func:`launcher`): PostgreSQL sees a non-root user, while
the files it opens are root's, so a clone in a private folder (``/root``, ``mktemp -d``) works.
Where user namespaces are refused (Docker's default seccomp profile), it runs as the ``postgres``
or ``nobody`` account, which must be able to enter every folder above its binaries and data.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Sequence
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
    """The account PostgreSQL runs as: None (this user) unless this process is root.

    As root it is the ``postgres`` account when one exists, else ``nobody``: the user PostgreSQL
    sees in a user namespace, or the one it truly runs as where those are refused.

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


@dataclass(frozen=True)
class Launcher:
    """How this process runs PostgreSQL's programs: as they are, in a user namespace, or as an account."""

    prefix: tuple[str, ...] = ()
    account: pwd.struct_passwd | None = None

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` with the prefix that starts them in a user namespace, if any."""
        return [*self.prefix, *args]


@functools.cache
def user_namespace_prefix(uid: int, gid: int, postgres: Path) -> tuple[str, ...] | None:
    """The ``unshare`` command that runs a program as ``uid``:``gid`` standing for root, if it works here.

    The kernel may refuse user namespaces (Docker's default seccomp profile, a sysctl), and macOS has
    no ``unshare``: then None. Tried once per process, with ``postgres --version``.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = (unshare, "--user", f"--map-user={uid}", f"--map-group={gid}", "--")
    try:
        tried = subprocess.run([*prefix, str(postgres), "--version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if tried.returncode == 0 else None


def launcher(data_dir: Path) -> Launcher:
    """How to run PostgreSQL over ``data_dir`` from this process (see the module's docstring).

    A cluster the account itself initialised (where user namespaces were refused, or by an earlier
    version) keeps running as that account: in a namespace, its files would belong to a stranger.

    Raises:
        RuntimeError: Running as root, user namespaces are refused, and the account cannot enter a
            folder above the binaries or the data; the message names the folder and the fix.
    """
    account = server_account()
    if account is None:
        return Launcher()
    owned_by_account = (data_dir / "PG_VERSION").exists() and data_dir.stat().st_uid == account.pw_uid
    prefix = (
        None if owned_by_account else user_namespace_prefix(account.pw_uid, account.pw_gid, binaries_dir() / "postgres")
    )
    if prefix:
        return Launcher(prefix=prefix)
    why = (
        "its data folder belongs to that account"
        if owned_by_account
        else "this machine refuses the user namespace in which it would stand in for root (as a container's "
        "seccomp profile may)"
    )
    for target, what in ((binaries_dir(), "PostgreSQL's programs"), (data_dir.parent, "its data folder")):
        blocked = _first_closed_folder(target, account)
        if blocked:
            raise RuntimeError(
                f"PostgreSQL cannot start: it refuses to run as root, and {why}, so it runs as the "
                f"'{account.pw_name}' account, which cannot enter {blocked} (mode "
                f"{stat.S_IMODE(blocked.stat().st_mode):o}) on the way to {what} in {target}. Let other accounts "
                f"through the folders above the clone (`chmod o+x {blocked}`, and any other such folder on that "
                f"path), or run the course as a normal account rather than root."
            )
    return Launcher(account=account)


def _first_closed_folder(folder: Path, account: pwd.struct_passwd) -> Path | None:
    """The first folder on the way from ``/`` to ``folder`` (itself included) that ``account`` cannot enter."""
    for step in (*reversed(folder.parents), folder):
        info = step.stat()
        # The owner's bits apply to the owner, the group's to its group (the account runs with its
        # primary group only), the others' to everyone else.
        if info.st_uid == account.pw_uid:
            needed = stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not info.st_mode & needed:
            return step
    return None


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
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

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


def _run(args: list[str], launch: Launcher) -> None:
    account = launch.account
    as_account = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
    result = subprocess.run(launch.command(args), capture_output=True, text=True, timeout=120, **as_account)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def initialise(data_dir: Path, password: str, launch: Launcher | None = None) -> None:
    """``initdb`` into ``data_dir`` unless it holds a cluster already; password logins only on TCP.

    Args:
        data_dir: The cluster's folder.
        password: The superuser's password.
        launch: How to run ``initdb`` (default :func:`launcher`).
    """
    if (data_dir / "PG_VERSION").exists():
        return
    launch = launch or launcher(data_dir)
    account = launch.account
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
        _run(
            [
                str(binaries_dir() / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                pwfile.name,
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            launch,
        )


def start_postgres(
    data_dir: Path, password: str, log_path: Path, port: int = 0, *, fsync: bool = True, timeout: float = 60
) -> PostgresServer:
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
    # At every start: a folder above may have been made private since (pytest does so to its own).
    launch = launcher(data_dir)
    initialise(data_dir, password, launch)
    port = free_port("127.0.0.1", port)
    command = launch.command(
        [
            str(binaries_dir() / "postgres"),
            "-D",
            str(data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            # TCP only: no Unix socket folder to create, or to outgrow its path length limit.
            "-c",
            "unix_socket_directories=",
            *([] if fsync else ["-F"]),
        ]
    )
    # unshare execs postgres in its place, so the process started is the server, and SIGINT reaches it.
    process = start_in_group(command, None, log_path, account=launch.account)
    server = PostgresServer(process=process, log_path=log_path, port=port, data_dir=data_dir, password=password)
    ensure_ready(
        server, command, server.answers, label="PostgreSQL", what=f"a login on 127.0.0.1:{port}", timeout=timeout
    )
    return server
