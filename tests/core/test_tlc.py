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


def test_month_range_reads_ranges_across_years_single_months_and_lists():
    assert tlc.month_range("2021-11..2022-02") == [(2021, 11), (2021, 12), (2022, 1), (2022, 2)]
    assert tlc.month_range("2021-03") == [(2021, 3)]
    assert tlc.month_range("2021-03,2021-01..2021-03") == [(2021, 3), (2021, 1), (2021, 2)]


@pytest.mark.parametrize(
    "text, error",
    [("2021-03..2021-01", "ends before it starts"), ("2021-13", "out of range"), ("march", "is not YYYY-MM")],
)
def test_month_range_refuses_what_is_not_a_range_of_months(text, error):
    with pytest.raises(ValueError, match=error):
        tlc.month_range(text)
