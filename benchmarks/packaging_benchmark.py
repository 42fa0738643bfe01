"""What packaging chapter 07's service costs: the Pipenv environment and the Docker image.

Measures, on this machine:
- ``pipenv install --deploy`` of the service's lock into a new folder (cold: every package
  downloaded and installed) and again into the same folder (nothing to do);
- with a Docker daemon: the Debian-made base image (``--cold-base`` removes it first, otherwise an
  existing one is reused and reported as such), the image built with ``--no-cache`` and again
  from its cache, its size, and a container's start until ``/ping`` answers.
Nothing runs in parallel with the steps it times; a loaded machine slows every figure.

Run: .venv/bin/python benchmarks/packaging_benchmark.py [--cold-base] [--skip-pipenv] [--skip-docker]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sklearn.linear_model import LinearRegression

from helpers.core.data import fetch_month
from helpers.core.features import read_prepared
from helpers.ml.training import save_model, train_pipeline
from helpers.serve import container, service_env

BENCH_TAG = "ride-duration:benchmark"


def timed(label: str, action):
    started = time.monotonic()
    result = action()
    print(f"{label}: {time.monotonic() - started:.1f} s", flush=True)
    return result


def bench_pipenv() -> None:
    with tempfile.TemporaryDirectory(prefix="pipenv-bench-") as folder:
        env = timed("pipenv install --deploy, new folder", lambda: service_env.install_service_env(Path(folder)))
        timed("pipenv install --deploy, same folder again", lambda: service_env.install_service_env(Path(folder)))
        size = subprocess.run(["du", "-sm", str(env.folder / ".venv")], capture_output=True, text=True).stdout.split()[
            0
        ]
        print(f"service environment: {len(service_env.installed_versions(env.python))} packages, {size} MB")


def bench_docker(cold_base: bool) -> None:
    if problem := container.daemon_missing():
        sys.exit(problem)
    if cold_base and container.image_exists(container.DEBIAN_BASE):
        subprocess.run([container.docker_client(), "rmi", container.DEBIAN_BASE], check=True, capture_output=True)
    if container.image_exists(container.DEBIAN_BASE):
        print(f"base image {container.DEBIAN_BASE} exists already: reused (--cold-base times making it)")
    base = timed("base image", container.default_base_image)
    timed("image build, --no-cache", lambda: container.build_image(BENCH_TAG, base, no_cache=True))
    timed("image build, cached", lambda: container.build_image(BENCH_TAG, base))
    print(f"image size: {container.image_size(BENCH_TAG) / 1e9:.2f} GB")
    with tempfile.TemporaryDirectory(prefix="container-bench-") as folder:
        pipeline = train_pipeline(LinearRegression(), read_prepared(fetch_month("green", 2021, 1).path))
        model = save_model(pipeline, Path(folder) / "model.bin")
        Path(folder).chmod(0o755)  # the container's user is not this one
        running = timed(
            "container start until /ping",
            lambda: container.run_container(
                BENCH_TAG, {"MODEL_URI": "/models/model.bin"}, port=0, volumes={model.parent: "/models"}
            ),
        )
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-base", action="store_true", help="remove the Debian-made base image first")
    parser.add_argument("--skip-pipenv", action="store_true")
    parser.add_argument("--skip-docker", action="store_true")
    args = parser.parse_args()
    if not args.skip_pipenv:
        bench_pipenv()
    if not args.skip_docker:
        bench_docker(args.cold_base)


if __name__ == "__main__":
    main()
