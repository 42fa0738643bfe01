"""Wait until the newest month of trips exists (in the data cache, or online on the TLC site)."""

from helpers.orchestrate import pipelines

if "sensor" not in globals():
    from mage_ai.data_preparation.decorators import sensor


@sensor
def new_month_published(*args, **kwargs) -> bool:
    settings = pipelines.RunSettings.from_variables(kwargs)
    window = float(kwargs.get("sensor_window_seconds") or 50)
    print(f"waiting for {settings.color} {pipelines.month_label(settings.validation)}")
    return pipelines.wait_for_month(settings.color, settings.validation, window)
