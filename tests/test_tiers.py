"""The tiers of the suite: `make unit` (pytest --unit) runs only the tests with none of the heavy
markers, and a test in it that starts a server, a kernel or an install fails, naming what it started."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core import config
from tests.tiers import HEAVY, heavy_process


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "mlflow", "server", "--port", "5000"],
        ["/repo/.venv/bin/gunicorn", "helpers.serve.serving:create_app()"],
        [sys.executable, "-m", "ipykernel_launcher", "-f", "kernel.json"],
        ["/usr/lib/postgresql/bin/postgres", "-D", "data"],
        [sys.executable, "-m", "pipenv", "install", "--deploy"],
        ["docker", "build", "."],
        "make course",
    ],
)
def test_servers_kernels_and_installs_are_heavy(command):
    assert heavy_process(command)


@pytest.mark.parametrize(
    "command",
    [
        ["git", "ls-files"],
        [sys.executable, "-c", "import helpers"],
        ["bash", "-n", "scripts/ec2-setup.sh"],
        [sys.executable, "-m", "helpers.serve.batch", "--help"],
        ["id", "-u"],
    ],
)
def test_short_commands_are_not(command):
    assert heavy_process(command) is None


def test_the_markers_are_registered():
    text = (config.REPO_ROOT / "pyproject.toml").read_text()
    assert all(f'"{marker}: ' in text for marker in HEAVY)


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    # The tiers plugin alone, on a folder of the test's own.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.tiers",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "-q",
            *args,
            str(folder),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=config.child_environ({"PYTHONPATH": str(config.REPO_ROOT)}),
    )


def test_the_unit_tier_leaves_out_a_marked_test_and_fails_one_that_starts_a_server(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import subprocess, sys\nimport pytest\n\n"
        "def test_quick():\n    assert True\n\n"
        "@pytest.mark.servers\ndef test_marked():\n    assert True\n\n"
        "def test_starts_make():\n"
        "    subprocess.run(['make', '--version'], capture_output=True)\n"
    )
    unit = _pytest(tmp_path, "--unit")
    everything = _pytest(tmp_path)
    assert "1 failed, 1 passed, 1 deselected" in unit.stdout, unit.stdout[-2000:]
    assert "make unit` starts no server, kernel or install" in unit.stdout
    assert "3 passed" in everything.stdout, everything.stdout[-2000:]


def test_every_skip_goes_through_the_rule_that_fails_it_in_ci():
    # A bare skip would let a test stop running in CI unnoticed; skip_or_fail_in_ci fails there instead.
    pattern = re.compile(r"pytest\.skip\(|mark\.skipif|importorskip\(|pytest\.mark\.skip\b")
    found = [
        f"{path.relative_to(config.REPO_ROOT)}:{number}"
        for path in sorted((config.REPO_ROOT / "tests").rglob("*.py"))
        if path.name not in {"support.py", "test_tiers.py"}
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
