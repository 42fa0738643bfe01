"""Session-wide settings for `make test`: every test, unit or notebook, runs offline and quick
on its own temporary data cache, models folder and MLflow store, so a learner's own files (real
TLC downloads, their mlflow.db) neither change the results nbval compares nor get touched."""

import os
import shutil
import tempfile
from pathlib import Path

from helpers.config import isolated_env

_BASE = Path(tempfile.mkdtemp(prefix="workbook-tests-"))


def pytest_configure(config):
    os.environ.update(isolated_env(_BASE))


def pytest_unconfigure(config):
    shutil.rmtree(_BASE, ignore_errors=True)
