"""helpers.core.tlc: the TLC's file names and download URLs."""

from __future__ import annotations

import pytest

from helpers.core import tlc


def test_trip_filename_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBOOK_TLC_URL", "http://mirror/trips/")
    assert tlc.trip_filename("green", 2021, 1) == "green_tripdata_2021-01.parquet"
    assert tlc.trip_url("yellow", 2023, 12) == "http://mirror/trips/yellow_tripdata_2023-12.parquet"


@pytest.mark.parametrize(("color", "month"), [("blue", 1), ("green", 13)])
def test_trip_filename_rejects_bad_arguments(color: str, month: int) -> None:
    with pytest.raises(ValueError, match="color must be one of|month must be 1-12"):
        tlc.trip_filename(color, 2021, month)
