"""Integration tests: the web service's own environment, installed by pipenv from Pipfile.lock.

Installing downloads the service's packages from the package registry (about a minute), so the
module installs once into a temporary work folder and shares it. Without pipenv or the registry
the tests skip, and with CI=true they fail instead.
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests
from sklearn.linear_model import LinearRegression

from helpers.core import config
from helpers.core.features import target
from helpers.ml import boosting
from helpers.ml.training import save_model, train_pipeline
from helpers.serve.service_env import (
    Install,
    ServiceEnv,
    install_service_env,
    installed_versions,
    pipfile_mismatches,
    start_install,
)
from helpers.serve.service_process import start_service
from helpers.servers.processes import group_alive, start_in_group
from tests.support import RIDE, skip_or_fail_in_ci

pytestmark = [pytest.mark.install, pytest.mark.servers, pytest.mark.xdist_group("pipenv")]

START_TIMEOUT = 180
PIPFILE = tomllib.loads((config.REPO_ROOT / "Pipfile").read_text())


def course_venv_contents() -> tuple[set[str], set[str]]:
    """The distributions and programs of the environment running the tests: the course's .venv."""
    site_packages = next(Path(path) for path in sys.path if path.endswith("site-packages"))
    return (
        {entry.name for entry in site_packages.glob("*.dist-info")},
        {entry.name for entry in (Path(sys.prefix) / "bin").iterdir()},
    )


@pytest.fixture(scope="module")
def venv_before() -> tuple[set[str], set[str]]:
    return course_venv_contents()


@pytest.fixture(scope="module")
def service_env(tmp_path_factory, venv_before) -> ServiceEnv:
    registry_url = PIPFILE["source"][0]["url"]
    try:
        requests.head(registry_url, timeout=15)
    except requests.RequestException as unreachable:
        skip_or_fail_in_ci(f"The Pipfile's package registry ({registry_url}) cannot be reached: {unreachable}.")
    try:
        return install_service_env(tmp_path_factory.mktemp("service-env"))
    except RuntimeError as failed:
        if "not installed" in str(failed):
            skip_or_fail_in_ci(str(failed))
        raise


def test_pipenv_installs_exactly_the_lock_into_the_work_folder(service_env):
    versions = installed_versions(service_env.python)

    assert service_env.python.is_file() and service_env.python.parent.parent == service_env.folder / ".venv"
    assert {name: f"=={versions[name]}" for name in PIPFILE["packages"]} == PIPFILE["packages"]
    # The service's environment, not the course's: no Jupyter, no Spark, no pipenv itself.
    assert not {"jupyterlab", "pyspark", "pipenv"} & versions.keys()


def test_the_course_venv_is_unchanged(service_env, venv_before):
    assert course_venv_contents() == venv_before


def test_the_service_runs_from_the_pipenv_environment(service_env, months, tmp_path):
    pipeline = train_pipeline(LinearRegression(), months[0])
    path = save_model(pipeline, tmp_path / "lin_reg.bin")

    with start_service(str(path), port=0, workers=1, timeout=START_TIMEOUT, python=service_env.python) as service:
        answer = requests.post(f"{service.url}/predict", json=RIDE, timeout=10).json()
        health = requests.get(f"{service.url}/health", timeout=10).json()
        interpreter = Path(service.process.args[0])

    assert answer == {"duration": pytest.approx(pipeline.predict([RIDE])[0]), "model_version": "lin_reg.bin"}
    assert health["model_uri"] == str(path)
    assert interpreter == service_env.python


def test_the_pipenv_environment_serves_an_xgboost_pipeline(service_env, months, tmp_path):
    # The champion is often chapter 03's XGBoost pipeline, whose pickle imports helpers.ml.boosting.
    df_train = months[0]
    params = {"max_depth": 4, "learning_rate": 0.3, "min_child_weight": 1.0, "reg_alpha": 0.01, "reg_lambda": 1.0}
    pipeline = boosting.make_pipeline(params, rounds=20).fit(df_train, target(df_train))
    path = save_model(pipeline, tmp_path / "xgboost.bin")

    with start_service(str(path), port=0, workers=1, timeout=START_TIMEOUT, python=service_env.python) as service:
        answer = requests.post(f"{service.url}/predict", json=RIDE, timeout=10).json()

    assert answer["duration"] == pytest.approx(float(pipeline.predict([RIDE])[0]), rel=1e-6)


def test_a_second_install_reuses_the_environment(service_env):
    again = install_service_env(service_env.folder)

    assert again.python == service_env.python
    assert again.seconds < service_env.seconds


def test_a_missing_or_other_version_is_a_mismatch():
    pins = {name.lower(): pin.removeprefix("==") for name, pin in PIPFILE["packages"].items()}

    assert pipfile_mismatches(pins) == {}
    assert pipfile_mismatches({**pins, "flask": "0.1"}) == {"flask": "0.1"}
    assert pipfile_mismatches({key: value for key, value in pins.items() if key != "mlflow"}) == {"mlflow": None}


def _install_of(command: list[str], folder: Path) -> Install:
    """An :class:`Install` of ``command`` instead of pipenv, to see how a failed or stuck one is told."""
    log_path = folder / "pipenv-install.log"
    process = start_in_group(command, None, log_path, cwd=folder)
    return Install(process=process, log_path=log_path, folder=folder, started=time.monotonic())


def test_a_failed_background_install_is_told_with_its_logs_last_lines(tmp_path):
    install = _install_of(["sh", "-c", "echo 'ERROR: Could not find a version that satisfies'; exit 1"], tmp_path)

    problem = install.wait(timeout=30)
    assert problem.startswith("`pipenv install --deploy` failed with code 1")
    assert "Could not find a version that satisfies" in problem


def test_a_stuck_background_install_is_stopped_at_its_timeout(tmp_path):
    install = _install_of(["sleep", "60"], tmp_path)

    assert "did not finish within 0.5 s" in install.wait(timeout=0.5)
    assert not group_alive(install.pgid)


def test_the_background_install_is_the_waited_one_and_reuses_the_environment(service_env):
    install = start_install(service_env.folder)

    assert install.wait() is None
    assert installed_versions(service_env.python) == installed_versions(install.folder / ".venv" / "bin" / "python")


def test_asking_for_pipenv_leaves_the_root_logger_as_it_was():
    import logging
    import subprocess

    script = (
        "import logging; from helpers.serve import service_env; service_env.pipenv_command(); "
        "print(logging.getLogger().level, len(logging.getLogger().handlers))"
    )
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert printed.split() == [str(logging.WARNING), "0"]
