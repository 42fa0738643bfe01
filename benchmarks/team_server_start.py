"""How long the team server's three parts take to start (until ready) and to stop.

Each run uses a fresh data folder first (PostgreSQL's initdb, new buckets, the auth app's tables),
then restarts on the same folder, as `make mlflow-team` does the second time. Parts are timed on
their own (PostgreSQL, SeaweedFS), then the whole server as ``helpers.servers.team_server`` starts it.

Run: .venv/bin/python benchmarks/team_server_start.py [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path

from helpers.servers.object_store import start_object_store
from helpers.servers.postgres import start_postgres
from helpers.servers.team_server import start_team_server


def timed(start, *args, **kwargs) -> tuple[float, float]:
    """Seconds to start (until ready) and to stop what ``start`` returns."""
    began = time.perf_counter()
    server = start(*args, **kwargs)
    ready = time.perf_counter() - began
    began = time.perf_counter()
    server.stop()
    return ready, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="fresh-folder runs to time (default 2)")
    args = parser.parse_args()
    print(f"{'part':46} {'start s':>8} {'stop s':>7}")
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            base, secret = Path(tmp), secrets.token_urlsafe(16)
            os.environ["WORKBOOK_BUILD_DIR"] = str(base / "build")  # the logs
            for label in ("first start", "restart"):
                # Bound now: each case runs in this iteration, on this iteration's folder and secret.
                cases = [
                    (
                        "PostgreSQL",
                        lambda base=base, secret=secret: start_postgres(base / "pg", secret, base / "pg.log"),
                    ),
                    (
                        "SeaweedFS (S3)",
                        lambda base=base, secret=secret: start_object_store(
                            base / "s3", "key", secret, base / "s3.log"
                        ),
                    ),
                    (
                        "team server (all three + MLflow)",
                        lambda base=base: start_team_server(port=0, folder=base / "team"),
                    ),
                ]
                for part, start in cases:
                    ready, stopped = timed(start)
                    print(f"{part + ', ' + label:46} {ready:8.1f} {stopped:7.1f}  (run {run + 1})", flush=True)


if __name__ == "__main__":
    main()
