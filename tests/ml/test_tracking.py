from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression, Ridge

from helpers.core.features import RIDE_FIELDS
from helpers.ml import tracking


def _train(name, months, estimator=None):
    df_train, df_val, _ = months
    tracking.use_experiment(name)
    return tracking.train_and_log(
        estimator or LinearRegression(),
        df_train,
        df_val,
        train_source="data/green_tripdata_2021-01.parquet",
        val_source="data/green_tripdata_2021-02.parquet",
        data_source="twin",
    )


def test_artifacts_of_a_sqlite_store_go_beside_it_not_into_the_working_directory(tmp_path):
    assert tracking.artifact_root(f"sqlite:///{tmp_path}/mlflow.db") == (tmp_path / "mlartifacts").as_uri()
    assert tracking.artifact_root("http://127.0.0.1:5000") is None


def test_using_an_experiment_twice_creates_it_once(store):
    first = tracking.use_experiment("twice")
    second = tracking.use_experiment("twice")
    assert first.experiment_id == second.experiment_id
    assert [e.name for e in MlflowClient().search_experiments(filter_string="name = 'twice'")] == ["twice"]


def test_a_deleted_experiment_is_restored_not_recreated(store):
    experiment = tracking.use_experiment("deleted-once")
    MlflowClient().delete_experiment(experiment.experiment_id)
    assert tracking.use_experiment("deleted-once").experiment_id == experiment.experiment_id


def test_a_run_records_params_metric_tags_datasets_and_both_models(store, months):
    result = _train("records", months, Ridge(alpha=0.5))
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["estimator"] == "Ridge" and run.data.params["alpha"] == "0.5"
    assert run.data.metrics["rmse"] == pytest.approx(result.rmse)
    assert run.data.tags["data_source"] == "twin"
    assert run.data.tags["git_commit"]
    contexts = sorted(
        tag.value for d in run.inputs.dataset_inputs for tag in d.tags if tag.key == "mlflow.data.context"
    )
    assert contexts == ["training", "validation"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert "models_pickle" in artifacts
    assert run.data.tags[tracking.MODEL_URI_TAG] == result.model_uri


def test_artifacts_land_under_the_stores_folder(store, months):
    result = _train("where-artifacts-go", months)
    pickles = list(Path(store, "mlartifacts").rglob("pipeline.bin"))
    assert any(result.run_id in str(path) for path in pickles), "the run's pickle belongs under mlartifacts/"
    assert not Path("mlruns").exists()


def test_the_logged_model_predicts_from_raw_rides(store, months):
    result = _train("pyfunc", months)
    model = mlflow.pyfunc.load_model(result.model_uri)
    rides = pd.DataFrame({"PULocationID": [3, 10], "DOLocationID": [2, 4], "trip_distance": [4.0, 1.0]})
    assert model.predict(rides) == pytest.approx(result.pipeline.predict(rides))
    assert model.metadata.signature.inputs.input_names() == RIDE_FIELDS


def test_search_makes_one_parent_with_a_nested_child_per_trial(store, months):
    df_train, df_val, _ = months
    experiment = tracking.use_experiment("search")
    search = tracking.search_xgboost(df_train, df_val, max_evals=3, num_boost_round=20, data_source="twin")
    children = MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{search.parent_run_id}'"
    )
    assert len(children) == 3
    assert search.best_rmse == pytest.approx(min(child.data.metrics["rmse"] for child in children))
    assert 3 <= search.best_params["max_depth"] <= 8


def test_the_search_is_seeded_so_the_same_search_runs_the_same_trials(store, months):
    df_train, df_val, _ = months
    experiment = tracking.use_experiment("seeded")

    def trials(search):
        children = MlflowClient().search_runs(
            [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{search.parent_run_id}'"
        )
        return sorted((run.data.metrics["rmse"], tuple(sorted(run.data.params.items()))) for run in children)

    first = tracking.search_xgboost(df_train, df_val, max_evals=3, num_boost_round=20)
    second = tracking.search_xgboost(df_train, df_val, max_evals=3, num_boost_round=20)
    assert (first.best_params, first.best_rmse, first.best_rounds) == (
        second.best_params,
        second.best_rmse,
        second.best_rounds,
    )
    assert trials(first) == trials(second)


def test_best_xgboost_is_logged_as_pipeline_and_as_xgboost_model(store, months):
    df_train, df_val, _ = months
    tracking.use_experiment("best-xgb")
    search = tracking.search_xgboost(df_train, df_val, max_evals=2, num_boost_round=30)
    result = tracking.train_best_xgboost(
        search, df_train, df_val, train_source="train.parquet", val_source="val.parquet", data_source="twin"
    )
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id)}
    assert {"preprocessor", "models_pickle"} <= artifacts
    booster = mlflow.xgboost.load_model(f"runs:/{result.run_id}/xgboost_model")
    assert booster.get_booster().num_boosted_rounds() == search.best_rounds


def test_runs_frame_is_sorted_by_rmse(store, months):
    _train("frame", months, Ridge(alpha=50))
    _train("frame", months)
    frame = tracking.runs_frame("frame")
    assert len(frame) == 2
    assert frame["metrics.rmse"].is_monotonic_increasing


def test_models_pin_the_versions_that_trained_them():
    from importlib import metadata

    import mlflow

    pins = tracking.pip_requirements()
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in pins
    # Pinned as "mlflow" even where only mlflow-skinny is installed (the Mage environment).
    assert f"mlflow=={mlflow.__version__}" in pins
