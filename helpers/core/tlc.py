"""What the NYC TLC publishes: file names, download URLs, column names and the parquet schemas."""

from __future__ import annotations

import pyarrow as pa

from helpers.core import config

COLORS = ("green", "yellow")
PICKUP_COLUMN = {"green": "lpep_pickup_datetime", "yellow": "tpep_pickup_datetime"}
DROPOFF_COLUMN = {"green": "lpep_dropoff_datetime", "yellow": "tpep_dropoff_datetime"}
ZONE_COLUMNS = ["LocationID", "Borough", "Zone", "service_zone"]

_F, _I, _TS, _S = pa.float64(), pa.int64(), pa.timestamp("us"), pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "green": pa.schema(
        [
            ("VendorID", _I),
            ("lpep_pickup_datetime", _TS),
            ("lpep_dropoff_datetime", _TS),
            ("store_and_fwd_flag", _S),
            ("RatecodeID", _F),
            ("PULocationID", _I),
            ("DOLocationID", _I),
            ("passenger_count", _F),
            ("trip_distance", _F),
            ("fare_amount", _F),
            ("extra", _F),
            ("mta_tax", _F),
            ("tip_amount", _F),
            ("tolls_amount", _F),
            ("ehail_fee", pa.null()),
            ("improvement_surcharge", _F),
            ("total_amount", _F),
            ("payment_type", _F),
            ("trip_type", _F),
            ("congestion_surcharge", _F),
        ]
    ),
    "yellow": pa.schema(
        [
            ("VendorID", _I),
            ("tpep_pickup_datetime", _TS),
            ("tpep_dropoff_datetime", _TS),
            ("passenger_count", _F),
            ("trip_distance", _F),
            ("RatecodeID", _F),
            ("store_and_fwd_flag", _S),
            ("PULocationID", _I),
            ("DOLocationID", _I),
            ("payment_type", _I),
            ("fare_amount", _F),
            ("extra", _F),
            ("mta_tax", _F),
            ("tip_amount", _F),
            ("tolls_amount", _F),
            ("improvement_surcharge", _F),
            ("total_amount", _F),
            ("congestion_surcharge", _F),
            ("airport_fee", _F),
        ]
    ),
}


def trip_filename(color: str, year: int, month: int) -> str:
    """TLC file name of one month, e.g. ``green_tripdata_2021-01.parquet``.

    Raises:
        ValueError: unknown color or month outside 1-12.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1-12, got {month}")
    return f"{color}_tripdata_{year:04d}-{month:02d}.parquet"


def trip_url(color: str, year: int, month: int) -> str:
    """Download URL of one month (``WORKBOOK_TLC_URL`` can point it at a mirror)."""
    return f"{config.tlc_base_url()}/{trip_filename(color, year, month)}"


def parse_month(text: str) -> tuple[int, int]:
    """``"2021-03"`` → ``(2021, 3)``.

    Raises:
        ValueError: anything but ``YYYY-MM`` with a month from 1 to 12.
    """
    try:
        year, month = (int(part) for part in str(text).split("-"))
    except ValueError:
        raise ValueError(f"month {text!r} is not YYYY-MM, e.g. 2021-03") from None
    if not 1 <= month <= 12 or year < 2009:
        raise ValueError(f"month {text!r} is out of range: TLC trip files start in 2009, months are 01-12")
    return year, month


def month_range(text: str) -> list[tuple[int, int]]:
    """``"2021-01..2021-03"`` → ``[(2021, 1), (2021, 2), (2021, 3)]``; also one month or a comma list.

    Raises:
        ValueError: a month that is not ``YYYY-MM``, or a range that ends before it starts.
    """
    months: list[tuple[int, int]] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("..")
        start, end = parse_month(first), parse_month(last or first)
        if end < start:
            raise ValueError(f"the range {part.strip()!r} ends before it starts")
        months += [(n // 12, n % 12 + 1) for n in range(start[0] * 12 + start[1] - 1, end[0] * 12 + end[1])]
    return list(dict.fromkeys(months))
