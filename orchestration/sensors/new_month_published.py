"""Wait until the newest month of trips exists (in the data cache, or online on the TLC site)."""

from helpers.core.polling import WaitTimeout, wait_for
from helpers.orchestrate.pipelines import RunSettings, month_label, month_published

if "sensor" not in globals():
    from mage_ai.data_preparation.decorators import sensor


@sensor
def new_month_published(*args, **kwargs) -> bool:
    settings = RunSettings.from_variables(kwargs)
    window = float(kwargs.get("sensor_window_seconds") or 50)
    print(f"waiting for {settings.color} {month_label(settings.validation)}")
    # Mage calls a sensor again only a minute after it says False: polling every second within the
    # call starts the retraining within seconds of the file landing.
    try:
        return wait_for(lambda: month_published(settings.color, settings.validation), timeout=window, poll=1)
    except WaitTimeout:
        return False
