"""NYC TLC trip data: download, cache and validate it, or fall back to its offline twin.

``fetch_month`` uses, in order: a file already in the cache (never overwritten, so a learner can
drop real files in), a fresh download, or the *offline twin* (``helpers.core.twin``): a table generated
deterministically from (color, year, month) with exactly the real schema and the real data's main behaviours.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm

from helpers.core import config
from helpers.core.tlc import (
    DROPOFF_COLUMN,
    PICKUP_COLUMN,
    ZONE_COLUMNS,
    trip_filename,
    trip_url,
)
from helpers.core.twin import TWIN_VERSION, make_twin, make_zones

logger = logging.getLogger(__name__)

# Seconds multiplied by 2**(retry-1) between retries; tests set it to 0.
BACKOFF_FACTOR = 0.5


class DownloadError(RuntimeError):
    """A download failed or gave an unusable file; nothing was left in the cache."""


class NetworkUnreachableError(DownloadError):
    """The server could not be reached at all (connection refused, DNS, timeout)."""


class _Retry(urllib3.util.Retry):
    """urllib3's retries, but none when the resolver answers that the host name is unknown: that is
    a machine without network, where each retry only waits (3 s per month file, minutes per course).
    A temporary resolver failure (``EAI_AGAIN``) is still retried."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        cause = error.__cause__ if isinstance(error, urllib3.exceptions.NameResolutionError) else None
        if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME:
            raise urllib3.exceptions.MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


@dataclass(frozen=True)
class MonthData:
    """Which file backs one month of trips, and a sentence saying so."""

    color: str
    year: int
    month: int
    path: Path
    source: str  # "real" or "twin"
    message: str


def download(
    url: str,
    dest: Path,
    *,
    required_columns: Sequence[str] | None = None,
    timeout: float = 60,
    retries: int = 3,
    progress: bool = True,
    backoff_factor: float | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through a validated temporary file; reuse ``dest`` if it exists.

    Args:
        url: what to fetch.
        dest: cache path; ``.parquet`` and ``.csv`` files are validated before being renamed here.
        required_columns: columns the file must have.
        timeout: seconds to wait for the connection and for each read.
        retries: retries on connection errors and on HTTP 429/5xx.
        progress: show a tqdm progress bar.
        backoff_factor: retry backoff, default ``BACKOFF_FACTOR``.

    Returns:
        ``dest``.

    Raises:
        NetworkUnreachableError: the server could not be reached after the retries.
        DownloadError: bad HTTP status, cut connection, or invalid content.
    """
    dest = Path(dest)
    if dest.exists():
        logger.info("cache hit: %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    retry = _Retry(
        total=retries,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=["GET"],
        backoff_factor=BACKOFF_FACTOR if backoff_factor is None else backoff_factor,
    )
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        part = Path(tmp.name)
    try:
        with requests.Session() as session:
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            _stream(session, url, part, dest.name, timeout, progress)
        _validate(part, url, dest.suffix, required_columns or [])
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    logger.info("downloaded %s to %s", url, dest)
    return dest


def _stream(session: requests.Session, url: str, part: Path, label: str, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``part``, under a progress bar labelled ``label`` (the cached file's name)."""
    try:
        response = session.get(url, stream=True, timeout=timeout)
    except requests.exceptions.RetryError as exc:
        raise DownloadError(
            f"{url} kept failing with a server error after retries ({exc}); "
            "try again later or set WORKBOOK_OFFLINE=1 to use the offline twin"
        ) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NetworkUnreachableError(
            f"cannot reach {url} ({type(exc).__name__}); check the network "
            "or set WORKBOOK_OFFLINE=1 to use the offline twin"
        ) from exc
    with response:
        if response.status_code != 200:
            raise DownloadError(
                f"HTTP {response.status_code} for {url}; check that the month is published "
                "(TLC files appear about two months late) and the URL is right"
            )
        expected = int(response.headers.get("Content-Length", 0)) or None
        received = 0
        try:
            with (
                part.open("wb") as out,
                tqdm(total=expected, unit="B", unit_scale=True, desc=label, disable=not progress) as bar,
            ):
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError, requests.Timeout) as exc:
            raise DownloadError(
                f"connection to {url} cut after {received} of {expected or '?'} bytes "
                f"({type(exc).__name__}); run again to retry"
            ) from exc
        if expected is not None and received != expected:
            raise DownloadError(f"{url} truncated at {received} of {expected} bytes; run again to retry")


def _validate(part: Path, url: str, suffix: str, required: Sequence[str]) -> None:
    if suffix == ".parquet":
        try:
            columns = pq.read_schema(part).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise DownloadError(f"{url} is not a parquet file ({exc}); check the URL") from exc
    elif suffix == ".csv":
        with part.open(encoding="utf-8", errors="replace") as f:
            header = f.readline().strip()
        if not header:
            raise DownloadError(f"{url} is empty; check the URL")
        columns = [c.strip().strip('"') for c in header.split(",")]
    else:
        return
    missing = [c for c in required if c not in columns]
    if missing:
        raise DownloadError(f"{url} lacks columns {missing} (has {columns}); check the URL and the year")


def _write_atomically(dest: Path, write: Callable[[Path], None]) -> None:
    # Same temp-then-rename as downloads, so an interrupted run never leaves half a file.
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        part = Path(tmp.name)
    try:
        write(part)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _fetch(
    name: str, url: str, label: str, required: Sequence[str], write_twin: Callable[[Path], None]
) -> tuple[Path, str, str]:
    """Shared real-or-twin decision: returns (path, source, message)."""
    real = config.data_dir() / name
    twin = config.data_dir() / "twin" / f"v{TWIN_VERSION}" / name
    if real.exists():
        return real, "real", f"{label}: real TLC file {config.shown(real)}"
    if config.offline():
        reason = "WORKBOOK_OFFLINE=1"
    else:
        try:
            download(url, real, required_columns=required)
            return real, "real", f"{label}: real TLC file {config.shown(real)} (downloaded from {url})"
        except NetworkUnreachableError as exc:
            reason = f"network unreachable: {exc.__cause__.__class__.__name__} for {url}"
    if not twin.exists():
        _write_atomically(twin, write_twin)
    message = f"{label}: offline twin ({reason}) {config.shown(twin)}"
    logger.info(message)
    return twin, "twin", message


def fetch_month(color: str, year: int, month: int) -> MonthData:
    """Get one month of trips: the cached real file, a download, or the offline twin.

    Args:
        color: ``"green"`` or ``"yellow"``.
        year: e.g. 2021.
        month: 1-12.

    Returns:
        A ``MonthData`` whose ``source`` is ``"real"`` or ``"twin"`` and whose ``message`` says which.

    Raises:
        DownloadError: the server answered but the file was bad (HTTP 404, truncated, invalid).
    """
    name = trip_filename(color, year, month)
    required = [PICKUP_COLUMN[color], DROPOFF_COLUMN[color], "PULocationID", "DOLocationID", "trip_distance"]
    path, source, message = _fetch(
        name,
        trip_url(color, year, month),
        f"{color} {year:04d}-{month:02d}",
        required,
        lambda p: pq.write_table(make_twin(color, year, month), p),
    )
    return MonthData(color, year, month, path, source, message)


def read_month(color: str, year: int, month: int) -> pd.DataFrame:
    """One month of trips as a DataFrame (real or twin, see ``fetch_month``)."""
    return pd.read_parquet(fetch_month(color, year, month).path)


# --- Zones ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneLookup:
    """The zone table and which file backs it, as ``MonthData`` says for a month."""

    table: pd.DataFrame
    source: str  # "real" or "twin"
    message: str


def fetch_zones() -> ZoneLookup:
    """The TLC zone lookup (cached, downloaded, or the offline table of ``make_zones``).

    Returns:
        A ``ZoneLookup`` whose ``table`` has 265 rows with ``ZONE_COLUMNS`` (labels such as
        ``"N/A"`` stay strings, not NaN) and whose ``message`` says, on the twin, that most names
        and boroughs are generated.
    """
    path, source, message = _fetch(
        "taxi_zone_lookup.csv",
        config.tlc_zones_url(),
        "taxi zones",
        ZONE_COLUMNS,
        lambda p: make_zones().to_csv(p, index=False),
    )
    if source == "twin":
        message += '; apart from a few well-known zones, the names ("Zone <id>") and boroughs are generated'
    logger.info(message)
    return ZoneLookup(pd.read_csv(path, keep_default_na=False, na_values=[""]), source, message)
