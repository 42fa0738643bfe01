import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LinearRegression

from helpers.ml import models, registry, tracking
from helpers.ml.training import save_model, train_pipeline

RIDES = pd.DataFrame({"PULocationID": [3, 10], "DOLocationID": [2, 4], "trip_distance": [4.0, 1.0]})


@pytest.fixture(scope="module")
def registered(store, months):
    df_train, df_val, _ = months
    tracking.use_experiment("models-tests")
    result = tracking.train_and_log(
        LinearRegression(), df_train, df_val, train_source="a", val_source="b", data_source="twin"
    )
    version = registry.register_run(MlflowClient().get_run(result.run_id), "models-tests")
    MlflowClient().set_registered_model_alias("models-tests", "champion", version.version)
    return result, str(version.version)


def test_a_pickled_file_loads_with_its_name_as_version(months, tmp_path):
    path = save_model(train_pipeline(LinearRegression(), months[0]), tmp_path / "lin_reg.bin")
    model = models.load(str(path))
    assert model.version == "lin_reg.bin"
    assert len(model.predict(RIDES)) == 2


def test_an_alias_resolves_to_its_registry_version(registered):
    result, version = registered
    model = models.load("models:/models-tests@champion")
    assert model.version == version
    assert model.predict(RIDES) == pytest.approx(result.pipeline.predict(RIDES))


def test_a_numbered_version_and_a_run_uri_load_too(registered):
    result, version = registered
    assert models.load(f"models:/models-tests/{version}").version == version
    assert models.load(f"runs:/{result.run_id}/model").version == result.run_id


def test_an_alias_is_pinned_to_the_version_it_names_now_and_other_uris_stay(registered):
    result, version = registered
    assert models.pinned("models:/models-tests@champion") == f"models:/models-tests/{version}"
    for uri in (f"models:/models-tests/{version}", f"runs:/{result.run_id}/model", "models/lin_reg.bin"):
        assert models.pinned(uri) == uri


def test_the_version_of_a_uri_is_read_without_loading_the_model(registered):
    result, version = registered
    assert models.version_of("models:/models-tests@champion") == version
    assert models.version_of(f"runs:/{result.run_id}/model") == result.run_id
    assert models.version_of("file:///somewhere/lin_reg.bin") == "lin_reg.bin"


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_training"):
        models.load(str(tmp_path / "missing.bin"))


def test_a_registry_uri_without_version_or_alias_is_refused(registered):
    with pytest.raises(ValueError, match="@<alias>"):
        models.load("models:/models-tests/latest")
