"""Register the trained model in the MLflow registry and make it the challenger."""

from mlflow.tracking import MlflowClient

from helpers.ml import registry

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def register_challenger(trained, *args, **kwargs):
    client = MlflowClient()
    # Chapter 04's registration: a run registered before keeps its version, so a re-run adds none.
    version = registry.register_run(client.get_run(trained["run_id"]))
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CHALLENGER, version.version)
    client.set_model_version_tag(registry.MODEL_NAME, version.version, "status", "challenger")
    print(f"{registry.MODEL_NAME} v{version.version} is the challenger ({trained['model']})")
    return {
        "version": str(version.version),
        "run_id": trained["run_id"],
        "rmse": trained["rmse"],
        "model": trained["model"],
        "recipe_version": version.tags.get(registry.RECIPE_VERSION_TAG),
    }
