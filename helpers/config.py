"""Paths and settings for the whole course, decided in one place.

Every value comes from an environment variable when it is set, and otherwise from a default
relative to the repository root, so a notebook behaves the same whatever its working directory,
and with none of the variables set, which is how a learner runs it. Nothing here touches the file
system at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
TLC_ZONES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"

_TRUE = {"1", "true", "yes", "on"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def data_dir() -> Path:
    """Folder of the download cache (``WORKBOOK_DATA_DIR``, default ``<repo>/data``)."""
    return Path(os.environ.get("WORKBOOK_DATA_DIR", REPO_ROOT / "data")).expanduser().resolve()


def offline() -> bool:
    """True when ``WORKBOOK_OFFLINE`` asks never to touch the network."""
    return _env_flag("WORKBOOK_OFFLINE")


def tlc_base_url() -> str:
    """Base URL of the TLC trip files; ``WORKBOOK_TLC_URL`` points it at a mirror (or a test server)."""
    return os.environ.get("WORKBOOK_TLC_URL", TLC_BASE_URL).rstrip("/")


def tlc_zones_url() -> str:
    """URL of the TLC zone lookup table; ``WORKBOOK_ZONES_URL`` overrides it."""
    return os.environ.get("WORKBOOK_ZONES_URL", TLC_ZONES_URL)


def tracking_uri() -> str:
    """MLflow tracking URI (``MLFLOW_TRACKING_URI``, default SQLite file at the repo root)."""
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{REPO_ROOT / 'mlflow.db'}")


def export_tracking_uri() -> str:
    """Put the course's tracking URI into ``MLFLOW_TRACKING_URI`` unless it is set already.

    With the variable unset, MLflow's fluent API and ``MlflowClient`` create a store of their own
    in the working directory (``notebooks/mlflow.db`` in a kernel). Exported, every MLflow call of
    this process uses the course's store, and so do the processes it starts (Mage, gunicorn).

    Returns:
        The URI MLflow now uses.
    """
    return os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())


def monitoring_db_uri() -> str:
    """SQLAlchemy URL of chapter 07's metrics store (``WORKBOOK_MONITORING_DB``, default SQLite file
    at the repo root); a ``postgresql+psycopg://`` URL puts it in PostgreSQL, as the course does."""
    return os.environ.get("WORKBOOK_MONITORING_DB", f"sqlite:///{REPO_ROOT / 'monitoring.db'}")


def artifacts_dir(uri: str | None = None) -> Path:
    """Where a local MLflow store keeps artifacts: ``mlartifacts/`` beside its SQLite file.

    Keeping them together means a test's temporary store, or a second course checkout, never
    writes into another's artifacts; anything but a SQLite store uses ``<repo>/mlartifacts``.
    """
    uri = uri or tracking_uri()
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        return Path(uri[len(prefix):]).resolve().parent / "mlartifacts"
    return REPO_ROOT / "mlartifacts"


def models_dir() -> Path:
    """Where chapter 02 saves its pickled model (``WORKBOOK_MODELS_DIR``, default ``<repo>/models``)."""
    return Path(os.environ.get("WORKBOOK_MODELS_DIR", REPO_ROOT / "models")).expanduser().resolve()


def build_dir() -> Path:
    """Generated outputs: executed notebooks, reports (``WORKBOOK_BUILD_DIR``, default ``<repo>/build``)."""
    return Path(os.environ.get("WORKBOOK_BUILD_DIR", REPO_ROOT / "build")).expanduser().resolve()


def screenshots_dir() -> Path:
    """What the browser tests saw (``WORKBOOK_SCREENSHOTS_DIR``, default ``<build dir>/screenshots``)."""
    return Path(os.environ.get("WORKBOOK_SCREENSHOTS_DIR", build_dir() / "screenshots")).expanduser().resolve()


def quick() -> bool:
    """True when ``WORKBOOK_QUICK`` asks the notebooks for small parameters (set by ``make test``)."""
    return _env_flag("WORKBOOK_QUICK")


def mage_url() -> str | None:
    """A running Mage server that retraining may use (``WORKBOOK_MAGE_URL``, default the port of
    ``make mage`` on loopback); set it empty to never use one."""
    url = os.environ.get("WORKBOOK_MAGE_URL", "http://127.0.0.1:6789").strip()
    return url or None


def team_dir() -> Path:
    """Chapter 08's team server data: PostgreSQL, the object store, generated credentials
    (``WORKBOOK_TEAM_DIR``, default ``<repo>/team-server``)."""
    return Path(os.environ.get("WORKBOOK_TEAM_DIR", REPO_ROOT / "team-server")).expanduser().resolve()


def team_port() -> int:
    """Port of the team tracking server (``WORKBOOK_TEAM_PORT``, default 5001; 0 picks a free one).

    Raises:
        ValueError: The variable is not a port number.
    """
    value = os.environ.get("WORKBOOK_TEAM_PORT", "5001").strip()
    if not value.isdigit() or int(value) > 65535:
        raise ValueError(f"WORKBOOK_TEAM_PORT must be a port number (0-65535), not {value!r}")
    return int(value)


def isolated_env(base: Path) -> dict[str, str]:
    """Settings that keep a run's data cache, models, MLflow stores and monitoring metrics under ``base``,
    offline and quick."""
    return {
        "WORKBOOK_OFFLINE": "1",
        "WORKBOOK_QUICK": "1",
        "WORKBOOK_DATA_DIR": str(base / "data"),
        "WORKBOOK_MODELS_DIR": str(base / "models"),
        "WORKBOOK_BUILD_DIR": str(base / "build"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "WORKBOOK_MONITORING_DB": f"sqlite:///{base / 'monitoring.db'}",
        # A Mage server found on the default port belongs to someone else's stores.
        "WORKBOOK_MAGE_URL": "",
        "WORKBOOK_TEAM_DIR": str(base / "team-server"),
        # Parallel runs each start their own team server.
        "WORKBOOK_TEAM_PORT": "0",
    }
