"""A loopback mirror of the TLC site: the course's online path, tested without the internet.

It answers GET and HEAD for ``/trip-data/{color}_tripdata_{YYYY-MM}.parquet`` with bytes the
offline twin writes (as if they were the real files) and for ``/misc/taxi_zone_lookup.csv`` with
the twin's zone table; any other path, and the months it is told to leave out, get a 404 as the
real site gives for a month not published yet. Point ``WORKBOOK_TLC_URL`` at :attr:`trip_url` and
``WORKBOOK_ZONES_URL`` at :attr:`zones_url`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq

from helpers.twin import make_twin, make_zones

TRIP_PATH = re.compile(r"^/trip-data/(green|yellow)_tripdata_(\d{4})-(\d{2})\.parquet$")
ZONES_PATH = "/misc/taxi_zone_lookup.csv"


@dataclass
class TLCMirror:
    """The mirror's files live in ``folder``, made on first request; ``requests`` logs
    ``(method, path, status)`` in the order they came."""

    folder: Path
    missing: frozenset[str] = frozenset()
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def trip_url(self) -> str:
        return f"{self.url}/trip-data"

    @property
    def zones_url(self) -> str:
        return f"{self.url}{ZONES_PATH}"

    def file_for(self, path: str) -> Path | None:
        """The file served at ``path``, written the first time it is asked for; None means 404."""
        name = path.rsplit("/", 1)[-1]
        match = TRIP_PATH.match(path)
        if (match is None and path != ZONES_PATH) or name in self.missing:
            return None
        target = self.folder / name
        with self._lock:  # two chapters' kernels may ask for the same month at once
            if not target.exists():
                part = target.with_suffix(".part")
                if match:
                    color, year, month = match.group(1), int(match.group(2)), int(match.group(3))
                    pq.write_table(make_twin(color, year, month), part)
                else:
                    make_zones().to_csv(part, index=False)
                part.replace(target)
        return target

    def start(self) -> TLCMirror:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                target = mirror.file_for(self.path)
                status = 200 if target else 404
                mirror.requests.append((self.command, self.path, status))
                content = target.read_bytes() if target else b"<Error><Code>NoSuchKey</Code></Error>"
                self.send_response(status)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
                self._answer(body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def asked(self, method: str, names: Iterable[str] = ()) -> set[str]:
        """File names requested with ``method`` (all of them, or those among ``names``)."""
        seen = {path.rsplit("/", 1)[-1] for verb, path, _ in self.requests if verb == method}
        wanted = set(names)
        return seen & wanted if wanted else seen
