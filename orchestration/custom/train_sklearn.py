"""Train chapter 03's linear models, each a tracked MLflow run; pass on the best."""

from helpers.orchestrate import pipelines

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def train_sklearn(sets, *args, **kwargs):
    trained = pipelines.train_sklearn(sets, pipelines.RunSettings.from_variables(kwargs))
    print(f"best: {trained['model']} with validation RMSE {trained['rmse']:.3f}; all: {trained['candidates']}")
    return trained


@test
def test_rmse_is_plausible(trained, *args) -> None:
    assert 1 < trained["rmse"] < 20, f"validation RMSE {trained['rmse']} is not plausible for durations of 1-60 min"
