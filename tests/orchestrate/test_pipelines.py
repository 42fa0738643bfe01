"""Chapter 05's Mage blocks run for real without Mage (each file run as Mage runs it, by
``mage.load_block``), and what they share in ``helpers.orchestrate.pipelines``: months, settings, the sensor."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression, Ridge

from helpers.core import config, features
from helpers.core.tlc import trip_filename
from helpers.ml import registry, tracking
from helpers.orchestrate import mage, pipelines
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


def block(name: str) -> mage.BlockCode:
    """A block of the committed project, loaded as Mage loads it."""
    files = mage.describe().drop_duplicates("block").set_index("block")["file"]
    return mage.load_block(mage.PROJECT_DIR / files[name])


def run_block(name: str, *upstream, **variables):
    """Run a block's function, then its @test functions on what it returned, as ``mage run --test`` does."""
    code = block(name)
    output = code.function()(*upstream, **variables)
    for test in code.tests:
        test(output)
    return output


@pytest.fixture
def raw():
    """Two months as ingest_months returns them: the TLC columns and ``split``."""
    return pd.concat(
        [synthetic_month(400, seed=1).assign(split="train"), synthetic_month(300, seed=2).assign(split="validation")],
        ignore_index=True,
    )


def test_ingest_labels_each_month_with_its_split():
    raw = run_block("ingest_months", train_month="2021-01")
    assert raw.groupby("split").size().to_dict() == {"train": 76_518, "validation": 64_572}


def test_the_blocks_preparation_is_chapter_02s_for_green_and_yellow_files(raw):
    # The block's pandas is the teaching version; helpers.core.features.prepare serves and monitors.
    pd.testing.assert_frame_equal(run_block("prepare_rides", raw), features.prepare(raw))
    yellow = raw.rename(columns=lambda name: name.replace("lpep_", "tpep_"))
    pd.testing.assert_frame_equal(run_block("prepare_rides", yellow), features.prepare(yellow))


def test_sets_keep_the_model_fields_the_target_and_the_split(raw):
    sets = run_block("build_sets", run_block("prepare_rides", raw))
    assert list(sets.columns) == [*features.RIDE_FIELDS, "PU_DO", "duration", "split"]
    assert sets["split"].value_counts().to_dict() == {"train": 400, "validation": 300}


@pytest.mark.parametrize(
    "break_it, words",
    [
        (lambda s: s[s.split == "train"], "validation set has 0 rides"),
        (lambda s: s.assign(duration=s.duration.where(s.index > 0, 61.0)), "outside 1-60"),
        (lambda s: s.assign(trip_distance=s.trip_distance.where(s.index > 0, None)), "missing values"),
        (lambda s: s.assign(trip_distance=-s.trip_distance - 1), "negative"),
    ],
)
def test_the_sets_test_says_what_broke(raw, break_it, words):
    (sets_test,) = block("build_sets").tests
    sets = run_block("build_sets", features.prepare(raw))
    with pytest.raises(AssertionError, match=words):
        sets_test(break_it(sets))


# The block logs its model as chapter 03's cell does, so MLflow's hint about integer columns shows.
@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer column")
def test_the_sklearn_block_logs_the_runs_train_and_log_does(store, months):
    df_train, df_val, _ = months
    sets = pd.concat([df_train.assign(split="train"), df_val.assign(split="validation")], ignore_index=True)
    # Its @test is left out: on these clean synthetic rides the RMSE is below the 1 minute it expects.
    trained = block("train_sklearn").function()(sets, train_month="2021-01")
    assert set(trained["candidates"]) == {"LinearRegression", "Ridge"}
    by_block = MlflowClient().get_run(trained["run_id"])
    # The block is the teaching version of helpers.ml.tracking.train_and_log: the same run, one way or the other.
    month = pipelines.RunSettings.from_variables({"train_month": "2021-01"}).fetch()
    by_helpers = MlflowClient().get_run(
        tracking.train_and_log(
            {"LinearRegression": LinearRegression(), "Ridge": Ridge(alpha=1.0)}[trained["model"]],
            df_train,
            df_val,
            train_source=month["train"].path,
            val_source=month["validation"].path,
            data_source=month["train"].source,
        ).run_id
    )
    assert by_block.info.run_name == f"mage-{trained['model']}"
    assert by_block.data.params == by_helpers.data.params
    assert by_block.data.metrics["rmse"] == pytest.approx(by_helpers.data.metrics["rmse"])
    tags = {tracking.VALIDATION_TAG, "data_source", "git_commit"}
    assert {key: by_block.data.tags[key] for key in tags} == {key: by_helpers.data.tags[key] for key in tags}
    assert by_block.data.tags[tracking.MODEL_URI_TAG] == trained["model_uri"]
    assert registry.candidate_runs(top=10, validated_on=by_helpers.data.tags[tracking.VALIDATION_TAG])


def test_retraining_trains_the_champions_family_with_its_parameters_and_says_so(store, months, raw):
    df_train, df_val, _ = months
    tracking.use_experiment()
    champion_run = tracking.train_and_log(
        Ridge(alpha=3.5), df_train, df_val, train_source="a", val_source="b", data_source="twin"
    ).run_id
    champion = registry.register_run(MlflowClient().get_run(champion_run))
    MlflowClient().set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, champion.version)
    sets = run_block("build_sets", features.prepare(raw))

    trained = run_block("train_champion_recipe", sets, train_month="2021-01")
    registered = run_block("register_challenger", trained)

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
    assert run_block("register_challenger", trained)["version"] == registered["version"]  # a re-run adds none


def test_the_sensor_waits_for_the_month_file_and_sees_it_land():
    path = config.data_dir() / trip_filename("green", 2030, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    variables = {"train_month": "2029-12", "sensor_window_seconds": 0.2}
    assert not run_block("new_month_published", **variables)
    lands = threading.Timer(0.3, path.write_bytes, args=(b"parquet",))
    lands.start()
    started = time.monotonic()
    try:
        assert run_block("new_month_published", **{**variables, "sensor_window_seconds": 10})
        assert time.monotonic() - started < 3
    finally:
        lands.join()
        path.unlink()


def test_offline_only_the_cache_counts_as_published():
    assert config.offline()
    assert not pipelines.month_published("green", (2031, 1))


def test_a_pipeline_runs_its_blocks_in_order_and_a_failed_test_stops_it(tmp_path):
    project = tmp_path / "project"
    (project / "pipelines" / "two").mkdir(parents=True)
    (project / "pipelines" / "two" / "metadata.yaml").write_text(
        "blocks:\n"
        "- {uuid: first, type: data_loader, upstream_blocks: []}\n"
        "- {uuid: second, type: transformer, upstream_blocks: [first]}\n"
        "variables: {start: 1}\n"
    )
    (project / "data_loaders").mkdir()
    (project / "data_loaders" / "first.py").write_text(
        "@data_loader\ndef first(**kwargs):\n    return kwargs['start']\n"
    )
    (project / "transformers").mkdir()
    (project / "transformers" / "second.py").write_text(
        "@transformer\ndef second(value, **kwargs):\n    return value + 1\n\n"
        "@test\ndef small(value, *args):\n    assert value < 3, f'{value} is too big'\n"
    )
    assert mage.run_blocks("two", project=project) == {"first": 1, "second": 2}
    with pytest.raises(AssertionError, match="3 is too big"):
        mage.run_blocks("two", {"start": 2}, project=project)
    assert mage.run_blocks("two", {"start": 2}, skip=("transformer",), project=project) == {"first": 2}
