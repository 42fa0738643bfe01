"""Session-wide settings for `make test` and `make unit`: every test runs offline and quick on its own
temporary data cache, models folder and MLflow store, so a learner's own files (real TLC downloads,
their mlflow.db) neither change the results the tests compare nor get touched.

The tests come in tiers, by marker: `--unit` (`make unit`) runs the quick one (tests/tiers.py).
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers.core.config import isolated_env, screenshots_dir

pytest_plugins = ["tests.tiers"]

_BASE = Path(tempfile.mkdtemp(prefix="workbook-tests-"))


def pytest_configure(config):
    # Screenshots are for people to look at after the run, so they go to the checkout's build/
    # (or the caller's WORKBOOK_BUILD_DIR), not to the session's temporary one.
    os.environ.setdefault("WORKBOOK_SCREENSHOTS_DIR", str(screenshots_dir()))
    os.environ.update(isolated_env(_BASE))
    if config.getoption("nbval_lax", default=False):
        # `make replay`: the committed notebooks hold the course's default run, not the quick one.
        del os.environ["WORKBOOK_QUICK"]


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))


def pytest_unconfigure(config):
    shutil.rmtree(_BASE, ignore_errors=True)


# `make test` runs on two xdist workers (`-n 2 --dist loadgroup`). Tests that share state stay on
# one worker: each test module (its module-scoped stores and servers), each chapter's papermill run
# and the tests reading it, and the learner's clone. The longest groups go first, so the workers
# finish at about the same time.
_LONGEST_FIRST = [
    "learner-path",
    "tests/orchestrate/test_mage.py",
    "tests/servers/test_team_server.py",
    "chapter-06",
    "chapter-05",
    "chapter-07",
    "chapter-08",
    "chapter-03",
    "chapter-04",
]


def _group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker else ""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # The learner's clone is the suite's longest chain (a whole course, then a second, one after the
    # other), so the worker running it would finish last, the other idle: every other test's process
    # and what it starts yield the CPU to it (nice 10), and the two workers end at about the same time.
    if _group(item) != "learner-path" and os.getpriority(os.PRIO_PROCESS, 0) < _YIELDING:
        os.setpriority(os.PRIO_PROCESS, 0, _YIELDING)


_YIELDING = 10


def pytest_itemcollected(item):
    # Marked as each item is collected: xdist reads the marks in its collection hook, before ours.
    if not _group(item):
        item.add_marker(pytest.mark.xdist_group(item.path.relative_to(item.config.rootpath).as_posix()))
