"""Batch scoring on Spark: the job of :mod:`helpers.serve.batch`, for when one pandas process is not enough.

``python -m helpers.serve.batch --engine spark --color yellow --months 2021-01..2021-12`` reads every month
in one Spark job, scores it with ``mlflow.pyfunc.spark_udf`` (the same MLflow model as the pandas
engine: a registry alias, a run or a pickled file) and writes the same files: one
``taxi_type=<color>/year=<YYYY>/month=<MM>/predictions.parquet`` per month, with the rows in file
order, the columns of :func:`helpers.serve.predictions.output_schema` and the same ``ride_id`` (``_metadata.row_index``
is the row number in the file that pandas has as its index).

Each month appears complete or not at all: Spark writes into a hidden staging folder beside the
output, and only when every task has succeeded is each month's file renamed into place.

On a cluster (``spark-submit --master spark://host:7077``, ``yarn`` or ``k8s://...``, with
``--py-files`` holding ``helpers``): the model is resolved and downloaded on the driver, so the driver
needs ``MLFLOW_TRACKING_URI`` pointing at the tracking server (not a ``sqlite:///`` file of a laptop);
``spark_udf`` ships the model to the executors itself. The months are fetched on the driver too, so
the output and data folders must be on storage the executors share (NFS or the like).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from functools import reduce
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.core import config, data
from helpers.core.features import RIDE_FIELDS
from helpers.core.tlc import DROPOFF_COLUMN, PICKUP_COLUMN
from helpers.ml import models, training
from helpers.serve import predictions
from helpers.servers import spark_session

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


@contextmanager
def mlflow_model(model_uri: str) -> Iterator[tuple[Path, str]]:
    """The model as a local MLflow model folder, for ``spark_udf``, and its version, for the rows.

    A registry alias is resolved once, to the version it names now, so every row gets the version that
    scored it. A pickled pipeline file is saved as an MLflow model first: ``spark_udf`` reads only those.

    Raises:
        helpers.serve.predictions.ModelLoadError: the model could not be resolved or downloaded.
    """
    import mlflow

    with tempfile.TemporaryDirectory(prefix="workbook-spark-model-") as folder, _quiet_mlflow():
        try:
            uri = models.pinned(model_uri)
            version = models.version_of(uri)
            if uri.startswith(("models:/", "runs:/")):
                local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=folder))
            else:
                local = Path(folder) / "model"
                pipeline = training.load_model(Path(uri.removeprefix("file://")))
                # Pickled, as the file already is; the pin spares MLflow seconds of inferring requirements.
                mlflow.sklearn.save_model(
                    pipeline,
                    local,
                    serialization_format="pickle",
                    pip_requirements=[f"scikit-learn=={metadata.version('scikit-learn')}"],
                )
        except Exception as exc:  # a file, a run or a registry: each fails in its own way
            raise predictions.ModelLoadError(f"cannot load the model {model_uri!r}: {exc}") from exc
        yield local, version


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Without MLflow's notes that do not apply here: a pickle warning for a file that is a pickle
    already, env_manager="local" (the workers run the driver's environment, the one uv.lock made),
    and progress bars for copying a local folder."""
    names = ["mlflow.sklearn", "mlflow.pyfunc", "mlflow.models.flavor_backend_registry"]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with config.temporary_environ(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def read_months(spark: SparkSession, color: str, inputs: Sequence[data.MonthData]) -> DataFrame:
    """The rides of every month, with ``row`` (its row number in the file), ``year`` and ``month`` (the
    partition values, as strings: ``"2021"``, ``"01"``) and ``prefix`` (of its ride ids)."""
    from pyspark.sql import functions as F

    frames = [
        spark.read.parquet(str(month.path)).select(
            *predictions.input_columns(color),
            F.col("_metadata.row_index").alias("row"),
            F.lit(f"{month.year:04d}").alias("year"),
            F.lit(f"{month.month:02d}").alias("month"),
            F.lit(predictions.ride_id_prefix(month.year, month.month)).alias("prefix"),
        )
        for month in inputs
    ]
    return reduce(lambda a, b: a.unionByName(b), frames)


def score(spark: SparkSession, rides: DataFrame, model_dir: Path, version: str, color: str) -> DataFrame:
    """The output columns of :func:`helpers.serve.predictions.output_schema` for ``rides`` (from :func:`read_months`),
    with ``row``, ``year`` and ``month`` kept for writing."""
    import mlflow
    from pyspark.sql import functions as F

    with _quiet_mlflow():
        predict = mlflow.pyfunc.spark_udf(spark, str(model_dir), result_type="double", env_manager="local")
    pickup, dropoff = F.col(PICKUP_COLUMN[color]), F.col(DROPOFF_COLUMN[color])
    # Microseconds / 1e6 / 60, the same float operations as features.add_duration's total_seconds() / 60.
    actual = F.timestamp_diff("MICROSECOND", pickup, dropoff) / 1e6 / 60
    predicted = predict(F.struct(*RIDE_FIELDS))
    scored = rides.select(
        F.concat("prefix", F.col("row").cast("string")).alias("ride_id"),
        pickup,
        F.col("PULocationID").cast("long"),
        F.col("DOLocationID").cast("long"),
        actual.alias("actual_duration"),
        predicted.alias("predicted_duration"),
        F.lit(version).alias("model_version"),
        "row",
        "year",
        "month",
    ).withColumn("diff", F.col("actual_duration") - F.col("predicted_duration"))
    return scored.select(*predictions.output_columns(color), "row", "year", "month")


def write_months(scored: DataFrame, base: Path, color: str, inputs: Sequence[data.MonthData]) -> list[Path]:
    """Write one predictions file per month, in row order, each renamed into place once all are written.

    Returns:
        The files written, in the order of ``inputs``.
    """
    # Dot-named, so readers of the dataset (pyarrow, Spark) skip it while it fills.
    staging = Path(base) / f".spark-{uuid.uuid4().hex}"
    try:
        # One task per month, rows in file order: one file per month, as pandas writes it.
        (
            scored.repartition("year", "month")
            .sortWithinPartitions("year", "month", "row")
            .drop("row")
            .write.partitionBy("year", "month")
            .parquet(str(staging))
        )
        written = {}
        for month in inputs:
            files = list((staging / f"year={month.year:04d}" / f"month={month.month:02d}").glob("part-*.parquet"))
            if len(files) != 1:
                raise RuntimeError(
                    f"Spark wrote {len(files)} files for {month.year:04d}-{month.month:02d}, "
                    "expected 1; no month was published"
                )
            written[predictions.output_path(base, color, month.year, month.month)] = files[0]
        for path, file in written.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, path)
        return list(written)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_months(
    color: str, months: Sequence[tuple[int, int]], model_uri: str, base: Path, *, master: str | None = None
) -> list[Path]:
    """Score ``months`` in one Spark job (see :func:`helpers.serve.batch.run_months`, which calls this).

    The cheap checks come first, so a bad model, month or file fails in seconds, before the JVM
    starts: Spark and Java present, the model, every month's file.

    Raises:
        helpers.servers.spark_session.SparkUnavailable: pyspark or Java is missing.
        helpers.serve.predictions.ModelLoadError: the model could not be loaded.
        helpers.core.data.DownloadError, helpers.serve.predictions.InputSchemaError: a month could not be had or read.
    """
    problem = spark_session.missing()
    if problem:
        raise spark_session.SparkUnavailable(problem)
    with mlflow_model(model_uri) as (model_dir, version):
        inputs = predictions.fetch_inputs(color, months)
        with spark_session.session(master) as spark:
            scored = score(spark, read_months(spark, color, inputs), model_dir, version, color)
            paths = write_months(scored, base, color, inputs)
    logger.info("wrote %d month(s) of predictions of model %s under %s", len(paths), version, base)
    return paths
