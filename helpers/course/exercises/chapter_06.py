"""Chapter 06, batch deployment: the batch job's scoring by hand, the share of big misses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from helpers.core.features import RIDE_FIELDS
from helpers.course.exercise import Exercise, between
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import raised
from helpers.serve import batch
from helpers.serve.predictions import output_columns

_YEAR, _MONTH = 2021, 3
# The batch job's own columns, but the model version, which the exercise leaves out.
_COLUMNS = tuple(column for column in output_columns("green") if column != "model_version")


def _raw_rides(n: int = 100) -> pd.DataFrame:
    """A raw green month's columns for ``n`` rides, one of 90 minutes and one of 20 seconds among them:
    batch scoring keeps both, since nobody knows a ride's duration when it is scored."""
    rng = np.random.default_rng(6)
    pickup = pd.Timestamp(f"{_YEAR}-{_MONTH:02d}-01") + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), unit="s")
    minutes = rng.uniform(2, 40, n).round(2)
    minutes[[7, 42]] = [90.0, 1 / 3]
    return pd.DataFrame(
        {
            "VendorID": np.full(n, 2),
            "lpep_pickup_datetime": pickup,
            "lpep_dropoff_datetime": pickup + pd.to_timedelta(minutes, unit="min"),
            "PULocationID": rng.integers(1, 266, n),
            "DOLocationID": rng.integers(1, 266, n),
            "passenger_count": np.full(n, 1.0),
            "trip_distance": rng.uniform(0.3, 12, n).round(2),
            "fare_amount": rng.uniform(3, 40, n).round(2),
        }
    )


class _DistanceModel:
    """Stands in for the champion: 2 min + 1.5 min a mile, which the check can recompute."""

    version = "check"

    def predict(self, rides: pd.DataFrame) -> np.ndarray:
        return 2 + 1.5 * rides["trip_distance"].astype(float).to_numpy()


def _first_gap(got: pd.Series, expected: pd.Series) -> int | None:
    far = ~np.isclose(got.astype(float).to_numpy(), expected.astype(float).to_numpy(), atol=1e-6)
    return int(np.argmax(far)) if far.any() else None


def verify_score_rides(score_rides: Callable[..., pd.DataFrame]) -> Feedback:
    """``score_rides(rides, model, year, month)`` must give, ride for ride, the columns
    :func:`helpers.serve.batch.score_month` gives (its model version aside)."""
    rides, model = _raw_rides(), _DistanceModel()
    expected = batch.score_month(model, rides, "green", year=_YEAR, month=_MONTH, progress=False)
    try:
        got = score_rides(rides.copy(), model, _YEAR, _MONTH)
    except Exception as error:  # noqa: BLE001
        return raised(error)
    if not isinstance(got, pd.DataFrame):
        return wrong(f"return a DataFrame of the scored rides, not {type(got).__name__}.")
    missing = [column for column in _COLUMNS if column not in got.columns]
    if missing:
        return wrong(f"the frame you return has no column {', '.join(missing)}.")
    if len(got) != len(rides):
        return wrong(
            f"{len(rides)} rides went in and {len(got)} came out: a batch job scores every ride, since in "
            "production nobody knows a duration in advance; the 1-60 minute filter is only for judging the model."
        )
    got = got.reset_index(drop=True)
    ids = got["ride_id"].astype(str)
    if not ids.equals(expected["ride_id"].astype(str)):
        row = int(np.argmax(ids.to_numpy() != expected["ride_id"].astype(str).to_numpy()))
        return wrong(
            f"ride {row} has ride_id {ids[row]!r}, not {expected['ride_id'][row]!r}: "
            'f"{year:04d}/{month:02d}_" followed by the ride\'s index (rides.index.astype(str)).'
        )
    for column in ("PULocationID", "DOLocationID"):
        if (got[column].to_numpy() != expected[column].to_numpy()).any():
            return wrong(f"{column} differs from the ride's own: copy it from rides as it is.")
    if (pd.to_datetime(got["lpep_pickup_datetime"]).to_numpy() != expected["lpep_pickup_datetime"].to_numpy()).any():
        return wrong("lpep_pickup_datetime differs from the ride's own: copy it from rides as it is.")
    if (row := _first_gap(got["actual_duration"], expected["actual_duration"])) is not None:
        ratio = float(got["actual_duration"][row]) / float(expected["actual_duration"][row])
        unit = " (that is seconds: divide by 60)" if np.isclose(ratio, 60) else ""
        return wrong(
            f"ride {row} lasted {expected['actual_duration'][row]:.2f} minutes, your actual_duration says "
            f"{float(got['actual_duration'][row]):.2f}{unit}: (dropoff - pickup).dt.total_seconds() / 60."
        )
    if (row := _first_gap(got["predicted_duration"], expected["predicted_duration"])) is not None:
        return wrong(
            f"ride {row}'s predicted_duration is {float(got['predicted_duration'][row]):.2f}, the model says "
            f"{expected['predicted_duration'][row]:.2f}: model.predict(rides[{RIDE_FIELDS!r}])."
        )
    if (row := _first_gap(got["diff"], expected["diff"])) is not None:
        backwards = np.isclose(float(got["diff"][row]), -float(expected["diff"][row]))
        return wrong(
            "diff is actual minus predicted, the other way round from yours."
            if backwards
            else f"ride {row}'s diff is {float(got['diff'][row]):.2f}, not {expected['diff'][row]:.2f}: "
            "actual minus predicted."
        )
    return right()


def miss_share(judged: pd.DataFrame) -> float:
    """The share of judged rides the model missed by more than 10 minutes, either way."""
    return float((judged["diff"].abs() > 10).mean())


EXERCISES: dict[str, Exercise] = {
    "06.score_rides": Exercise(
        question="Write score_rides(rides, model, year, month): one row per ride of a raw green month with ride_id, "
        "lpep_pickup_datetime, PULocationID, DOLocationID, actual_duration (minutes), predicted_duration and diff "
        "(actual - predicted).",
        hint='ride_id is f"{year:04d}/{month:02d}_" + rides.index.astype(str); actual_duration is (dropoff - pickup) '
        "in minutes; predicted_duration is model.predict on the three ride fields; diff is their difference.",
        solution="def score_rides(rides, model, year, month):\n"
        "    actual = (rides.lpep_dropoff_datetime - rides.lpep_pickup_datetime).dt.total_seconds() / 60\n"
        '    predicted = model.predict(rides[["PULocationID", "DOLocationID", "trip_distance"]])\n'
        "    return pd.DataFrame({\n"
        '        "ride_id": f"{year:04d}/{month:02d}_" + rides.index.astype(str),\n'
        '        "lpep_pickup_datetime": rides.lpep_pickup_datetime,\n'
        '        "PULocationID": rides.PULocationID,\n'
        '        "DOLocationID": rides.DOLocationID,\n'
        '        "actual_duration": actual,\n'
        '        "predicted_duration": predicted,\n'
        '        "diff": actual - predicted,\n'
        "    })",
        verify=verify_score_rides,
    ),
    "06.miss_share": Exercise(
        question="Of the month's rides of 1-60 minutes, what share did the champion miss by more than 10 minutes, "
        "too long or too short (a fraction between 0 and 1)?",
        expected_from=miss_share,
        tolerance=0.005,
        hint="diff is actual minus predicted, so a miss of more than 10 minutes either way is "
        "judged['diff'].abs() > 10; the mean of a True/False column is its share of True.",
        solution='answer = (judged["diff"].abs() > 10).mean()',
        hints=(
            (
                between(1, float("inf")),
                "answer a fraction between 0 and 1, not a count or a percentage: the missed rides divided by "
                "len(judged).",
            ),
        ),
    ),
}
