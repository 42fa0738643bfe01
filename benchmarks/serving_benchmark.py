"""Throughput and latency of chapter 07's service (gunicorn) against ``mlflow models serve``.

Both serve the same registered champion (trained on the offline twin in a temporary store) on
loopback, and one load generator sends single-ride predictions to both, with ``--clients``
concurrent keep-alive connections:
- ``wrk`` (Debian's package: ``apt-get install wrk``), the default where it is installed: a C
  client that runs for ``--seconds`` and costs the 2 cores little, so it measures the server;
- ``python``: threads with a ``requests.Session`` each, ``--requests`` requests each (or until
  ``--max-seconds``); on 2 cores the client's own CPU use inflates the latencies.
Prints requests/s and p50/p99 latency per server and client count.

Run: .venv/bin/python benchmarks/serving_benchmark.py [--generator wrk|python] [--clients 1 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from helpers.core import config
from helpers.course.notebook_form import isolated_stores
from helpers.ml import registry
from helpers.serve.service_process import gunicorn_args, start_service
from helpers.servers.processes import GroupProcess, free_port, start_in_group

RIDE = {"PULocationID": 43, "DOLocationID": 151, "trip_distance": 1.8}


def load(url: str, body: dict, clients: int, per_client: int, max_seconds: float) -> dict[str, float]:
    """Send ``per_client`` POSTs from each of ``clients`` threads; requests/s and latency percentiles."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + max_seconds
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        nonlocal failures
        mine, failed = [], 0
        with requests.Session() as session:
            session.post(url, json=body, timeout=10)  # connect before the clock starts
            barrier.wait()
            for _ in range(per_client):
                if time.perf_counter() > deadline:
                    break
                started = time.perf_counter()
                response = session.post(url, json=body, timeout=10)
                mine.append(time.perf_counter() - started)
                failed += not response.ok
        with lock:
            latencies.extend(mine)
            failures += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "failed": failures,
        "rps": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


def load_wrk(url: str, body: dict, clients: int, seconds: float) -> dict[str, float]:
    """Run wrk with ``clients`` connections for ``seconds``; requests/s and latency percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    try:
        out = subprocess.run(
            ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script.name)

    def milliseconds(label: str) -> float:
        value = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(value.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[value.group(2)]

    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": milliseconds("50%"),
        "p99_ms": milliseconds("99%"),
    }


def start_mlflow_serve(model_uri: str, log_path: Path, timeout: float = 180) -> tuple[str, Callable[[], None]]:
    """``mlflow models serve`` on loopback; its /invocations URL and a function that stops it."""
    port = free_port("127.0.0.1", 0)
    # It starts uvicorn by name, so the venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    process = start_in_group(command, env, log_path)
    stop = GroupProcess(process, log_path).stop

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                return f"http://127.0.0.1:{port}/invocations", stop
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop()
    raise RuntimeError(f"mlflow models serve did not start; see {log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per client (default 500)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients (default 1 8)")
    parser.add_argument("--max-seconds", type=float, default=60, help="cap per measurement (default 60)")
    parser.add_argument(
        "--generator",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator (default wrk when installed)",
    )
    parser.add_argument("--seconds", type=float, default=10, help="wrk: seconds per measurement (default 10)")
    args = parser.parse_args()

    def measure(url: str, body: dict, clients: int) -> dict[str, float]:
        if args.generator == "wrk":
            return load_wrk(url, body, clients, args.seconds)
        return load(url, body, clients, args.requests, args.max_seconds)

    rows = []
    with isolated_stores(quick=True):
        print("Training and registering a champion on the offline twin...", flush=True)
        model_uri = registry.champion_uri()
        version = registry.ensure_champion().version
        print(f"Serving {model_uri} (version {version}) with gunicorn {' '.join(gunicorn_args('...', 2)[1:])}")
        with start_service(model_uri, port=0, workers=2, timeout=180) as service:
            for clients in args.clients:
                rows.append(("gunicorn", clients, measure(f"{service.url}/predict", RIDE, clients)))
        url, stop = start_mlflow_serve(model_uri, config.build_dir() / "mlflow-models-serve.log")
        try:
            for clients in args.clients:
                rows.append(("mlflow models serve", clients, measure(url, {"dataframe_records": [RIDE]}, clients)))
        finally:
            stop()
    print(f"\nload generator: {args.generator}")
    print(f"{'server':<20} {'clients':>7} {'requests':>8} {'failed':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for server, clients, result in rows:
        print(
            f"{server:<20} {clients:>7} {result['requests']:>8} {result['failed']:>6} {result['rps']:>8.0f} "
            f"{result['p50_ms']:>7.1f} {result['p99_ms']:>7.1f}"
        )
    for clients in args.clients:
        ours, theirs = (result["rps"] for _, c, result in rows if c == clients)
        print(f"{clients} client(s): gunicorn serves {ours / theirs:.1f}x the requests/s of mlflow models serve")


if __name__ == "__main__":
    main()
