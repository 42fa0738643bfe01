"""helpers.serve.predictions: what both batch engines read and write, and where (the jobs themselves:
test_batch.py and test_batch_spark.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers.core.twin import make_twin
from helpers.serve import predictions


def test_output_path_partitions_by_taxi_type_year_and_month(tmp_path):
    path = predictions.output_path(tmp_path, "green", 2021, 1)
    assert path == tmp_path / "taxi_type=green" / "year=2021" / "month=01" / "predictions.parquet"


def test_input_check_names_every_column_that_is_missing_or_of_another_type(tmp_path):
    rides = make_twin("green", 2020, 6, n_rows=20).drop_columns(["trip_distance", "PULocationID"])
    path = tmp_path / "green_tripdata_2020-06.parquet"
    pq.write_table(rides.append_column("PULocationID", pa.array(["Astoria"] * 20)), path)
    with pytest.raises(
        predictions.InputSchemaError, match="PULocationID is string, expected an integer; trip_distance is missing"
    ):
        predictions.check_input(path, "green")


def test_the_output_schema_names_the_colors_pickup_column():
    assert predictions.output_columns("yellow")[:2] == ["ride_id", "tpep_pickup_datetime"]
    assert predictions.input_columns("green")[:2] == ["lpep_pickup_datetime", "lpep_dropoff_datetime"]
