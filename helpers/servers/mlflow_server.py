"""A local MLflow tracking server (SQLite backend, local artifact store) that a learner can open.

``start_server`` launches ``mlflow server`` as a real process and returns once ``/health``
answers; ``python -m helpers.servers.mlflow_server`` runs it in the foreground for a terminal.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from helpers.core import config
from helpers.servers.processes import (
    LoopbackServer,
    claimed_port,
    ensure_ready,
    http_answers,
    run_until_interrupted,
    start_in_group,
)

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


@dataclass
class MlflowServer(LoopbackServer):
    """A running ``mlflow server``: the leader of its own process group."""

    backend_uri: str
    artifacts_dir: Path


def start_server(
    port: int = 5000,
    backend_uri: str | None = None,
    artifacts_dir: Path | None = None,
    timeout: float = 90,
) -> MlflowServer:
    """Start ``mlflow server`` on loopback and wait until ``/health`` answers.

    Args:
        port: Port to listen on; a busy port (or 0) is replaced by a free one.
        backend_uri: Backend store URI (default ``config.tracking_uri()``).
        artifacts_dir: Artifact store folder (default ``config.artifacts_dir(backend_uri)``).
        timeout: Seconds to wait for ``/health`` before giving up.

    Returns:
        The running server; stop it with ``stop()`` or use it as a context manager.

    Raises:
        RuntimeError: The server exited or did not answer in time; the message quotes its log.
    """
    host = "127.0.0.1"
    backend_uri = backend_uri or config.tracking_uri()
    artifacts_dir = Path(artifacts_dir or config.artifacts_dir(backend_uri))
    with claimed_port(host, port) as chosen:
        if port and chosen != port:
            logger.warning("Port %d is busy; starting the MLflow server on port %d instead.", port, chosen)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            host,
            "--port",
            str(chosen),
            # One worker halves the start-up time (~13 s instead of ~29 s); plenty for one learner.
            "--workers",
            "1",
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            str(artifacts_dir),
            "--serve-artifacts",
            *forwarding_flags(chosen),
        ]
        # Job execution spawns huey consumers the course never uses, and slows the start.
        env = config.child_environ({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        log_path = config.build_dir() / f"mlflow-server-{chosen}.log"
        process = start_in_group(command, env, log_path)
        server = MlflowServer(
            process=process, log_path=log_path, port=chosen, backend_uri=backend_uri, artifacts_dir=artifacts_dir
        )
        ensure_ready(
            server,
            command,
            lambda: http_answers(f"{server.url}/health", "OK"),
            label="MLflow server",
            what=f"{server.url}/health",
            timeout=timeout,
            poll=_POLL_SECONDS,
        )
    logger.info("MLflow server ready at %s (log: %s)", server.url, log_path)
    return server


def forwarding_flags(port: int) -> list[str]:
    """Let a forwarded URL (Codespaces) through MLflow's Host and CORS checks."""
    public = config.forwarded_url(port)
    if public == f"http://127.0.0.1:{port}":
        return []
    # An explicit list replaces MLflow's defaults, so keep loopback in it.
    hosts = ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", urlparse(public).netloc]
    return ["--allowed-hosts", ",".join(hosts), "--cors-allowed-origins", public]


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground until Ctrl-C (``make mlflow``)."""
    parser = argparse.ArgumentParser(description="Run the course's MLflow tracking server.")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument(
        "--backend-store-uri", default=None, help="backend store URI (default: MLFLOW_TRACKING_URI or <repo>/mlflow.db)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_until_interrupted(
        "the MLflow server",
        lambda: start_server(port=args.port, backend_uri=args.backend_store_uri),
        lambda server: f"MLflow UI: {server.public_url}\nTracking URI: {server.url}",
        expected="15-60 s",
    )


if __name__ == "__main__":
    main()
