"""Small synthetic months and a temporary MLflow store shared by the tracking and registry tests.

Creating a SQLite store runs MLflow's migrations (seconds), so each test module makes one and
its tests keep apart by using their own experiment and registered model names.
"""

import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers.features import prepare


def synthetic_month(n: int, seed: int) -> pd.DataFrame:
    """Prepared rides whose duration is 3 min a mile plus a per-zone offset, with noise."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    pu = rng.integers(1, 20, n)
    distance = rng.uniform(0.5, 10, n)
    minutes = 3 * distance + pu * 0.5 + rng.normal(0, 0.5, n) + 2
    return prepare(
        pd.DataFrame(
            {
                "lpep_pickup_datetime": pickup,
                "lpep_dropoff_datetime": pickup + pd.to_timedelta(minutes, unit="m"),
                "PULocationID": pu,
                "DOLocationID": rng.integers(1, 5, n),
                "trip_distance": distance,
            }
        )
    )


@pytest.fixture(scope="module")
def months():
    return synthetic_month(2_000, seed=1), synthetic_month(600, seed=2), synthetic_month(600, seed=3)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh SQLite tracking store for the module; the previous tracking URI comes back after."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield folder
    mlflow.set_tracking_uri(previous)
    mp.undo()
