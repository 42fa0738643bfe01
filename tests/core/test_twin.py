"""helpers.core.twin: the offline twin's schema, determinism and behaviour, and its zone table."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helpers.core import tlc, twin


@pytest.fixture(scope="module")
def green_jan() -> pd.DataFrame:
    return twin.make_twin("green", 2021, 1).to_pandas()


def minutes(df: pd.DataFrame, color: str = "green") -> pd.Series:
    return (df[tlc.DROPOFF_COLUMN[color]] - df[tlc.PICKUP_COLUMN[color]]).dt.total_seconds() / 60


@pytest.mark.parametrize("color", tlc.COLORS)
def test_twin_has_exactly_the_real_schema(color: str) -> None:
    table = twin.make_twin(color, 2021, 1, n_rows=500)
    assert table.schema.names == tlc.SCHEMAS[color].names
    for name in table.schema.names:
        assert table.schema.field(name).type == tlc.SCHEMAS[color].field(name).type, name


def test_green_ehail_fee_is_all_null() -> None:
    table = twin.make_twin("green", 2021, 1, n_rows=500)
    assert table.schema.field("ehail_fee").type == pa.null()
    assert table.column("ehail_fee").null_count == 500


def test_twin_is_deterministic_and_differs_between_months() -> None:
    assert twin.make_twin("green", 2021, 3, n_rows=1000).equals(twin.make_twin("green", 2021, 3, n_rows=1000))
    assert not twin.make_twin("green", 2021, 3, n_rows=1000).equals(twin.make_twin("green", 2021, 4, n_rows=1000))


@pytest.mark.parametrize(
    ("month", "fingerprint"), [(1, "36d0d854e3d5f7b9"), (2, "cc974f0badfdd98a"), (3, "9257d522694c0263")]
)
def test_the_2021_months_chapters_01_to_07_use_stay_as_they_were(month: int, fingerprint: str) -> None:
    # Every value of every row: a change to the generator must leave these months alone (or show it
    # here, and bump TWIN_VERSION) so that the committed chapters keep their numbers.
    df = twin.make_twin("green", 2021, month).to_pandas()
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()
    assert hashlib.sha256(hashed).hexdigest()[:16] == fingerprint


def test_twin_uses_the_real_row_count() -> None:
    assert twin.make_twin("green", 2021, 1).num_rows == 76_518


def test_twin_share_outside_1_to_60_minutes(green_jan: pd.DataFrame) -> None:
    duration = minutes(green_jan)
    assert 0.02 <= 1 - duration.between(1, 60).mean() <= 0.05
    assert (duration >= 0).all()


@pytest.mark.parametrize(("year", "month", "mean"), [(2021, 1, 16.85), (2021, 2, 17.85), (2022, 1, 14.09)])
def test_twin_mean_duration_matches_the_real_month(year: int, month: int, mean: float) -> None:
    duration = minutes(twin.make_twin("green", year, month).to_pandas())
    assert duration[duration.between(1, 60)].mean() == pytest.approx(mean, abs=1)


def test_twin_trips_get_faster_in_later_years() -> None:
    jan21, jan22 = (minutes(twin.make_twin("green", y, 1).to_pandas()) for y in (2021, 2022))
    assert jan22[jan22.between(1, 60)].mean() < jan21[jan21.between(1, 60)].mean() - 2


def test_twin_trips_are_shorter_and_more_local_from_2022_only() -> None:
    # tests/test_monitoring.py checks that Evidently sees this as drift; here, the shape of it.
    jan21, feb21, jan23 = (
        twin.make_twin("green", y, m, n_rows=20_000).to_pandas() for y, m in [(2021, 1), (2021, 2), (2023, 1)]
    )
    assert feb21["trip_distance"].median() == pytest.approx(jan21["trip_distance"].median(), rel=0.05)
    assert jan23["trip_distance"].median() < 0.9 * jan21["trip_distance"].median()

    def same_zone(df: pd.DataFrame) -> float:
        return (df["PULocationID"] == df["DOLocationID"]).mean()

    assert same_zone(jan23) > 1.3 * same_zone(jan21)


def test_twin_miles_take_less_time_from_2022_so_an_old_model_is_biased() -> None:
    # The change in duration given the inputs that lets a retrained model beat a 2021 one on 2023
    # (tests/monitor/test_retraining.py measures that).
    def minutes_a_mile(year: int, month: int) -> float:
        df = twin.make_twin("green", year, month, n_rows=20_000).to_pandas()
        duration = minutes(df)
        trips = df[duration.between(1, 60) & df["trip_distance"].between(1, 3)]
        return float((minutes(trips) / trips["trip_distance"]).median())

    early = [minutes_a_mile(2021, m) for m in (1, 2, 3)]
    assert max(early) / min(early) < 1.1
    assert minutes_a_mile(2022, 12) < 0.92 * min(early)
    assert minutes_a_mile(2023, 2) < 0.92 * min(early)


def test_twin_popular_zones_and_nulls(green_jan: pd.DataFrame) -> None:
    shares = green_jan["PULocationID"].value_counts(normalize=True)
    assert shares.index[0] == 74 and shares[74] == pytest.approx(0.09, abs=0.01)
    assert green_jan["passenger_count"].isna().mean() == pytest.approx(0.47, abs=0.02)
    assert green_jan["VendorID"].notna().all()


def test_twin_duration_follows_distance_with_noise(green_jan: pd.DataFrame) -> None:
    # benchmarks/twin_stats.py checks the full models (LinearRegression ~7 min RMSE, XGBoost lower).
    duration = minutes(green_jan)
    inside = duration.between(1, 60)
    correlation = np.corrcoef(np.log1p(green_jan["trip_distance"][inside]), duration[inside])[0, 1]
    assert 0.5 < correlation < 0.95


# --- zones --------------------------------------------------------------------------------------


def test_zone_table_has_every_id_and_the_known_zones() -> None:
    zones = twin.make_zones()
    assert list(zones.columns) == tlc.ZONE_COLUMNS
    assert zones["LocationID"].tolist() == list(range(1, 266))
    assert zones.set_index("LocationID").loc[132, "Zone"] == "JFK Airport"
