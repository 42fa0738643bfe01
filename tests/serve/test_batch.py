import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression

from helpers.core import config, tlc
from helpers.core.features import duration_mask, prepare
from helpers.core.twin import make_twin
from helpers.ml import models
from helpers.ml.training import save_model, train_pipeline
from helpers.serve import batch
from tests.support import registered_champion, synthetic_month

GREEN_2021_01_ROWS = 76_518


@pytest.fixture(scope="module")
def model():
    # Trained on a twin month so that most, not all, pickup/dropoff pairs of another month are known.
    pipeline = train_pipeline(LinearRegression(), prepare(make_twin("green", 2021, 2, n_rows=20_000).to_pandas()))
    return models.LoadedModel("memory", "7", pipeline)


@pytest.fixture(scope="module")
def green():
    return make_twin("green", 2021, 1, n_rows=2_000).to_pandas()


@pytest.fixture
def model_file(tmp_path):
    return save_model(train_pipeline(LinearRegression(), synthetic_month(2_000, seed=1)), tmp_path / "m.bin")


def test_score_month_has_the_course_columns_in_order(model, green):
    scored = batch.score_month(model, green, "green", progress=False)
    assert list(scored.columns) == [
        "ride_id",
        "lpep_pickup_datetime",
        "PULocationID",
        "DOLocationID",
        "actual_duration",
        "predicted_duration",
        "diff",
        "model_version",
    ]
    assert scored.dtypes[
        ["lpep_pickup_datetime", "PULocationID", "actual_duration", "predicted_duration", "diff"]
    ].tolist() == [green["lpep_pickup_datetime"].dtype, np.int64, float, float, float]
    assert pd.api.types.is_string_dtype(scored["ride_id"]) and pd.api.types.is_string_dtype(scored["model_version"])
    assert len(scored) == len(green)


def test_ride_id_is_year_month_and_the_row_number_in_the_file(model, green):
    scored = batch.score_month(model, green.iloc[[5, 9]], "green", year=2021, month=1, progress=False)
    assert scored["ride_id"].tolist() == ["2021/01_5", "2021/01_9"]


def test_the_year_and_month_default_to_the_month_of_the_file(model, green):
    assert batch.score_month(model, green.head(3), "green", progress=False)["ride_id"].iloc[0] == "2021/01_0"


def test_diff_is_actual_minus_predicted_and_the_model_version_is_kept(model, green):
    scored = batch.score_month(model, green, "green", progress=False)
    assert np.array_equal(scored["diff"], scored["actual_duration"] - scored["predicted_duration"])
    assert (scored["model_version"] == "7").all()


def test_every_ride_is_scored_and_the_course_rows_are_a_filter_away(model, green):
    scored = batch.score_month(model, green, "green", year=2021, month=1, progress=False)
    assert (~duration_mask(scored["actual_duration"])).sum() > 0
    course = prepare(green)
    kept = scored[duration_mask(scored["actual_duration"])]
    assert kept["ride_id"].tolist() == [f"2021/01_{i}" for i in course.index]
    assert np.array_equal(kept["predicted_duration"], model.predict(course))


def test_yellow_keeps_its_tpep_pickup_column(model):
    yellow = make_twin("yellow", 2023, 1, n_rows=500).to_pandas()
    scored = batch.score_month(model, yellow, "yellow", progress=False)
    assert scored.columns[1] == "tpep_pickup_datetime"
    assert scored["ride_id"].iloc[0] == "2023/01_0"


def test_chunks_give_the_same_result_as_one_call(model, green):
    pd.testing.assert_frame_equal(
        batch.score_month(model, green, "green", chunk_rows=333, progress=False),
        batch.score_month(model, green, "green", progress=False),
    )


def test_the_predictions_folder_reads_as_one_partitioned_dataset(model, green, tmp_path):
    scored = batch.score_month(model, green.head(10), "green", progress=False)
    batch.write_atomically(scored, batch.output_path(tmp_path, "green", 2021, 1))
    batch.write_atomically(scored.head(4), batch.output_path(tmp_path, "green", 2021, 2))
    dataset = pd.read_parquet(tmp_path)
    assert len(dataset) == 14
    assert dataset.groupby(["taxi_type", "year", "month"], observed=True).size().tolist() == [10, 4]
    assert set(dataset["taxi_type"].astype(str)) == {"green"}


def _write_half_then_fail(table, path, **kwargs):
    with open(path, "wb") as f:
        f.write(b"PAR1 half a file")
    raise OSError("disk full")


def test_a_failed_write_leaves_no_file_and_no_temporary_file(model, green, tmp_path, monkeypatch):
    monkeypatch.setattr(batch.pq, "write_table", _write_half_then_fail)
    path = batch.output_path(tmp_path, "green", 2021, 1)
    with pytest.raises(OSError, match="disk full"):
        batch.write_atomically(batch.score_month(model, green.head(10), "green", progress=False), path)
    assert list(path.parent.iterdir()) == []


def test_a_failed_write_keeps_the_previous_predictions(model, green, tmp_path, monkeypatch):
    path = batch.write_atomically(green.head(3), tmp_path / "predictions.parquet")
    monkeypatch.setattr(batch.pq, "write_table", _write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        batch.write_atomically(green.head(5), path)
    monkeypatch.undo()
    assert len(pd.read_parquet(path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.parquet"]


def test_running_again_replaces_the_previous_output(model_file, tmp_path):
    first = batch.run("green", 2021, 1, str(model_file), tmp_path, progress=False)
    pd.DataFrame({"ride_id": ["stale"]}).to_parquet(first)
    second = batch.run("green", 2021, 1, str(model_file), tmp_path, progress=False)
    assert second == first
    assert len(pd.read_parquet(second)) == GREEN_2021_01_ROWS
    assert [p.name for p in second.parent.iterdir()] == ["predictions.parquet"]


def test_the_predictions_file_has_the_schema_both_engines_write(model_file, tmp_path):
    path = batch.run("green", 2021, 1, str(model_file), tmp_path, progress=False)
    assert pq.read_schema(path).remove_metadata() == batch.output_schema("green")
    assert pd.read_parquet(path)["ride_id"].iloc[0] == "2021/01_0"


def test_several_months_in_one_job_give_one_file_each(model_file, tmp_path):
    paths = batch.run_months("green", tlc.month_range("2021-01..2021-02"), str(model_file), tmp_path, progress=False)
    assert paths == [batch.output_path(tmp_path, "green", 2021, 1), batch.output_path(tmp_path, "green", 2021, 2)]
    assert pd.read_parquet(paths[1])["ride_id"].iloc[0] == "2021/02_0"


def _cache_file(name: str, table: pa.Table) -> None:
    config.data_dir().mkdir(parents=True, exist_ok=True)
    pq.write_table(table, config.data_dir() / name)


def test_a_cached_file_with_the_wrong_schema_is_refused_saying_which_columns(model_file, tmp_path):
    # A learner's own file in data/ is used as it is: one with zone names instead of IDs, no distance.
    rides = make_twin("green", 2020, 6, n_rows=50).drop_columns(["trip_distance", "PULocationID"])
    _cache_file("green_tripdata_2020-06.parquet", rides.append_column("PULocationID", pa.array(["Astoria"] * 50)))
    with pytest.raises(
        batch.InputSchemaError, match="PULocationID is string, expected an integer; trip_distance is missing"
    ):
        batch.run("green", 2020, 6, str(model_file), tmp_path, progress=False)
    assert not any(tmp_path.rglob("*.parquet"))


def test_a_cached_file_that_is_not_parquet_is_refused(model_file, tmp_path):
    config.data_dir().mkdir(parents=True, exist_ok=True)
    (config.data_dir() / "green_tripdata_2020-07.parquet").write_text("<html>Not found</html>")
    with pytest.raises(batch.InputSchemaError, match="is not a parquet file"):
        batch.run("green", 2020, 7, str(model_file), tmp_path, progress=False)


def test_a_month_not_published_exits_1_saying_so(model_file, tmp_path, tlc_server, monkeypatch, capsys):
    monkeypatch.delenv("WORKBOOK_OFFLINE", raising=False)
    monkeypatch.setenv("WORKBOOK_TLC_URL", tlc_server.url)
    assert (
        batch.main(
            ["--color", "green", "--months", "2031-05", "--model-uri", str(model_file), "--output-dir", str(tmp_path)]
        )
        == 1
    )
    shown = capsys.readouterr().err
    assert "HTTP 404" in shown and "check that the month is published" in shown


def test_the_cli_scores_a_month_offline_from_a_model_file(model_file, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.serve.batch",
            "--color",
            "green",
            "--year",
            "2021",
            "--month",
            "1",
            "--model-uri",
            str(model_file),
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=config.REPO_ROOT,
        env={**os.environ, "WORKBOOK_OFFLINE": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    path = batch.output_path(tmp_path, "green", 2021, 1)
    assert done.stdout.strip() == str(path)
    assert "offline twin" in done.stderr
    assert len(pd.read_parquet(path)) == GREEN_2021_01_ROWS


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        batch.main(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert "--model-uri" in shown and "MODEL_URI" in shown and "taxi_type=" in shown


def test_months_and_year_month_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        batch.main(["--color", "green", "--year", "2021", "--month", "1", "--months", "2021-01"])
    assert exit_.value.code == 2
    assert "not both" in capsys.readouterr().err


def test_month_13_is_refused_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        batch.main(["--color", "green", "--year", "2021", "--month", "13"])
    assert exit_.value.code == 2
    assert "month must be 1-12, got 13" in capsys.readouterr().err


def test_a_model_that_cannot_be_loaded_exits_1_with_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_URI", str(tmp_path / "no.bin"))
    assert batch.main(["--color", "green", "--year", "2021", "--month", "1"]) == 1
    shown = capsys.readouterr().err
    assert "cannot load the model" in shown and "no.bin" in shown and "--model-uri" in shown


def test_run_scores_with_the_registry_champion(store, months, tmp_path):
    version = registered_champion("batch-tests", months)

    path = batch.run("green", 2021, 1, "models:/batch-tests@champion", tmp_path, progress=False)
    scored = pd.read_parquet(path)
    assert len(scored) == GREEN_2021_01_ROWS
    assert (scored["model_version"] == version).all()
