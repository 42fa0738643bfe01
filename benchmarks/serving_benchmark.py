"""Throughput and latency of chapter 06's service (gunicorn) against ``mlflow models serve``.

Both serve the same registered champion (trained on the offline twin in a temporary store) on
loopback, and one load generator sends single-ride predictions: ``--clients`` threads, each with
its own keep-alive ``requests.Session``, ``--requests`` requests each (or until ``--max-seconds``).
Prints requests/s and p50/p99 latency per server and client count.

Run: .venv/bin/python benchmarks/serving_benchmark.py [--requests 500] [--clients 1 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from helpers import config, registry
from helpers.notebook_form import isolated_stores
from helpers.processes import GroupProcess, free_port, start_in_group
from helpers.service_process import gunicorn_args, start_service

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
    return {"requests": len(latencies), "failed": failures, "rps": len(latencies) / elapsed,
            "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def start_mlflow_serve(model_uri: str, log_path: Path, timeout: float = 180) -> tuple[str, Callable[[], None]]:
    """``mlflow models serve`` on loopback; its /invocations URL and a function that stops it."""
    port = free_port("127.0.0.1", 0)
    # It starts uvicorn by name, so the venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]
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
    args = parser.parse_args()
    rows = []
    with isolated_stores():
        print("Training and registering a champion on the offline twin...", flush=True)
        model_uri = registry.champion_uri()
        version = registry.ensure_champion().version
        print(f"Serving {model_uri} (version {version}) with gunicorn {' '.join(gunicorn_args('...', 2)[1:])}")
        with start_service(model_uri, port=0, workers=2, timeout=180) as service:
            for clients in args.clients:
                rows.append(("gunicorn", clients, load(f"{service.url}/predict", RIDE, clients, args.requests,
                                                       args.max_seconds)))
        url, stop = start_mlflow_serve(model_uri, config.build_dir() / "mlflow-models-serve.log")
        try:
            for clients in args.clients:
                rows.append(("mlflow models serve", clients,
                             load(url, {"dataframe_records": [RIDE]}, clients, args.requests, args.max_seconds)))
        finally:
            stop()
    print(f"\n{'server':<20} {'clients':>7} {'requests':>8} {'failed':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for server, clients, result in rows:
        print(f"{server:<20} {clients:>7} {result['requests']:>8} {result['failed']:>6} {result['rps']:>8.0f} "
              f"{result['p50_ms']:>7.1f} {result['p99_ms']:>7.1f}")
    for clients in args.clients:
        ours, theirs = (result["rps"] for _, c, result in rows if c == clients)
        print(f"{clients} client(s): gunicorn serves {ours / theirs:.1f}x the requests/s of mlflow models serve")


if __name__ == "__main__":
    main()
