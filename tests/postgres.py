"""A throwaway PostgreSQL server on 127.0.0.1 for the tests: initdb into a temporary folder,
pg_ctl start on a free port, databases created on demand, stopped and removed at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

SUPERUSER = "workbook"
INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql "
                "(apt-get install postgresql, brew install postgresql) or put its bin folder on PATH")


def find_binaries() -> tuple[str, str] | None:
    """initdb and pg_ctl from PATH, else from the newest /usr/lib/postgresql/<version>/bin; None when absent."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        initdb, pg_ctl = Path(folder, "initdb"), Path(folder, "pg_ctl")
        if initdb.exists() and pg_ctl.exists():
            return str(initdb), str(pg_ctl)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    # initdb and postgres refuse to run as root; as root, run them as the postgres account the
    # system package creates, or as nobody. Anyone else runs them as themselves.
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


@dataclass
class PostgresServer:
    initdb: str
    pg_ctl: str
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="workbook-pg-")))
    port: int = field(default_factory=_free_port)
    _databases: int = 0

    def _run(self, *args: str) -> None:
        account = _server_account()
        as_account = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, **as_account)
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}{tail}")

    def start(self) -> PostgresServer:
        account = _server_account()
        if account:
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        data = self.folder / "data"
        # Trust on loopback and no fsync: a test server holds nothing worth a password or a flush.
        self._run(self.initdb, "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        self._run(self.pg_ctl, "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", f"-k {self.folder} -h 127.0.0.1 -p {self.port} -F", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL (psycopg 3 driver)."""
        self._databases += 1
        name = f"test_{self._databases}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"
