"""Small synthetic months of prepared rides, quick to train on."""

import numpy as np
import pandas as pd

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


