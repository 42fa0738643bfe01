"""Retrain: the champion's recipe (model family and parameters, read from its MLflow run) on the new month.

Retraining another family would compare two changes at once, the data and the model; the same recipe
on newer data asks only whether the newer data helps.
"""

from mlflow.tracking import MlflowClient

from helpers.ml import registry, tracking
from helpers.orchestrate.pipelines import RunSettings

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def train_champion_recipe(sets, *args, **kwargs):
    months = RunSettings.from_variables(kwargs).fetch()
    df_train, df_val = sets[sets["split"] == "train"], sets[sets["split"] == "validation"]
    tracking.use_experiment()
    recipe = registry.champion_recipe()  # LookupError when there is no champion to copy
    result = tracking.train_and_log(
        recipe.model(),
        df_train,
        df_val,
        train_source=months["train"].path,
        val_source=months["validation"].path,
        data_source=months["train"].source,
        run_name=f"retrain-{recipe.estimator}",
    )
    # The run says whose recipe it copied; registering it copies these tags onto its version.
    for key, value in recipe.tags().items():
        MlflowClient().set_tag(result.run_id, key, value)
    print(f"{recipe.estimator} with the recipe of v{recipe.version}: validation RMSE {result.rmse:.3f}")
    return {
        "run_id": result.run_id,
        "rmse": result.rmse,
        "model_uri": result.model_uri,
        "model": recipe.estimator,
        "candidates": {recipe.estimator: round(result.rmse, 4)},
        "recipe": recipe.tags(),
    }


@test
def test_rmse_is_plausible(trained, *args) -> None:
    assert 1 < trained["rmse"] < 20, f"validation RMSE {trained['rmse']} is not plausible for durations of 1-60 min"
