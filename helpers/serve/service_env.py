"""The web service's own environment, installed by Pipenv from its ``Pipfile.lock``.

The course's ``.venv`` holds what every chapter needs (Jupyter, Spark, Evidently, Mage's clients);
the service needs a few packages, pinned with hashes in ``Pipfile.lock``, the same the Docker image
installs. :func:`start_install` copies the Pipfile and its lock into a work folder under ``build/``
and starts ``pipenv install --deploy`` there in the background, into a virtualenv of that folder's
own (chapter 07 writes its service meanwhile); :func:`install_service_env` waits for it.
``start_service(..., python=env.python)`` then serves from it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from helpers.core import config
from helpers.servers.processes import GroupProcess, log_tail, start_in_group

SERVICE_FILES = ("Pipfile", "Pipfile.lock")

# Each one keeps pipenv off the course's environment and files.
PIPENV_SETTINGS = {
    # The virtualenv goes into the work folder, as .venv, not into ~/.local/share/virtualenvs.
    "PIPENV_VENV_IN_PROJECT": "1",
    # An activated .venv (Codespaces terminals activate the course's) would be installed into.
    "PIPENV_IGNORE_VIRTUALENVS": "1",
    # Never the repository's own Pipfile, above build/, should the copy be missing.
    "PIPENV_NO_INHERIT": "1",
    # A log file, not a terminal: no spinner.
    "PIPENV_NOSPIN": "1",
}


@dataclass(frozen=True)
class ServiceEnv:
    """A Pipenv-made environment for the service."""

    folder: Path
    seconds: float

    @property
    def python(self) -> Path:
        """The environment's interpreter; its ``gunicorn`` lies beside it."""
        return venv_python(self.folder)


def venv_python(folder: Path) -> Path:
    """The interpreter of the environment pipenv makes in ``folder`` (``PIPENV_VENV_IN_PROJECT=1``)."""
    return folder / ".venv" / "bin" / "python"


def work_dir() -> Path:
    """Where the service's environment is installed (``<build>/service-env``)."""
    return config.build_dir() / "service-env"


def pipenv_command() -> list[str]:
    """``pipenv`` as the course's environment installs it (``make setup``), run by this interpreter.

    Raises:
        RuntimeError: pipenv is not installed here.
    """
    # Found, not imported: importing pipenv sets the root logger to INFO, and a kernel would then print
    # every library's INFO lines.
    if importlib.util.find_spec("pipenv") is None:
        raise RuntimeError("pipenv is not installed in this environment: run `make setup`.")
    return [sys.executable, "-m", "pipenv"]


def pipenv_environ() -> dict[str, str]:
    """This process's environment with :data:`PIPENV_SETTINGS`, and no trace of an active venv."""
    return config.child_environ(PIPENV_SETTINGS, drop=("VIRTUAL_ENV", "PIPENV_ACTIVE"))


@dataclass
class Install(GroupProcess):
    """``pipenv install --deploy`` running in the background (:func:`start_install`)."""

    folder: Path
    started: float

    def wait(self, timeout: float = 900) -> str | None:
        """Wait for the install to end: None once it worked, else what went wrong, with its log's last lines."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return f"pipenv install did not finish within {timeout:g} s; its log: {config.shown(self.log_path)}"
        if code:
            return (
                f"`pipenv install --deploy` failed with code {code} in {config.shown(self.folder)}:\n"
                f"{log_tail(self.log_path, 15)}"
            )
        return None


def copy_service_files(folder: Path) -> Path:
    """Copy the service's Pipfile and its lock into ``folder`` (made if missing); return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVICE_FILES:
        shutil.copy2(config.REPO_ROOT / name, folder / name)
    return folder


def start_install(folder: Path | None = None) -> Install:
    """Copy the service's Pipfile and lock into ``folder`` and start ``pipenv install --deploy`` there,
    in the background, its output going to ``pipenv-install.log`` in that folder.

    A second install on the same folder installs nothing new and takes seconds.

    Args:
        folder: The work folder; None is :func:`work_dir`.

    Raises:
        RuntimeError: pipenv is not installed here.
    """
    folder = copy_service_files(folder or work_dir()).absolute()
    log_path = folder / "pipenv-install.log"
    process = start_in_group([*pipenv_command(), "install", "--deploy"], pipenv_environ(), log_path, cwd=folder)
    return Install(process=process, log_path=log_path, folder=folder, started=time.monotonic())


def install_service_env(folder: Path | None = None, timeout: float = 900) -> ServiceEnv:
    """:func:`start_install`, waited for.

    Returns:
        The environment, with the seconds the install took.

    Raises:
        RuntimeError: pipenv is missing or failed (its log is quoted), e.g. the lock no longer
            matches the Pipfile (``--deploy``) or the package registry cannot be reached.
    """
    install = start_install(folder)
    if problem := install.wait(timeout):
        raise RuntimeError(problem)
    return ServiceEnv(folder=install.folder, seconds=time.monotonic() - install.started)


def pipfile_packages() -> dict[str, str]:
    """The ``[packages]`` of the service's Pipfile, each with its pin (``"==1.7.2"``)."""
    return tomllib.loads((config.REPO_ROOT / "Pipfile").read_text())["packages"]


def pipfile_mismatches(versions: Mapping[str, str]) -> dict[str, str | None]:
    """The Pipfile's packages that ``versions`` (from :func:`installed_versions`) lacks or holds at
    another version than its pin, each with the version found (None: missing)."""
    return {
        name: versions.get(name.lower())
        for name, pin in pipfile_packages().items()
        if versions.get(name.lower()) != pin.removeprefix("==")
    }


def installed_versions(python: Path) -> dict[str, str]:
    """Every distribution in the environment of ``python``, by its normalised name, with its version;
    empty when there is no such interpreter (e.g. pipenv never got to create the environment)."""
    if not python.is_file():
        return {}
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.lower().replace("_", "-"): version for name, version in json.loads(listing).items()}
