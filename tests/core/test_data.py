"""helpers.core.data: downloads against a local server, the real-or-twin choice, and the cache."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers.core import data, tlc, twin
from tests.support import FakeTLC, Reply

GREEN_JAN = "/green_tripdata_2021-01.parquet"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "BACKOFF_FACTOR", 0.0)


@pytest.fixture(scope="module")
def small_parquet() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(twin.make_twin("green", 2021, 1, n_rows=200), buffer)
    return buffer.getvalue()


@pytest.fixture
def workbook_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WORKBOOK_OFFLINE", raising=False)
    return tmp_path


# --- download -----------------------------------------------------------------------------------


def test_download_saves_a_valid_file(tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    dest = data.download(
        tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", required_columns=["trip_distance"], progress=False
    )
    assert pq.read_table(dest).num_rows == 200


def test_download_progress_bar_is_labelled_with_the_file_name(
    tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes, capsys
) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    data.download(tlc_server.url + GREEN_JAN, tmp_path / "green_tripdata_2021-01.parquet")
    bar = capsys.readouterr().err
    assert "green_tripdata_2021-01.parquet:" in bar
    assert ".part" not in bar


def test_download_cache_hit_makes_no_request(tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes) -> None:
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    for _ in range(2):
        data.download(tlc_server.url + GREEN_JAN, tmp_path / "g.parquet", progress=False)
    assert tlc_server.hits[GREEN_JAN] == 1


def test_download_404_raises_and_leaves_nothing(tlc_server: FakeTLC, tmp_path: Path) -> None:
    with pytest.raises(data.DownloadError, match="HTTP 404"):
        data.download(tlc_server.url + "/missing.parquet", tmp_path / "g.parquet", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_cut_connection_raises_and_leaves_nothing(
    tlc_server: FakeTLC, tmp_path: Path, small_parquet: bytes
) -> None:
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


def _resolver_failing_with(monkeypatch: pytest.MonkeyPatch, errno: int) -> list[str]:
    """Make every host name lookup fail with ``errno``; returns the hosts looked up, in order."""
    looked_up = []

    def getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(errno, "resolver says no")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def test_download_an_unknown_host_name_fails_at_once_without_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    looked_up = _resolver_failing_with(monkeypatch, socket.EAI_NONAME)
    started = time.monotonic()
    with pytest.raises(data.NetworkUnreachableError, match="cannot reach"):
        data.download("https://tlc.example" + GREEN_JAN, tmp_path / "g.parquet", backoff_factor=2, progress=False)
    assert time.monotonic() - started < 5
    assert looked_up == ["tlc.example"]
    assert list(tmp_path.iterdir()) == []


def test_download_a_temporary_resolver_failure_is_retried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    looked_up = _resolver_failing_with(monkeypatch, socket.EAI_AGAIN)
    with pytest.raises(data.NetworkUnreachableError, match="cannot reach"):
        data.download("https://tlc.example" + GREEN_JAN, tmp_path / "g.parquet", retries=2, progress=False)
    assert looked_up == ["tlc.example"] * 3


# --- fetch_month --------------------------------------------------------------------------------


def test_fetch_month_offline_uses_the_twin(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    month = data.fetch_month("green", 2021, 1)
    assert month.source == "twin"
    assert month.path == workbook_env / "twin" / f"v{twin.TWIN_VERSION}" / "green_tripdata_2021-01.parquet"
    assert "offline twin (WORKBOOK_OFFLINE=1)" in month.message
    assert not (workbook_env / "green_tripdata_2021-01.parquet").exists()


def test_fetch_month_uses_a_dropped_in_file_as_is(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    dropped = workbook_env / "green_tripdata_2021-01.parquet"
    pq.write_table(twin.make_twin("green", 2021, 1, n_rows=10), dropped)
    before = dropped.read_bytes()
    month = data.fetch_month("green", 2021, 1)
    assert (month.source, month.path) == ("real", dropped)
    assert "real TLC file" in month.message
    assert dropped.read_bytes() == before


def test_fetch_month_online_downloads_the_real_file(
    workbook_env: Path, monkeypatch: pytest.MonkeyPatch, tlc_server: FakeTLC, small_parquet: bytes
) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", tlc_server.url)
    tlc_server.routes[GREEN_JAN] = [Reply(body=small_parquet)]
    month = data.fetch_month("green", 2021, 1)
    assert (month.source, month.path) == ("real", workbook_env / "green_tripdata_2021-01.parquet")
    assert len(data.read_month("green", 2021, 1)) == 200


def test_fetch_month_unreachable_falls_back_to_the_twin(
    workbook_env: Path, monkeypatch: pytest.MonkeyPatch, closed_port_url: str
) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", closed_port_url)
    month = data.fetch_month("green", 2021, 2)
    assert month.source == "twin"
    assert "offline twin (network unreachable: " in month.message


def test_fetch_month_404_is_an_error_not_a_twin(
    workbook_env: Path, monkeypatch: pytest.MonkeyPatch, tlc_server: FakeTLC
) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", tlc_server.url)
    with pytest.raises(data.DownloadError, match="HTTP 404"):
        data.fetch_month("green", 2030, 1)


# --- zones --------------------------------------------------------------------------------------


def test_offline_zones(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    lookup = data.fetch_zones()
    zones = lookup.table
    assert list(zones.columns) == tlc.ZONE_COLUMNS
    assert zones["LocationID"].tolist() == list(range(1, 266))
    assert zones.set_index("LocationID").loc[132, "Zone"] == "JFK Airport"
    assert (workbook_env / "twin" / f"v{twin.TWIN_VERSION}" / "taxi_zone_lookup.csv").exists()


def test_offline_zones_say_their_names_are_generated(workbook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    lookup = data.fetch_zones()
    assert lookup.source == "twin"
    assert "generated" in lookup.message and (lookup.table["Zone"] == "Zone 63").any()


def test_zones_download(workbook_env: Path, monkeypatch: pytest.MonkeyPatch, tlc_server: FakeTLC) -> None:
    monkeypatch.setenv("WORKBOOK_ZONES_URL", tlc_server.url + "/misc/taxi_zone_lookup.csv")
    tlc_server.routes["/misc/taxi_zone_lookup.csv"] = [Reply(body=twin.make_zones().to_csv(index=False).encode())]
    lookup = data.fetch_zones()
    assert len(lookup.table) == 265 and (workbook_env / "taxi_zone_lookup.csv").exists()
    assert lookup.source == "real" and "generated" not in lookup.message
