import pandas as pd
import pytest

from helpers.core.features import (
    InvalidRide,
    add_duration,
    prepare,
    to_dicts,
    validate_ride,
)


def _rides(minutes: list[float], prefix: str = "lpep") -> pd.DataFrame:
    pickup = pd.Timestamp("2021-01-01 08:00")
    return pd.DataFrame(
        {
            f"{prefix}_pickup_datetime": [pickup] * len(minutes),
            f"{prefix}_dropoff_datetime": [pickup + pd.Timedelta(minutes=m) for m in minutes],
            "PULocationID": [74] * len(minutes),
            "DOLocationID": [75] * len(minutes),
            "trip_distance": [1.5] * len(minutes),
        }
    )


def test_duration_is_minutes_between_pickup_and_dropoff():
    assert add_duration(_rides([12.5]))["duration"].tolist() == [12.5]


def test_yellow_files_use_tpep_columns():
    assert add_duration(_rides([3.0], prefix="tpep"))["duration"].tolist() == [3.0]


def test_unknown_schema_says_what_it_expected():
    with pytest.raises(KeyError, match="lpep_"):
        add_duration(pd.DataFrame({"pickup": [1]}))


def test_filter_keeps_1_to_60_minutes_inclusive():
    prepared = prepare(_rides([0.5, 1.0, 30.0, 60.0, 61.0, -3.0]))
    assert prepared["duration"].tolist() == [1.0, 30.0, 60.0]


def test_zone_ids_become_strings_and_pairs():
    prepared = prepare(_rides([10.0]))
    assert prepared.loc[0, "PULocationID"] == "74"
    assert prepared.loc[0, "PU_DO"] == "74_75"


def test_prepare_does_not_modify_its_input():
    raw = _rides([10.0])
    prepare(raw)
    assert "duration" not in raw.columns
    assert raw["PULocationID"].dtype.kind == "i"


def test_feature_dicts_from_a_prepared_frame_and_from_raw_rides_agree():
    from_frame = to_dicts(prepare(_rides([10.0])))
    from_request = to_dicts([{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.5}])
    assert from_frame == from_request == [{"PU_DO": "74_75", "trip_distance": 1.5}]


def test_a_valid_ride_keeps_only_what_the_model_reads():
    ride = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2, "fare_amount": 9.5}
    assert validate_ride(ride) == {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.0}


@pytest.mark.parametrize(
    "ride, field, words",
    [
        ([74, 75, 2.0], None, "must be a JSON object, got a JSON array"),
        ({"PULocationID": 74, "trip_distance": 2.0}, "DOLocationID", "missing field"),
        ({"PULocationID": 74.0, "DOLocationID": 75, "trip_distance": 2.0}, "PULocationID", "integer zone ID"),
        ({"PULocationID": 74, "DOLocationID": 266, "trip_distance": 2.0}, "DOLocationID", "1-265, got 266"),
        ({"PULocationID": 74, "DOLocationID": 75, "trip_distance": True}, "trip_distance", "JSON boolean"),
        ({"PULocationID": 74, "DOLocationID": 75, "trip_distance": float("nan")}, "trip_distance", "finite"),
        ({"PULocationID": 74, "DOLocationID": 75, "trip_distance": -0.5}, "trip_distance", ">= 0 miles"),
    ],
)
def test_an_invalid_ride_says_which_field_and_why(ride, field, words):
    with pytest.raises(InvalidRide, match=words) as caught:
        validate_ride(ride)
    assert caught.value.field == field
