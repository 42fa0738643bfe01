"""The steps chapter 05's Mage blocks call, without Mage: months, sets, checks, sensors."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import Ridge

from helpers.core import config
from helpers.core.features import prepare
from helpers.core.tlc import trip_filename
from helpers.ml import registry, tracking
from helpers.orchestrate import pipelines
from tests.support import synthetic_month


@pytest.mark.parametrize("text, month", [("2021-01", (2021, 1)), ("2023-12", (2023, 12))])
def test_months_parse(text, month):
    assert pipelines.parse_month(text) == month
    assert pipelines.month_label(month) == text


@pytest.mark.parametrize(
    "text, words",
    [("2021-13", "out of range"), ("Jan 2021", "not YYYY-MM"), ("2021", "not YYYY-MM"), ("2001-01", "start in 2009")],
)
def test_bad_months_are_refused_with_the_reason(text, words):
    with pytest.raises(ValueError, match=words):
        pipelines.parse_month(text)


def test_months_shift_across_years():
    assert pipelines.shift_month((2021, 12), 1) == (2022, 1)
    assert pipelines.shift_month((2022, 1), -2) == (2021, 11)


def test_validation_defaults_to_the_next_month():
    settings = pipelines.RunSettings.from_variables({"train_month": "2021-12"})
    assert (settings.color, settings.train, settings.validation) == ("green", (2021, 12), (2022, 1))


def test_auto_counts_back_from_the_execution_date():
    run = {"train_month": "auto", "execution_date": dt.datetime(2024, 6, 1, tzinfo=dt.UTC)}
    settings = pipelines.RunSettings.from_variables(run)
    assert (settings.train, settings.validation) == ((2024, 4), (2024, 5))
    iso = pipelines.RunSettings.from_variables({"train_month": "auto", "execution_date": "2024-01-01T00:00:00"})
    assert (iso.train, iso.validation) == ((2023, 11), (2023, 12))


@pytest.mark.parametrize(
    "variables, words",
    [
        ({"color": "blue"}, "color 'blue'"),
        ({"train_month": "2021-03", "validation_month": "2021-02"}, "must come after"),
    ],
)
def test_bad_run_variables_are_refused(variables, words):
    with pytest.raises(ValueError, match=words):
        pipelines.RunSettings.from_variables(variables)


@pytest.fixture
def raw():
    return pd.concat(
        [synthetic_month(400, seed=1).assign(split="train"), synthetic_month(300, seed=2).assign(split="validation")],
        ignore_index=True,
    )


def test_sets_keep_the_model_fields_the_target_and_the_split(raw):
    sets = pipelines.build_sets(pipelines.prepare_rides(raw))
    assert list(sets.columns) == ["PULocationID", "DOLocationID", "trip_distance", "PU_DO", "duration", "split"]
    train, validation = pipelines.split_sets(sets)
    assert len(train) + len(validation) == len(sets) and len(validation) > 0
    pipelines.check_sets(sets, min_rows=100)


def test_ingest_labels_each_month_with_its_split():
    raw = pipelines.ingest_months(pipelines.RunSettings.from_variables({"train_month": "2021-01"}))
    assert raw.groupby("split").size().to_dict() == {"train": 76_518, "validation": 64_572}


def test_unprepared_frames_are_refused(raw):
    with pytest.raises(ValueError, match="'split' column"):
        pipelines.prepare_rides(raw.drop(columns="split"))
    with pytest.raises(ValueError, match=r"lacks \['PU_DO', 'duration'\]"):
        pipelines.build_sets(raw.drop(columns=["PU_DO", "duration"]))


@pytest.mark.parametrize(
    "break_it, words",
    [
        (lambda s: s[s.split == "train"], "validation set has 0 rides"),
        (lambda s: s.assign(duration=s.duration.where(s.index > 0, 61.0)), "outside 1-60"),
        (lambda s: s.assign(trip_distance=s.trip_distance.where(s.index > 0, None)), "missing values"),
        (lambda s: s.assign(trip_distance=-s.trip_distance - 1), "negative"),
    ],
)
def test_the_data_checks_say_what_broke(raw, break_it, words):
    sets = pipelines.build_sets(prepare(raw))
    with pytest.raises(AssertionError, match=words):
        pipelines.check_sets(break_it(sets), min_rows=100)


def test_retraining_trains_the_champions_family_with_its_parameters_and_says_so(store, months, raw):
    df_train, df_val, _ = months
    tracking.use_experiment()
    champion_run = tracking.train_and_log(
        Ridge(alpha=3.5), df_train, df_val, train_source="a", val_source="b", data_source="twin"
    ).run_id
    champion = registry.register_run(MlflowClient().get_run(champion_run))
    MlflowClient().set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, champion.version)
    sets = pipelines.build_sets(prepare(raw))

    trained = pipelines.train_champion_recipe(sets, pipelines.RunSettings.from_variables({"train_month": "2021-01"}))
    registered = pipelines.register_challenger(trained)

    run = MlflowClient().get_run(trained["run_id"])
    assert (run.info.run_name, run.data.params["estimator"], run.data.params["alpha"]) == (
        "retrain-Ridge",
        "Ridge",
        "3.5",
    )
    assert run.data.tags[registry.RECIPE_RUN_TAG] == champion_run
    version = MlflowClient().get_model_version(registry.MODEL_NAME, registered["version"])
    assert version.tags[registry.RECIPE_VERSION_TAG] == registered["recipe_version"] == str(champion.version)
    assert str(registry.version_by_alias(registry.CHALLENGER).version) == registered["version"]


def test_the_sensor_waits_for_the_month_file_and_sees_it_land(tmp_path):
    path = config.data_dir() / trip_filename("green", 2030, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert not pipelines.wait_for_month("green", (2030, 1), window=0.2, poll=0.05)
    lands = threading.Timer(0.3, path.write_bytes, args=(b"parquet",))
    lands.start()
    started = time.monotonic()
    try:
        assert pipelines.wait_for_month("green", (2030, 1), window=10, poll=0.05)
        assert time.monotonic() - started < 2
    finally:
        lands.join()
        path.unlink()


def test_offline_only_the_cache_counts_as_published():
    assert config.offline()
    assert not pipelines.month_published("green", (2031, 1))
