"""Chapter 09's team tracking server: MLflow with users and permissions (its ``basic-auth`` app),
runs in PostgreSQL, artifacts in an S3 object store (SeaweedFS), every part on 127.0.0.1.

The data (both stores and the generated credentials) stays in ``config.team_dir()``, so a restart
has every run and artifact back. Clients talk to MLflow only: it proxies the artifacts
(``--serve-artifacts``), so only the server holds the object store's keys.
``python -m helpers.servers.team_server`` (``make mlflow-team``) runs it in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from helpers.core import config
from helpers.servers.mlflow_server import forwarding_flags
from helpers.servers.object_store import ObjectStore, start_object_store
from helpers.servers.postgres import PostgresServer, start_postgres
from helpers.servers.processes import (
    LoopbackServer,
    ensure_ready,
    free_port,
    http_answers,
    run_until_interrupted,
    start_in_group,
)

with warnings.catch_warnings():
    # MLflow's server app imports a module Starlette deprecates: a warning about MLflow's code, which
    # would otherwise greet the chapter's `from mlflow.server import get_app_client`.
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
    import mlflow.server.auth  # noqa: F401

logger = logging.getLogger(__name__)

ADMIN = "admin"
BUCKET = "mlflow-artifacts"
BACKEND_DB = "mlflow"
# The auth app keeps its users in a database of its own (by default basic_auth.db in the working
# directory): here a second database of the same PostgreSQL.
AUTH_DB = "mlflow_auth"
CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """The team server's secrets, generated at its first start and kept (mode 0600) in its folder."""

    admin_password: str
    secret_key: str
    postgres_password: str
    s3_access_key: str
    s3_secret_key: str


def load_credentials(folder: Path) -> tuple[Credentials, bool]:
    """The credentials kept in ``folder``, created on first use.

    A new admin password and Flask secret key come from ``MLFLOW_AUTH_ADMIN_PASSWORD`` and
    ``MLFLOW_FLASK_SERVER_SECRET_KEY`` when set, else are generated. Like MLflow, which reads its
    admin password only to create the admin user, later starts ignore the variables.

    Returns:
        The credentials, and True when they were created now.

    Raises:
        ValueError: ``MLFLOW_AUTH_ADMIN_PASSWORD`` is shorter than MLflow's 12 characters.
    """
    path = folder / CREDENTIALS_FILE
    if path.exists():
        return Credentials(**json.loads(path.read_text())), False
    admin_password = config.team_admin_password() or secrets.token_urlsafe(18)
    if len(admin_password) < 12:
        raise ValueError("MLFLOW_AUTH_ADMIN_PASSWORD must have at least 12 characters (MLflow's rule).")
    created = Credentials(
        admin_password=admin_password,
        secret_key=config.team_secret_key() or secrets.token_hex(32),
        postgres_password=secrets.token_urlsafe(18),
        s3_access_key="mlflow" + secrets.token_hex(6),
        s3_secret_key=secrets.token_urlsafe(30),
    )
    folder.mkdir(parents=True, exist_ok=True)
    # Created private, never readable by others even for an instant.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(asdict(created), file, indent=2)
    return created, True


@dataclass
class TeamServer(LoopbackServer):
    """The running MLflow server, with the PostgreSQL and the object store it uses (stopped with it)."""

    postgres: PostgresServer
    object_store: ObjectStore
    credentials: Credentials
    folder: Path
    credentials_created: bool = False

    def admin_env(self) -> dict[str, str]:
        """The variables through which MLflow's clients log in, here as the admin."""
        return {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": self.credentials.admin_password}

    def stop(self, timeout: float = 10) -> None:
        """Stop MLflow, then the object store and PostgreSQL; calling it again does nothing."""
        super().stop(timeout)
        self.object_store.stop()
        self.postgres.stop()


def _auth_config(path: Path, database_url: str) -> None:
    # READ by default: a logged-in user sees every experiment and may write only where granted.
    path.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {database_url}\nadmin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without the cache every request re-hashes its password (PBKDF2), which dominates logging
        # a model (dozens of requests); with one worker no other process can hold a stale entry.
        "auth_cache_ttl_seconds = 60\n"
    )


def start_team_server(port: int | None = None, folder: Path | None = None, timeout: float = 240) -> TeamServer:
    """Start PostgreSQL, the object store and MLflow with basic auth; return once MLflow answers.

    Args:
        port: MLflow's port (default ``config.team_port()``, 5001); 0 picks a free one.
        folder: The data folder (default ``config.team_dir()``).
        timeout: Seconds to wait for MLflow's ``/health``.

    Raises:
        RuntimeError: The port is in use, or a part failed to start (its log is quoted); the parts
            already started are stopped.
    """
    host = "127.0.0.1"
    port = config.team_port() if port is None else port
    folder = Path(folder or config.team_dir())
    if port and free_port(host, port) != port:
        raise RuntimeError(
            f"Port {port} on {host} is already in use, so the team server cannot listen there. Stop what "
            f"holds it (another `make mlflow-team`?) or pick another port: make mlflow-team TEAM_PORT=5002 "
            f"(or WORKBOOK_TEAM_PORT)."
        )
    port = free_port(host, port)
    credentials, created = load_credentials(folder)
    logs = config.build_dir() / "team-server"
    started: list[LoopbackServer] = []
    try:
        postgres = start_postgres(folder / "postgres", credentials.postgres_password, logs / "postgres.log")
        started.append(postgres)
        backend_url = postgres.create_database(BACKEND_DB)
        _auth_config(folder / "basic_auth.ini", postgres.create_database(AUTH_DB))
        store = start_object_store(
            folder / "objects", credentials.s3_access_key, credentials.s3_secret_key, logs / "seaweedfs.log"
        )
        started.append(store)
        store.ensure_bucket(BUCKET)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend_url,
            "--serve-artifacts",
            "--artifacts-destination",
            f"s3://{BUCKET}",
            *forwarding_flags(port),
        ]
        env = config.child_environ(
            {
                **postgres.env(),
                **store.env(),
                "MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"),
                "MLFLOW_AUTH_ADMIN_PASSWORD": credentials.admin_password,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials.secret_key,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
        )
        log_path = logs / "mlflow.log"
        server = TeamServer(
            process=start_in_group(command, env, log_path),
            log_path=log_path,
            port=port,
            postgres=postgres,
            object_store=store,
            credentials=credentials,
            folder=folder,
            credentials_created=created,
        )
    except BaseException:
        for part in reversed(started):
            part.stop()
        raise
    ensure_ready(
        server,
        command,
        lambda: http_answers(f"{server.url}/health", "OK"),
        label="The team's MLflow server",
        what=f"{server.url}/health",
        timeout=timeout,
    )
    logger.info("Team MLflow server ready at %s (logs in %s)", server.url, logs)
    return server


def _banner(server: TeamServer) -> str:
    lines = [
        f"MLflow UI: {server.public_url} (log in as {ADMIN})",
        f"Tracking URI: {server.url}",
        f"Runs: PostgreSQL on 127.0.0.1:{server.postgres.port}; artifacts: s3://{BUCKET} on "
        f"{server.object_store.endpoint_url}; data in {server.folder}",
    ]
    path = server.folder / CREDENTIALS_FILE
    if server.credentials_created and config.team_admin_password() is None:
        # Shown once, here in the terminal; the notebooks never print it.
        lines.append(f"Admin password (generated now, kept in {path}): {server.credentials.admin_password}")
    else:
        lines.append(f'Admin password: in {path} ("admin_password")')
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the team server in the foreground until Ctrl-C (``make mlflow-team``)."""
    parser = argparse.ArgumentParser(description="Run the team's MLflow server (PostgreSQL, S3, users).")
    parser.add_argument("--port", type=int, default=None, help="MLflow's port (default WORKBOOK_TEAM_PORT or 5001)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        port = config.team_port() if args.port is None else args.port
    except ValueError as error:
        parser.error(str(error))
    run_until_interrupted("the team's MLflow server", lambda: start_team_server(port=port), _banner, expected="20-60 s")


if __name__ == "__main__":
    main()
