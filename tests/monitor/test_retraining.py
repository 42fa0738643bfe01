"""Retraining without Mage: the same pipeline steps, in this process, register a challenger."""

from mlflow.tracking import MlflowClient

from helpers.ml import registry
from helpers.monitor import retraining


def test_without_mage_the_steps_run_here_and_register_a_challenger(store, closed_port_url):
    retrained = retraining.retrain("2021-02", mage_url=closed_port_url)
    assert (retrained.via, retrained.train_month, retrained.validation_month) == ("helpers", "2021-02", "2021-03")
    challenger = registry.version_by_alias(registry.CHALLENGER)
    assert str(challenger.version) == retrained.version
    run = MlflowClient().get_run(challenger.run_id)
    assert run.info.run_name in {"mage-LinearRegression", "mage-Ridge"}
    assert "validation RMSE" in retrained.detail
