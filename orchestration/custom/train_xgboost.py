"""Search XGBoost hyperparameters with hyperopt (nested MLflow runs), refit the best as the pipeline."""

from helpers.orchestrate import pipelines

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def train_xgboost(sets, *args, **kwargs):
    max_evals = kwargs.get("max_evals")
    trained = pipelines.train_xgboost(
        sets, pipelines.RunSettings.from_variables(kwargs), max_evals=int(max_evals) if max_evals else None
    )
    print(f"XGBoost validation RMSE {trained['rmse']:.3f}")
    return trained


@test
def test_rmse_is_plausible(trained, *args) -> None:
    assert 1 < trained["rmse"] < 20, f"validation RMSE {trained['rmse']} is not plausible for durations of 1-60 min"
