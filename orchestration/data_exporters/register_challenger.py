"""Register the trained model in the MLflow registry and make it the challenger."""

from helpers.orchestrate import pipelines

if "data_exporter" not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def register_challenger(trained, *args, **kwargs):
    registered = pipelines.register_challenger(trained)
    print(f"nyc-taxi-duration v{registered['version']} is the challenger ({registered['model']})")
    return registered
