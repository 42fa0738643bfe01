"""helpers.data: downloads against a local server, the real-or-twin choice, and the twin's behaviour."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import data
from tests.conftest import FakeTLC, Reply

GREEN_JAN = "/green_tripdata_2021-01.parquet"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "BACKOFF_FACTOR", 0.0)


@pytest.fixture(scope="module")
def small_parquet() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(data.make_twin("green", 2021, 1, n_rows=200), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def green_jan() -> pd.DataFrame:
    return data.make_twin("green", 2021, 1).to_pandas()


@pytest.fixture
def workbook_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WORKBOOK_OFFLINE", raising=False)
    return tmp_path


def minutes(df: pd.DataFrame, color: str = "green") -> pd.Series:
    return (df[data.DROPOFF_COLUMN[color]] - df[data.PICKUP_COLUMN[color]]).dt.total_seconds() / 60


def test_trip_filename_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", "http://mirror/trips/")
    assert data.trip_filename("green", 2021, 1) == "green_tripdata_2021-01.parquet"
    assert data.trip_url("yellow", 2023, 12) == "http://mirror/trips/yellow_tripdata_2023-12.parquet"


@pytest.mark.parametrize(("color", "month"), [("blue", 1), ("green", 13)])
def test_trip_filename_rejects_bad_arguments(color: str, month: int) -> None:
    with pytest.raises(ValueError, match="color must be one of|month must be 1-12"):
        data.trip_filename(color, 2021, month)


# --- download -----------------------------------------------------------------------------------

def test_download_saves_a_valid_file(tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    dest = data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", required_columns=["trip_distance"],
                         progress=False)
    assert pq.read_table(dest).num_rows == 200


def test_download_cache_hit_makes_no_request(tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    for _ in range(2):
        data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", progress=False)
    assert tlc_server.hits[GREEN_JAN] == 1


def test_download_404_raises_and_leaves_nothing(tlc_server: FakeTLC, tmp_path: Path) -> None:
    with pytest.raises(data.DownloadError, match="HTTP 404"):
        data.download(tlc_server.url + "/missing.parquet", tmp_path / "g.parquet", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_cut_connection_raises_and_leaves_nothing(tlc_server: FakeTLC, tmp_path: Path,
                                                           small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet[:1000], length=len(small_parquet))]
    with pytest.raises(data.DownloadError, match="cut|truncated"):
        data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", retries=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_rejects_a_non_parquet_body(tlc_server: FakeTLC, tmp_path: Path) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=b"<html>Access denied</html>")]
    with pytest.raises(data.DownloadError, match="not a parquet file"):
        data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_rejects_missing_columns(tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    with pytest.raises(data.DownloadError, match=r"lacks columns \['fare'\]"):
        data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", required_columns=["fare"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_retries_a_503(tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(503), Reply(503), Reply(body=small_parquet)]
    data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", retries=3, progress=False)
    assert tlc_server.hits[GREEN_JAN] == 3


def test_download_unreachable_server_raises_network_error(closed_port_url: str, tmp_path: Path) -> None:
    with pytest.raises(data.NetworkUnreachableError, match="cannot reach"):
        data.download(closed_port_url + GREEN_JAN, tmp_path / "g.parquet", retries=1, progress=False)
    assert list(tmp_path.iterdir()) == []


# --- fetch_month --------------------------------------------------------------------------------

def test_fetch_month_offline_uses_the_twin(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    month = data.fetch_month("green", 2021, 1)
    assert month.source == "twin"
    assert month.path == workbook_env / "twin" / "green_tripdata_2021-01.parquet"
    assert "offline twin (WORKBOOK_OFFLINE=1)" in month.message
    assert not (workbook_env / "green_tripdata_2021-01.parquet").exists()


def test_fetch_month_uses_a_dropped_in_file_as_is(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    dropped = workbook_env / "green_tripdata_2021-01.parquet"
    pq.write_table(data.make_twin("green", 2021, 1, n_rows=10), dropped)
    before = dropped.read_bytes()
    month = data.fetch_month("green", 2021, 1)
    assert (month.source, month.path) == ("real", dropped)
    assert "real TLC file" in month.message
    assert dropped.read_bytes() == before


def test_fetch_month_online_downloads_the_real_file(workbook_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tlc_server: FakeTLC, small_parquet: bytes) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", tlc_server.url)
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    month = data.fetch_month("green", 2021, 1)
    assert (month.source, month.path) == ("real", workbook_env / "green_tripdata_2021-01.parquet")
    assert len(data.read_month("green", 2021, 1)) == 200


def test_fetch_month_unreachable_falls_back_to_the_twin(workbook_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                        closed_port_url: str) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", closed_port_url)
    month = data.fetch_month("green", 2021, 2)
    assert month.source == "twin"
    assert "network unreachable" in month.message and "using the offline twin" in month.message


def test_fetch_month_404_is_an_error_not_a_twin(workbook_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                tlc_server: FakeTLC) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", tlc_server.url)
    with pytest.raises(data.DownloadError, match="HTTP 404"):
        data.fetch_month("green", 2030, 1)


# --- the offline twin ---------------------------------------------------------------------------

@pytest.mark.parametrize("color", data.COLORS)
def test_twin_has_exactly_the_real_schema(color: str) -> None:
    table = data.make_twin(color, 2021, 1, n_rows=500)
    assert table.schema.names == data.SCHEMAS[color].names
    for name in table.schema.names:
        assert table.schema.field(name).type == data.SCHEMAS[color].field(name).type, name


def test_green_ehail_fee_is_all_null() -> None:
    table = data.make_twin("green", 2021, 1, n_rows=500)
    assert table.schema.field("ehail_fee").type == pa.null()
    assert table.column("ehail_fee").null_count == 500


def test_twin_is_deterministic_and_differs_between_months() -> None:
    assert data.make_twin("green", 2021, 3, n_rows=1000).equals(data.make_twin("green", 2021, 3, n_rows=1000))
    assert not data.make_twin("green", 2021, 3, n_rows=1000).equals(data.make_twin("green", 2021, 4, n_rows=1000))


def test_twin_uses_the_real_row_count() -> None:
    assert data.make_twin("green", 2021, 1).num_rows == 76_518


def test_twin_share_outside_1_to_60_minutes(green_jan: pd.DataFrame) -> None:
    duration = minutes(green_jan)
    assert 0.02 <= 1 - duration.between(1, 60).mean() <= 0.05
    assert (duration >= 0).all()


@pytest.mark.parametrize(("year", "month", "mean"), [(2021, 1, 16.85), (2021, 2, 17.85), (2022, 1, 14.09)])
def test_twin_mean_duration_matches_the_real_month(year: int, month: int, mean: float) -> None:
    duration = minutes(data.make_twin("green", year, month).to_pandas())
    assert duration[duration.between(1, 60)].mean() == pytest.approx(mean, abs=1)


def test_twin_trips_get_faster_in_later_years() -> None:
    jan21, jan22 = (minutes(data.make_twin("green", y, 1).to_pandas()) for y in (2021, 2022))
    assert jan22[jan22.between(1, 60)].mean() < jan21[jan21.between(1, 60)].mean() - 2


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

def test_offline_zones(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    zones = data.fetch_zones()
    assert list(zones.columns) == data.ZONE_COLUMNS
    assert zones["LocationID"].tolist() == list(range(1, 266))
    assert zones.set_index("LocationID").loc[132, "Zone"] == "JFK Airport"
    assert (workbook_env / "twin" / "taxi_zone_lookup.csv").exists()


def test_zones_download(workbook_env: Path, monkeypatch: pytest.MonkeyPatch, tlc_server: FakeTLC) -> None:
    monkeypatch.setenv("WORKBOOK_ZONES_URL", tlc_server.url + "/misc/taxi_zone_lookup.csv")
    tlc_server.routes["/misc/taxi_zone_lookup.csv"] = [Reply(body=data.make_zones().to_csv(index=False).encode())]
    zones = data.fetch_zones()
    assert len(zones) == 265 and (workbook_env / "taxi_zone_lookup.csv").exists()
