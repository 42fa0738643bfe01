"""The learner's path, taken as the README says: a fresh clone, no course variables, `make course`.

The clone is of the commit under test, in a temporary folder with a temporary HOME; only the
package managers' caches are shared, so setting up does not download the environment again.
The first run sets nothing at all: `make course` with the course's parameters, offline here (the TLC
site is out of reach), as a learner's first run on a machine without the network. Its executed
notebooks are compared with the committed ones, cell by cell as nbval compares them, so this run
is also the replay of the committed form. The second run, on the same clone, is a learner re-running
the course, quick and online, with the TLC site played by a loopback mirror, so the real download
code fetches every file the course reads. It re-runs the chapters that first download a file or
write shared state (RERUN); the other re-runs are proven by their own tests (see RERUN). The clone
(several GB with its environments) is deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.core import config, data
from helpers.core.tlc import trip_filename
from helpers.course.notebook_form import package_caches
from tests.support import TLCMirror, output_differences

pytestmark = [pytest.mark.learner_path, pytest.mark.xdist_group("learner-path")]

CHAPTERS = sorted((config.REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# The online rerun's chapters: each one that first downloads a file (01 the zones and January, 02
# February, 04 March, 05 the sensor's check, 08 the 2022-12 and 2023-01 months) or writes shared
# state again (04 chooses the champion among the candidates, 05 and 08 promote, 09 the team server's
# users and grants, 10 its broken candidate, registered once, and its scratch git repository). 03
# fetches only 01's and 02's months and adds runs beside the old ones. 06 and
# 07 only overwrite their own files; their re-runs are held by
# serve/test_batch.py::test_running_again_replaces_the_previous_output,
# serve/test_batch_spark.py::test_a_failed_job_publishes_no_month_and_keeps_the_previous_one and
# serve/test_service_env.py::test_a_second_install_reuses_the_environment.
RERUN = ("01", "02", "04", "05", "08", "09", "10")

# No chapter needs it, so the mirror leaves it out, as the real site does a month not published yet.
UNPUBLISHED = trip_filename("green", 2021, 6)
# What the clone's own environment reports about its store, as a learner's kernel would see it.
REGISTRY_PROBE = """
import json
from mlflow.tracking import MlflowClient
from helpers.ml import registry
versions = MlflowClient().search_model_versions(f"name = '{registry.MODEL_NAME}'")
champion = registry.version_by_alias(registry.CHAMPION)
print(json.dumps({"runs": [v.run_id for v in versions], "champion": str(champion.version),
                  "purposes": [v.tags.get("purpose") for v in versions if v.tags.get("purpose")],
                  "rmse": registry.version_rmse(champion.version, registry.load_test_month())}))
"""


def learner_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any of the course's variables, with a HOME of its own."""
    return config.learner_environ({**package_caches(), "HOME": str(home), **extra})


def make_course(clone: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "course", *args], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)


def chapter_statuses(stdout: str) -> dict[str, str]:
    """``{"01_environment": "ok", ...}`` from the summary table `make course` prints."""
    rows = [line.split() for line in stdout.splitlines() if line[:2].isdigit() and "_" in line[:4]]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


def git_status(clone: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", *args], cwd=clone, capture_output=True, text=True, check=True
    ).stdout


def registry_state(clone: Path, env: dict[str, str]) -> dict:
    probe = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c", REGISTRY_PROBE],
        cwd=clone,
        env={**env, "WORKBOOK_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    mirror = TLCMirror(tmp_path_factory.mktemp("tlc-mirror"), missing=frozenset({UNPUBLISHED})).start()
    yield mirror
    mirror.stop()


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learner") / "mlops-workbook"
    subprocess.run(["git", "clone", "--quiet", str(config.REPO_ROOT), str(folder)], check=True)
    yield folder
    # Gigabytes of environments: removed in the background (about 25 s), while the worker goes on.
    subprocess.Popen(["rm", "-rf", str(folder)], start_new_session=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def first_run(clone, home):
    env = learner_env(home)
    result = make_course(clone, env)
    return result, registry_state(clone, env)


@pytest.fixture(scope="module")
def online_rerun(first_run, clone, home, mirror):
    env = learner_env(home, WORKBOOK_TLC_URL=mirror.trip_url, WORKBOOK_ZONES_URL=mirror.zones_url)
    result = make_course(clone, env, f"COURSE_ARGS=--quick --only {','.join(RERUN)}")
    return result, registry_state(clone, env)


def _assert_every_chapter_ok(result: subprocess.CompletedProcess, numbers: tuple[str, ...] = ()) -> None:
    """Every chapter ran and passed, or every one of ``numbers`` when given."""
    statuses = chapter_statuses(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = [path.stem for path in CHAPTERS if not numbers or path.stem[:2] in numbers]
    assert sorted(statuses) == expected, result.stdout
    assert set(statuses.values()) == {"ok"}, result.stdout


def test_make_course_on_a_fresh_clone_with_nothing_set_runs_every_chapter(first_run):
    _assert_every_chapter_ok(first_run[0])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_the_first_run_gives_the_committed_outputs(first_run, clone, chapter):
    executed = clone / "build" / "notebooks" / chapter.name
    assert executed.exists(), first_run[0].stdout[-2000:]
    assert output_differences(chapter, executed) == []


def test_the_course_prints_no_kernel_transport_warning(first_run, online_rerun):
    for result, _ in (first_run, online_rerun):
        assert "without encryption" not in result.stdout + result.stderr


def test_the_course_caches_bytecode_even_where_the_machine_turns_it_off(first_run, clone):
    # Where PYTHONDONTWRITEBYTECODE is set (as on this project's CI) the Makefile unexports it; set-up
    # compiles no module, and never helpers' editable sources, so only an import can write this file.
    assert list((clone / "helpers" / "core" / "__pycache__").glob("config.*.pyc")), first_run[0].stdout[-2000:]


def test_the_course_leaves_git_status_clean_and_nothing_beside_the_notebooks(first_run, clone):
    assert git_status(clone) == ""
    assert git_status(clone, "--ignored", "notebooks") == ""


def test_a_second_make_course_online_succeeds(online_rerun):
    _assert_every_chapter_ok(online_rerun[0], RERUN)


def test_every_chapter_downloads_through_the_mirror(online_rerun, mirror):
    fetched = mirror.asked("GET")
    assert "taxi_zone_lookup.csv" in fetched
    assert {trip_filename("green", 2021, m) for m in (1, 2, 3)} <= fetched
    assert {trip_filename("green", 2022, 12), trip_filename("green", 2023, 1)} <= fetched
    assert UNPUBLISHED not in fetched
    assert mirror.asked("HEAD"), "the retraining sensor's check that a month is published never ran online"


def test_the_rerun_registers_no_version_twice_and_keeps_or_improves_the_champion(first_run, online_rerun, clone):
    before, after = first_run[1], online_rerun[1]
    assert len(after["runs"]) == len(set(after["runs"])), "two registered versions share a source run"
    assert after["purposes"] == before["purposes"] == ["chapter 10: a model that fails its tests"]
    assert after["rmse"] <= before["rmse"] + 1e-9, (before, after)
    assert git_status(clone) == ""
    assert git_status(clone, "--ignored", "notebooks") == ""


def test_a_month_the_mirror_lacks_gets_the_clear_404_message(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBOOK_TLC_URL", mirror.trip_url)
    monkeypatch.delenv("WORKBOOK_OFFLINE", raising=False)
    with pytest.raises(
        data.DownloadError,
        match=r"HTTP 404 for .*green_tripdata_2021-06.parquet; check that the "
        r"month is published",
    ):
        data.fetch_month("green", 2021, 6)
    assert list(tmp_path.iterdir()) == []
