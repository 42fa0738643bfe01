"""Chapter 02, training: the duration filter, the feature count."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from helpers.course.exercise import Exercise, number
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import raised

_MINUTES = (-5.0, 0.5, 1.0, 12.25, 60.0, 61.0, 600.0)
_KEPT = [1.0, 12.25, 60.0]


def _green_rides() -> pd.DataFrame:
    pickup = pd.Timestamp("2021-01-04 08:00")
    return pd.DataFrame(
        {
            "lpep_pickup_datetime": [pickup] * len(_MINUTES),
            "lpep_dropoff_datetime": [pickup + pd.Timedelta(minutes=m) for m in _MINUTES],
            "PULocationID": [74, 75, 41, 42, 166, 7, 129],
            "DOLocationID": [75, 74, 42, 41, 7, 166, 82],
            "trip_distance": [1.0, 0.2, 0.4, 2.5, 14.0, 9.0, 3.0],
        }
    )


def verify_keep_rides(keep_rides: Callable[[pd.DataFrame], pd.DataFrame]) -> Feedback:
    """``keep_rides(df)`` must add ``duration`` in minutes and keep the rides of 1 to 60, both included."""
    try:
        kept = keep_rides(_green_rides())
    except Exception as error:  # noqa: BLE001
        return raised(error)
    if not isinstance(kept, pd.DataFrame):
        return wrong(f"return the filtered frame, not {type(kept).__name__}.")
    if "duration" not in kept.columns:
        return wrong("the frame you return has no `duration` column: add it, dropoff minus pickup in minutes.")
    durations = sorted(pd.to_numeric(kept["duration"], errors="coerce").round(4).tolist())
    if durations == _KEPT:
        return right()
    asked = f"Rides of {', '.join(f'{m:g}' for m in _MINUTES)} minutes"
    if durations and max(durations) > 60 * 60 - 1:
        return wrong("those durations look like seconds: .dt.total_seconds() / 60 gives minutes.")
    if durations == [12.25]:
        return wrong(f"{asked} kept only 12.25: both ends are included, 1 and 60 minutes stay (between(1, 60)).")
    if durations in ([1.0, 12.25], [12.25, 60.0]):
        return wrong(f"{asked} kept {durations}: both ends are included (>= 1 and <= 60).")
    return wrong(f"{asked} should keep {_KEPT}; yours kept {durations}.")


EXERCISES: dict[str, Exercise] = {
    "02.keep_rides": Exercise(
        question="Write keep_rides(df) that adds `duration` (minutes from lpep_pickup_datetime to "
        "lpep_dropoff_datetime) to a green trip frame and returns only the rides of 1 to 60 minutes, "
        "both included.",
        hint="(dropoff - pickup).dt.total_seconds() / 60, then keep df[df.duration.between(1, 60)].",
        solution="def keep_rides(df):\n"
        "    df = df.copy()\n"
        '    df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds() / 60\n'
        "    return df[(df.duration >= 1) & (df.duration <= 60)]",
        verify=verify_keep_rides,
    ),
    "02.n_pairs": Exercise(
        question="How many of the fitted DictVectorizer's columns stand for a zone pair (PU_DO=...)?",
        hint="A fitted DictVectorizer lists its columns in feature_names_; count those that start with 'PU_DO='.",
        solution='answer = sum(name.startswith("PU_DO=") for name in dv.feature_names_)',
        expected_from=lambda vectorizer: sum(name.startswith("PU_DO=") for name in vectorizer.feature_names_),
        hints=(
            (lambda a: number(a) == 2, "Each distinct PU_DO pair becomes its own column; count them all."),
            (
                lambda a: number(a) == 1,
                "PU_DO is one feature; the vectorizer makes a column of each of its values.",
            ),
        ),
    ),
}
