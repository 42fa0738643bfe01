"""The suite's tiers, a pytest plugin that the root conftest.py loads.

The tests come in tiers, by marker (pyproject.toml lists them): `pytest --unit` (`make unit`) runs
only the tests with none of the markers of :data:`HEAVY`, and refuses, while they run, to start any
process that is a server, a kernel or an install, so a test that does must be marked instead of
slowing the quick loop down unnoticed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The markers of the tests `make unit` leaves out: each starts a server, a kernel, an install or a
# clone, or needs Mage's environment, which `make unit` does not set up.
HEAVY = ("servers", "docker", "browser", "notebooks", "learner_path", "install", "mage")
# What a unit test may not start: programs by name, and `python -m <module>` by module.
_HEAVY_PROGRAMS = {
    "gunicorn",
    "postgres",
    "initdb",
    "pg_ctl",
    "weed",
    "java",
    "spark-submit",
    "mage",
    "jupyter",
    "jupyter-lab",
    "docker",
    "dockerd",
    "debootstrap",
    "chromium",
    "chromium-browser",
    "node",
    "pipenv",
    "uv",
    "pip",
    "make",
    "apt-get",
}
_HEAVY_MODULES = {
    "mlflow",
    "gunicorn",
    "moto.server",
    "ipykernel_launcher",
    "ipykernel",
    "pipenv",
    "pip",
    "uv",
    "jupyter",
    "jupyterlab",
    "helpers.course",
    "papermill",
    "http.server",
}


def heavy_process(args) -> str | None:
    """Why the command line ``args`` is a server, a kernel or an install, or None when it is none of those."""
    words = [str(word) for word in ([args] if isinstance(args, str | bytes | os.PathLike) else args)]
    if len(words) == 1 and " " in words[0]:  # a shell command line
        words = words[0].split()
    if not words:
        return None
    program = Path(words[0]).name
    if program in _HEAVY_PROGRAMS:
        return f"it runs {program}"
    if program.startswith("python") and "-m" in words[:-1]:
        module = words[words.index("-m") + 1]
        if module in _HEAVY_MODULES or module.split(".")[0] in {"mlflow", "mage_ai"}:
            return f"it runs python -m {module}"
    return None


def pytest_addoption(parser):
    parser.addoption(
        "--unit",
        action="store_true",
        help=f"the quick tier: only tests marked none of {', '.join(HEAVY)}; starting a server, "
        "a kernel or an install fails the test",
    )


def _refuse_heavy_processes(event: str, args: tuple) -> None:
    if event in {"subprocess.Popen", "os.exec", "os.posix_spawn"}:
        command = args[1]
    elif event == "os.system":
        command = args[0]
    else:
        return
    reason = heavy_process(command)
    if reason:
        raise RuntimeError(
            f"`make unit` starts no server, kernel or install, but this test did ({reason}: "
            f"{command!r}); mark it with one of {', '.join(HEAVY)}"
        )


def pytest_configure(config):
    if config.getoption("unit"):
        # An audit hook cannot be removed, and needs none: this process runs the unit tier only.
        sys.addaudithook(_refuse_heavy_processes)


def pytest_collection_modifyitems(config, items):
    if config.getoption("unit"):
        heavy = [item for item in items if any(item.get_closest_marker(name) for name in HEAVY)]
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if item not in heavy]
