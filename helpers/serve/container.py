"""Chapter 07's web service in Docker: the image built from the ``Dockerfile``, run as a container.

``docker build`` needs a base image with Python 3.11 (``python:3.11-slim`` by default). Where no
image registry is reachable, :func:`build_debian_base` makes one from Debian 12 "bookworm"
packages (its Python is 3.11) with debootstrap, with a venv first on PATH so that ``python`` and
``pip`` run as in the official image (Debian's own Python refuses ``pip install``, PEP 668).
Builds and containers use the host's network: it works the same on a daemon without a bridge, and
a container reaches a tracking server on the host's 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

from helpers.core import config
from helpers.core.polling import WaitTimeout, wait_for
from helpers.serve import service_env, service_process
from helpers.servers.processes import (
    LoopbackServer,
    claimed_port,
    ensure_ready,
    http_answers,
    run_logged,
    start_in_group,
)

IMAGE = "ride-duration"
DEBIAN_BASE = "workbook-python:3.11-bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# passwd: the Dockerfile's useradd; the rest of minbase is what apt and a shell need.
DEBIAN_PACKAGES = ("python3", "python3-venv", "passwd")
BASE_VENV = "/opt/venv"
BASE_PATH = f"{BASE_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PORT = 9696
_POLL_SECONDS = 0.2


def docker_client() -> str:
    """The docker command the image is built and run with: ``WORKBOOK_DOCKER``, or else the first
    ``docker`` on PATH that builds with BuildKit (which the Dockerfile's build secret needs)."""
    return config.docker_client() or _buildkit_docker()


@cache
def _buildkit_docker() -> str:
    found = []
    for folder in os.get_exec_path():
        candidate = shutil.which("docker", path=folder)
        if candidate and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    for candidate in found:
        if _builds_with_buildkit(candidate):
            return candidate
    return "docker"


def _builds_with_buildkit(client: str) -> bool:
    # Clients from 23 on build through the buildx plugin; older ones (Debian 12's) have BuildKit inside.
    if subprocess.run([client, "buildx", "version"], capture_output=True).returncode == 0:
        return True
    version = subprocess.run([client, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True)
    major = version.stdout.strip().split(".")[0]
    return major.isdigit() and int(major) < 23


def daemon_missing() -> str | None:
    """Why no Docker daemon can be used here, or None when one answers."""
    client = shutil.which(docker_client())
    if client is None:
        return f"No `{docker_client()}` command: install Docker (Docker Desktop, or apt's docker.io)."
    if not _builds_with_buildkit(client):
        return (
            f"`{client}` cannot build with BuildKit, which the Dockerfile needs: install its buildx "
            "plugin (apt-get install docker-buildx), or point WORKBOOK_DOCKER at a client that has it."
        )
    answer = subprocess.run(
        [client, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=60
    )
    if answer.returncode:
        reason = (answer.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"No Docker daemon answers ({reason}): start Docker Desktop, or `dockerd` as root."
    return None


def _docker(*args: str, env: Mapping[str, str] | None = None, timeout: float = 600, stderr: bool = False) -> str:
    """Run a docker command and return what it printed (with ``stderr``, where BuildKit writes its
    progress, too); raise with its output when it fails."""
    command = [docker_client(), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"`{' '.join(command)}` failed with code {result.returncode}:\n{output}")
    return result.stdout + result.stderr if stderr else result.stdout


def image_exists(tag: str) -> bool:
    """True when the daemon holds an image named ``tag``."""
    return subprocess.run([docker_client(), "image", "inspect", tag], capture_output=True).returncode == 0


def container_exists(name: str) -> bool:
    """True when the daemon holds a container named ``name``, running or stopped."""
    return subprocess.run([docker_client(), "container", "inspect", name], capture_output=True).returncode == 0


def default_base_image() -> str | None:
    """The base image to build on here: the Debian-made one where it can be made (root, debootstrap),
    since no image registry may be reachable; otherwise None, the Dockerfile's ``python:3.11-slim``."""
    if os.geteuid() == 0 and shutil.which("debootstrap"):
        return build_debian_base()
    return None


def build_debian_base(tag: str = DEBIAN_BASE, mirror: str = DEBIAN_MIRROR) -> str:
    """Make a Python 3.11 base image from Debian bookworm's packages, unless ``tag`` exists already.

    Args:
        tag: The image's name, passed to ``docker build`` as ``BASE_IMAGE``.
        mirror: The Debian archive debootstrap installs from.

    Returns:
        ``tag``.

    Raises:
        RuntimeError: Not root, no ``debootstrap``, or a step failed (with its output).
    """
    if image_exists(tag):
        return tag
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise RuntimeError(
            "Building a base image from Debian packages needs root and debootstrap "
            "(apt-get install debootstrap), or pass a base image you have instead."
        )
    rootfs = config.build_dir() / "docker-base" / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    run_logged(
        ["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}", "bookworm", str(rootfs), mirror],
        rootfs.parent / "debootstrap.log",
    )
    run_logged(["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", BASE_VENV], rootfs.parent / "venv.log")
    # apt's package lists and the documentation are a third of the tree, and no image step reads them.
    for unread in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(rootfs / unread, ignore_errors=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [docker_client(), "import", "--change", f"ENV PATH={BASE_PATH}", "--change", 'CMD ["python"]', "-", tag],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
    )
    tar.stdout.close()
    if tar.wait() or imported.returncode:
        raise RuntimeError(f"Importing {rootfs} as {tag} failed: {imported.stderr.strip()}")
    shutil.rmtree(rootfs)
    return tag


def build_image(
    tag: str = IMAGE, base_image: str | None = None, no_cache: bool = False, dockerfile: Path | None = None
) -> str:
    """``docker build`` the repository root, on the host's network.

    Args:
        tag: The image's name.
        base_image: ``BASE_IMAGE`` for the build; None keeps the Dockerfile's ``python:3.11-slim``.
        no_cache: Run every step again, as on a machine that never built it (a cold build).
        dockerfile: Another Dockerfile for the same context, e.g. the one chapter 07 writes; default
            the repository's ``Dockerfile``.

    Returns:
        What the build printed.

    Raises:
        RuntimeError: The build failed; the message quotes the end of its output.
    """
    args = ["build", "--network", "host", "--progress", "plain", "--tag", tag]
    if no_cache:
        args.append("--no-cache")
    if dockerfile is not None:
        args += ["--file", str(Path(dockerfile).absolute())]
    if base_image:
        args += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if bundle := config.pip_cert():
        args += ["--secret", f"id=ca_bundle,src={bundle}"]
    # The build secret needs BuildKit, which Docker's own clients use by default and Debian's does not.
    return _docker(
        *args, str(config.REPO_ROOT), env=config.child_environ({"DOCKER_BUILDKIT": "1"}), timeout=1800, stderr=True
    )


def image_size(tag: str = IMAGE) -> int:
    """The image's size in bytes, as the daemon counts it."""
    return int(_docker("image", "inspect", "--format", "{{.Size}}", tag))


@dataclass
class ServiceContainer(LoopbackServer):
    """A container of the service's image, run by ``docker run`` in the foreground of its own group."""

    name: str

    # `docker run` passes the signal on to gunicorn, whose quick shutdown SIGINT is.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def health(self) -> str:
        """The HEALTHCHECK's verdict: ``starting``, ``healthy`` or ``unhealthy``."""
        return _docker("inspect", "--format", "{{.State.Health.Status}}", self.name).strip()

    def process_users(self) -> set[str]:
        """The user ids the container's processes run as (gunicorn's master and its workers)."""
        # The daemon needs the pid column to tell the container's processes apart.
        table = _docker("top", self.name, "-o", "pid,uid").splitlines()
        return {line.split()[1] for line in table[1:]}

    def stop(self, timeout: float = 60) -> None:
        """Stop the container and its ``docker run``, and wait until the container is gone;
        calling it again does nothing.

        Args:
            timeout: Seconds for ``docker run`` to end, and again for the container to be removed.
        """
        # The client ends once --rm has removed the container: with the vfs storage driver (where
        # the kernel has no overlayfs) that deletes a whole copy of the image, about 10 s.
        super().stop(timeout)
        # A killed client leaves its container running, or still being removed.
        subprocess.run([docker_client(), "rm", "--force", self.name], capture_output=True)
        # A container the daemon is still removing after the timeout is left to it: nothing more to do here.
        with contextlib.suppress(WaitTimeout):
            wait_for(lambda: not container_exists(self.name), timeout=timeout, poll=_POLL_SECONDS)


def run_container(
    image: str = IMAGE,
    env: Mapping[str, str] | None = None,
    port: int = DEFAULT_PORT,
    health_interval: str | None = None,
    volumes: Mapping[Path, str] | None = None,
    timeout: float = 120,
) -> ServiceContainer:
    """Run the service's image on the host's network, listening on 127.0.0.1, until ``/ping`` answers.

    Args:
        image: The image to run.
        env: Variables for the container (``MODEL_URI``, ``MLFLOW_TRACKING_URI``).
        port: Port to listen on; a busy port (or 0) is replaced by a free one.
        health_interval: The HEALTHCHECK's interval and start period instead of the image's 30 s.
        volumes: Host folders to mount read-only, each with the path it gets inside the container.
        timeout: Seconds to wait for ``/ping``.

    Returns:
        The running container; ``stop()`` (or the end of a ``with`` block) stops and removes it.

    Raises:
        RuntimeError: The container exited or did not answer in time; the message quotes its log.
    """
    options = ["--rm", "--network", "host"]
    for key, value in (env or {}).items():
        options += ["--env", f"{key}={value}"]
    for folder, inside in (volumes or {}).items():
        options += ["--volume", f"{Path(folder).absolute()}:{inside}:ro"]  # docker takes no relative path
    if health_interval:
        options += ["--health-interval", health_interval, "--health-start-period", health_interval]
    return start_container(options, image, port, timeout)


def start_container(
    options: Sequence[str], image: str = IMAGE, port: int = DEFAULT_PORT, timeout: float = 120
) -> ServiceContainer:
    """``docker run <options> <image>`` with a name and the service on 127.0.0.1:``port``, until
    ``/ping`` answers: :func:`run_container`'s options, or a documented ``docker run`` line's.

    Args:
        options: What goes between ``docker run`` and the image; it must share the host's network.
        image: The image to run.
        port: Port to listen on; a busy port (or 0) is replaced by a free one.
        timeout: Seconds to wait for ``/ping``.

    Raises:
        RuntimeError: The container exited or did not answer in time; the message quotes its log.
    """
    host = "127.0.0.1"
    with claimed_port(host, port) as chosen:
        name = f"{image.replace(':', '-').replace('/', '-')}-{chosen}"
        # PORT moves the HEALTHCHECK's probe; GUNICORN_CMD_ARGS keeps gunicorn off the host's other interfaces.
        command = [
            docker_client(),
            "run",
            *options,
            "--name",
            name,
            "--env",
            f"PORT={chosen}",
            "--env",
            f"GUNICORN_CMD_ARGS=--bind {host}:{chosen}",
            image,
        ]
        log_path = config.build_dir() / f"container-{chosen}.log"
        # A container of a killed run may still hold the name (and this port).
        subprocess.run([docker_client(), "rm", "--force", name], capture_output=True)
        container = ServiceContainer(
            process=start_in_group(command, None, log_path), log_path=log_path, port=chosen, name=name
        )
        ensure_ready(
            container,
            command,
            lambda: http_answers(f"{container.url}/ping", "PONG"),
            label=f"The container of {image}",
            what=f"{container.url}/ping",
            timeout=timeout,
            poll=_POLL_SECONDS,
        )
    return container


def start_packaged_service(model_file: Path, pipenv_folder: Path) -> tuple[LoopbackServer, str]:
    """Serve a pickled model as the service ships, on a free port, for an integration test: its image
    where a Docker daemon answers; else gunicorn from the Pipenv environment in ``pipenv_folder``
    (chapter 07's), when it was installed; else this environment's gunicorn.

    Returns:
        The running service (``stop()`` ends it) and which of the three serves, for a sentence.

    Raises:
        RuntimeError: the build failed, or the service did not answer; the message quotes its log.
    """
    if daemon_missing() is None:
        build_image(IMAGE, default_base_image())
        env = {"MODEL_URI": f"/models/{model_file.name}"}
        return run_container(IMAGE, env, port=0, volumes={model_file.parent: "/models"}), "the service's container"
    python = service_env.venv_python(pipenv_folder)
    if python.exists():
        served = service_process.start_service(str(model_file), port=0, python=python)
        return served, "gunicorn from chapter 07's Pipenv environment"
    return service_process.start_service(str(model_file), port=0), "the course's gunicorn"
