"""The course's features: trip duration in minutes, the 1-60 minute filter, PU_DO and distance.

The same functions prepare a month for training (chapter 02), tracking (03), batch and online serving (06, 07)
and monitoring (08), so every stage sees the features built exactly one way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

MIN_DURATION = 1.0
MAX_DURATION = 60.0
# What a client sends for one ride, to the web service or the stream, and what the model reads.
RIDE_FIELDS = ["PULocationID", "DOLocationID", "trip_distance"]
ZONE_IDS = range(1, 266)  # the TLC taxi zones; 264 and 265 are "unknown"
CATEGORICAL = ["PULocationID", "DOLocationID"]
NUMERICAL = ["trip_distance"]
TARGET = "duration"

_PICKUP_COLUMNS = ("lpep_pickup_datetime", "tpep_pickup_datetime")
_DROPOFF_COLUMNS = ("lpep_dropoff_datetime", "tpep_dropoff_datetime")


def _first_present(df: pd.DataFrame, candidates: tuple[str, ...]) -> str:
    for name in candidates:
        if name in df.columns:
            return name
    raise KeyError(
        f"none of the columns {list(candidates)} is in the frame; "
        "expected a TLC green (lpep_*) or yellow (tpep_*) trip file"
    )


def add_duration(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``duration``: minutes from pickup to dropoff, for green or yellow trip files.

    Args:
        df: A TLC trip frame with ``lpep_``/``tpep_`` pickup and dropoff timestamps.

    Returns:
        A copy of ``df`` with a float ``duration`` column.
    """
    pickup = _first_present(df, _PICKUP_COLUMNS)
    dropoff = _first_present(df, _DROPOFF_COLUMNS)
    out = df.copy()
    out[TARGET] = (out[dropoff] - out[pickup]).dt.total_seconds() / 60
    return out


def duration_mask(duration: pd.Series) -> pd.Series:
    """True where a trip lasted between 1 and 60 minutes, both included (the course's filter)."""
    return duration.between(MIN_DURATION, MAX_DURATION)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Turn a raw TLC month into the course's training frame.

    Adds ``duration``, keeps trips of 1 to 60 minutes, makes the zone IDs strings (they are
    categories, not quantities) and adds ``PU_DO``, the pickup/dropoff pair.

    Args:
        df: A raw TLC trip frame (green or yellow).

    Returns:
        A new frame with the filtered rows and the feature columns.
    """
    out = add_duration(df)
    out = out[duration_mask(out[TARGET])].copy()
    out[CATEGORICAL] = out[CATEGORICAL].astype(str)
    out["PU_DO"] = out["PULocationID"] + "_" + out["DOLocationID"]
    return out


def read_prepared(path: str | Path) -> pd.DataFrame:
    """Read a TLC parquet file and :func:`prepare` it."""
    return prepare(pd.read_parquet(path))


def to_dicts(rides: pd.DataFrame | Iterable[Mapping]) -> list[dict]:
    """Feature dicts ``{"PU_DO": "74_75", "trip_distance": 2.1}`` for a DictVectorizer.

    Accepts a prepared frame or raw rides (mappings with PULocationID, DOLocationID and
    trip_distance, as the web service receives them), so training and serving share one path.
    """
    if not isinstance(rides, pd.DataFrame):
        # A request holds one or a few rides: building the dicts directly is much cheaper than a frame.
        return [
            {
                "PU_DO": ride["PU_DO"] if "PU_DO" in ride else f"{ride['PULocationID']}_{ride['DOLocationID']}",
                "trip_distance": float(ride["trip_distance"]),
            }
            for ride in rides
        ]
    pu = rides["PULocationID"].astype(str)
    do = rides["DOLocationID"].astype(str)
    pu_do = rides["PU_DO"] if "PU_DO" in rides else pu + "_" + do
    distance = rides["trip_distance"].astype(float)
    return [{"PU_DO": key, "trip_distance": dist} for key, dist in zip(pu_do.tolist(), distance.tolist(), strict=True)]


class RideFeatures(TransformerMixin, BaseEstimator):
    """First step of the model's pipeline: rides in, feature dicts out.

    With it the fitted pipeline predicts straight from what a client sends (a frame, or a list of
    ride mappings), which MLflow's pyfunc flavour and the web service need.
    """

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's argument names
        return self

    def transform(self, X):  # noqa: N803
        return to_dicts(X)


class InvalidRide(ValueError):
    """A ride a client sent that the model cannot take; ``field`` names the culprit, if one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages a client understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_ride(ride: Any) -> dict[str, Any]:
    """Check one ride as parsed from JSON and keep only the fields the model reads.

    The web service and the stream both call this, so a ride is valid or not the same way
    wherever it arrives. Zone IDs must be JSON integers 1-265 (``10.0`` would become the zone
    ``"10.0"``); the distance a finite number of miles, 0 or more. Other fields are ignored.

    Raises:
        InvalidRide: saying what is wrong, with the field when one is to blame.
    """
    if not isinstance(ride, Mapping):
        raise InvalidRide(f"a ride must be a JSON object, got a JSON {json_type(ride)}")
    for name in RIDE_FIELDS:
        if name not in ride:
            raise InvalidRide(f"missing field {name!r}", name)
    for name in CATEGORICAL:
        value = ride[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidRide(
                f"{name} must be an integer zone ID 1-265, got a JSON {json_type(value)} ({value!r})", name
            )
        if value not in ZONE_IDS:
            raise InvalidRide(f"{name} must be a zone ID 1-265, got {value}", name)
    value = ride["trip_distance"]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidRide(
            f"trip_distance must be a number of miles, got a JSON {json_type(value)} ({value!r})", "trip_distance"
        )
    try:
        miles = float(value)
    except OverflowError:  # an integer too large for a float
        miles = math.inf
    if not math.isfinite(miles):
        raise InvalidRide(f"trip_distance must be finite, got {value!r}", "trip_distance")
    if miles < 0:
        raise InvalidRide(f"trip_distance must be >= 0 miles, got {value!r}", "trip_distance")
    return {"PULocationID": ride["PULocationID"], "DOLocationID": ride["DOLocationID"], "trip_distance": miles}


def target(df: pd.DataFrame) -> np.ndarray:
    """The target vector: ``duration`` in minutes."""
    return df[TARGET].to_numpy()
