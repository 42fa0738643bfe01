"""A local MLflow tracking server (SQLite backend, local artifact store) that a learner can open.

``start_server`` launches ``mlflow server`` as a real process and returns once ``/health``
answers; ``python -m helpers.mlflow_server`` runs it in the foreground for a terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from helpers import config, environment

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


@dataclass
class MlflowServer:
    """A running ``mlflow server``: the leader of its own process group."""

    host: str
    port: int
    backend_uri: str
    artifacts_dir: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        """Loopback URL, for clients on this machine (``mlflow.set_tracking_uri``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        """URL a learner opens in a browser (the forwarded one in Codespaces)."""
        return environment.forwarded_url(self.port)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server and every process of its group; calling it again does nothing.

        Args:
            timeout: Seconds to wait after SIGTERM before sending SIGKILL.
        """
        # The group id equals the leader's PID because the server started a new session.
        pgid = self.process.pid
        if self.process.poll() is not None and not _group_alive(pgid):
            return  # already stopped; the id may since name someone else's group
        _signal_group(pgid, signal.SIGTERM)
        if not _wait_group_gone(self.process, pgid, timeout):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(self.process, pgid, timeout)

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
    requested, port = port, _usable_port(host, port)
    if requested and port != requested:
        logger.warning("Port %d is busy; starting the MLflow server on port %d instead.", requested, port)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port),
        # One worker halves the start-up time (~13 s instead of ~29 s); plenty for one learner.
        "--workers", "1",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts_dir),
        "--serve-artifacts",
        *_forwarding_flags(port),
    ]
    # Job execution spawns huey consumers the course never uses, and slows the start.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_path = config.build_dir() / f"mlflow-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A log file rather than a PIPE: nobody reads a pipe, and a full one blocks the server.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env,
            # Own session = own process group, so stop() reaches uvicorn workers too.
            start_new_session=True,
        )
    server = MlflowServer(host, port, backend_uri, artifacts_dir, process, log_path)
    problem = _wait_healthy(server, timeout)
    if problem:
        server.stop()
        raise RuntimeError(
            f"MLflow server {problem}.\nCommand: {' '.join(command)}\n"
            f"Last lines of {log_path}:\n{_tail(log_path)}"
        )
    logger.info("MLflow server ready at %s (log: %s)", server.url, log_path)
    return server


def _wait_healthy(server: MlflowServer, timeout: float) -> str | None:
    """Poll ``/health``; None when it answers OK, else why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"exited with code {server.process.returncode} before it was ready"
        try:
            response = requests.get(f"{server.url}/health", timeout=2)
            if response.status_code == 200 and response.text.strip() == "OK":
                return None
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(_POLL_SECONDS)
    return f"did not answer {server.url}/health within {timeout:g} s"


def _forwarding_flags(port: int) -> list[str]:
    """Let a forwarded URL (Codespaces) through MLflow's Host and CORS checks."""
    public = environment.forwarded_url(port)
    if public == f"http://127.0.0.1:{port}":
        return []
    # An explicit list replaces MLflow's defaults, so keep loopback in it.
    hosts = ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", urlparse(public).netloc]
    return ["--allowed-hosts", ",".join(hosts), "--cors-allowed-origins", public]


def _usable_port(host: str, port: int) -> int:
    """``port`` when it can be bound, else (or for 0) a free port the kernel picks."""
    for candidate in (port, 0) if port else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As uvicorn does, so a port left in TIME_WAIT by a stopped server counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"No free port on {host}.")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _wait_group_gone(process: subprocess.Popen, pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # poll() also reaps the leader, which would otherwise linger as a zombie.
        if process.poll() is not None and not _group_alive(pgid):
            return True
        time.sleep(0.05)
    return False


def _group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process belongs to process group ``pgid``.

    Reads ``/proc`` (Linux); elsewhere asks the kernel with signal 0.
    """
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces, so split after its closing ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            return True
    return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground until Ctrl-C (``make mlflow``)."""
    parser = argparse.ArgumentParser(description="Run the course's MLflow tracking server.")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    parser.add_argument("--backend-store-uri", default=None,
                        help="backend store URI (default: MLFLOW_TRACKING_URI or <repo>/mlflow.db)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The server runs in its own session, so a closed terminal or `kill` would orphan it:
    # treat those like Ctrl-C, which stops it on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    print("Starting the MLflow server (15-60 s)...", flush=True)
    with start_server(port=args.port, backend_uri=args.backend_store_uri) as server:
        print(f"MLflow UI: {server.public_url}\nTracking URI: {server.url}\nLog: {server.log_path}")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            code = server.process.wait()
            print(f"The MLflow server exited (code {code}); see {server.log_path}")
        except KeyboardInterrupt:
            print("\nStopping the MLflow server...")


if __name__ == "__main__":
    main()
