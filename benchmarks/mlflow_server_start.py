"""How long the course's MLflow server takes to start (until /health is OK) and to stop.

Starts and stops the server three times with ``helpers.servers.mlflow_server``, then once the way a bare
``mlflow server`` runs (default workers, job execution on) for comparison, each against a fresh
SQLite store in a temporary folder. ``--bytecode-cache`` lets the servers write ``.pyc`` files to a
temporary prefix, for an environment (like this sandbox) that sets ``PYTHONDONTWRITEBYTECODE``.

Run: .venv/bin/python benchmarks/mlflow_server_start.py [--runs 3] [--no-default] [--bytecode-cache]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

from helpers.servers.mlflow_server import MlflowServer, start_server
from helpers.servers.processes import free_port, group_alive, start_in_group


def time_helper(tmp: Path) -> tuple[float, float, int]:
    """Seconds to start and to stop the helper's server, and the processes left behind."""
    started = time.perf_counter()
    server = start_server(port=0, backend_uri=f"sqlite:///{tmp}/mlflow.db", timeout=300)
    ready = time.perf_counter() - started
    return (ready, *time_stop(server))


def time_default(tmp: Path) -> tuple[float, float, int]:
    """The same for a bare ``mlflow server``: four uvicorn workers and job execution enabled."""
    port = free_port("127.0.0.1", 0)
    backend_uri = f"sqlite:///{tmp}/mlflow.db"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(tmp / "mlartifacts"),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    log_path = tmp / "default.log"
    started = time.perf_counter()
    process = start_in_group(command, env, log_path)
    server = MlflowServer(
        process=process, log_path=log_path, port=port, backend_uri=backend_uri, artifacts_dir=tmp / "mlartifacts"
    )
    while time.perf_counter() - started < 300:
        if process.poll() is not None:
            raise RuntimeError(f"default server exited; see {log_path}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        server.stop()
        raise RuntimeError(f"default server did not answer in 300 s; see {log_path}")
    ready = time.perf_counter() - started
    return (ready, *time_stop(server))


def time_stop(server: MlflowServer) -> tuple[float, int]:
    group = _group_members(server.process.pid)
    started = time.perf_counter()
    server.stop()
    seconds = time.perf_counter() - started
    print(f"    group had {len(group)} processes: {', '.join(sorted(set(group.values())))}")
    left = {pid: _state(pid) for pid in group if _state(pid) not in ("", "Z", "X")}
    if left:
        print(f"    still running: {left}")
    return seconds, len(left) + group_alive(server.process.pid)


def _state(pid: int) -> str:
    """A process's state letter (``Z`` = zombie), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _group_members(pgid: int) -> dict[int, str]:
    """PID -> short command name of every process in group ``pgid`` (Linux)."""
    members = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        if int(rest.split()[2]) == pgid:
            members[int(stat.parent.name)] = name
    return members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="helper starts to time (default 3)")
    parser.add_argument("--no-default", action="store_true", help="skip the bare mlflow server")
    parser.add_argument(
        "--bytecode-cache", action="store_true", help="let the servers cache .pyc files under a temporary prefix"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_root:
        os.environ["WORKBOOK_BUILD_DIR"] = tmp_root  # server logs
        if args.bytecode_cache:
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp_root) / "pycache")
        cases = [("helper (1 worker, jobs off)", time_helper)] * args.runs
        if not args.no_default:
            cases.append(("bare mlflow server (4 workers, jobs on)", time_default))
        print(f"{'case':42} {'start s':>8} {'stop s':>7} {'left':>5}")
        for number, (label, run) in enumerate(cases):
            tmp = Path(tmp_root) / f"run{number}"
            tmp.mkdir()
            ready, stopped, left = run(tmp)
            print(f"{label:42} {ready:8.1f} {stopped:7.1f} {left:5d}", flush=True)


if __name__ == "__main__":
    main()
