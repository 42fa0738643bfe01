"""Retrain: the champion's recipe (model family and parameters, read from its MLflow run) on the new month."""

from helpers.orchestrate import pipelines

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def train_champion_recipe(sets, *args, **kwargs):
    trained = pipelines.train_champion_recipe(sets, pipelines.RunSettings.from_variables(kwargs))
    print(
        f"{trained['model']} with the recipe of v{trained['recipe']['recipe_version']}: "
        f"validation RMSE {trained['rmse']:.3f}"
    )
    return trained


@test
def test_rmse_is_plausible(trained, *args) -> None:
    assert 1 < trained["rmse"] < 20, f"validation RMSE {trained['rmse']} is not plausible for durations of 1-60 min"
