"""What the tests share: small synthetic data, a loopback TLC site and mirror, the files a chapter
writes, a registered champion, the service's example requests, and the rule for a missing tool.

Fixtures live in ``tests/conftest.py``; everything a test imports lives here (``from tests.support
import ...``), never in a conftest or another test module.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers.core.features import prepare
from helpers.core.twin import make_twin, make_zones

if TYPE_CHECKING:
    from helpers.monitor import drift

# --- A missing tool ------------------------------------------------------------------------------


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip with ``reason``; with ``CI=true`` fail instead, since CI installs what the test needs,
    so that a test can never silently stop running there."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} CI=true, so this is an error, not a skip.")
    pytest.skip(reason)


# --- Data ----------------------------------------------------------------------------------------


def synthetic_month(n: int, seed: int) -> pd.DataFrame:
    """Prepared rides whose duration is 3 min a mile plus a per-zone offset, with noise."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    pu = rng.integers(1, 20, n)
    distance = rng.uniform(0.5, 10, n)
    minutes = 3 * distance + pu * 0.5 + rng.normal(0, 0.5, n) + 2
    return prepare(
        pd.DataFrame(
            {
                "lpep_pickup_datetime": pickup,
                "lpep_dropoff_datetime": pickup + pd.to_timedelta(minutes, unit="m"),
                "PULocationID": pu,
                "DOLocationID": rng.integers(1, 5, n),
                "trip_distance": distance,
            }
        )
    )


def monitored_frame(n: int, seed: int, *, start: str = "2021-03-01", days: int = 1) -> pd.DataFrame:
    """A scored batch with every monitored column, its actual durations and pickup times."""
    rng = np.random.default_rng(seed)
    distance = rng.lognormal(1, 0.8, n)
    predicted = 5 + 2.5 * distance + rng.normal(0, 1, n)
    pickup = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s")
    return pd.DataFrame(
        {
            "lpep_pickup_datetime": pickup,
            "PULocationID": rng.integers(1, 8, n),
            "DOLocationID": rng.integers(1, 8, n),
            "trip_distance": distance,
            "passenger_count": rng.choice([1.0, 2.0, 3.0], n),
            "fare_amount": 3 + 2.5 * distance,
            "total_amount": 5 + 2.5 * distance,
            "predicted_duration": predicted,
            "actual_duration": predicted + rng.normal(0, 3, n),
        }
    )


def sample_metrics(batch: str = "green/2021-03", **values) -> drift.BatchMetrics:
    """A batch's metrics where all is well, with ``values`` changed."""
    from helpers.monitor.drift import BatchMetrics, ColumnDrift

    defaults = dict(
        rows=100,
        prediction_drift=0.01,
        prediction_drift_detected=False,
        drifted_columns=0,
        drifted_share=0.0,
        missing_share=0.0,
        rmse=6.0,
        mae=4.0,
        columns=(ColumnDrift("predicted_duration", 0.01, "Wasserstein distance (normed)", 0.1, False),),
    )
    return BatchMetrics(batch=batch, **{**defaults, **values})


# --- Models --------------------------------------------------------------------------------------


def registered_champion(name: str, months) -> str:
    """Train a LinearRegression on the synthetic ``months``, register it as ``name`` with the
    ``champion`` alias, and return its version (the store is the caller's)."""
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LinearRegression

    from helpers.ml import registry, tracking

    df_train, df_val, _ = months
    tracking.use_experiment(name)
    result = tracking.train_and_log(
        LinearRegression(), df_train, df_val, train_source="a", val_source="b", data_source="twin"
    )
    version = registry.register_run(MlflowClient().get_run(result.run_id), name)
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version.version)
    return str(version.version)


# --- The web service's example requests ---------------------------------------------------------

RIDE = {"PULocationID": 10, "DOLocationID": 3, "trip_distance": 4.0}


class TwoAndAHalfMinutesAMile:
    """A model whose trips take 3 minutes plus 2.5 a mile: 6 miles take 10 minutes longer than 2."""

    def predict(self, rides):
        return 3.0 + 2.5 * rides["trip_distance"].to_numpy()


BAD_REQUESTS = [
    # (id, body, content type, status, field, index, words in the message)
    ("malformed json", b'{"PULocationID": 10,', "application/json", 400, None, None, "malformed JSON"),
    ("not utf-8", b'\xff\xfe{"a"', "application/json", 400, None, None, "malformed JSON"),
    ("form content type", b"PULocationID=10", "application/x-www-form-urlencoded", 415, None, None, "application/json"),
    ("no content type", b"{}", None, 415, None, None, "Content-Type"),
    ("a string body", b'"ride"', "application/json", 422, None, None, "got a JSON string"),
    ("a number body", b"42", "application/json", 422, None, None, "got a JSON number"),
    ("null body", b"null", "application/json", 422, None, None, "got a JSON null"),
    ("empty list", b"[]", "application/json", 422, None, None, "empty list"),
    (
        "missing field",
        b'{"PULocationID": 10, "DOLocationID": 3}',
        "application/json",
        422,
        "trip_distance",
        None,
        "missing field 'trip_distance'",
    ),
    (
        "zone as string",
        b'{"PULocationID": "10", "DOLocationID": 3, "trip_distance": 1}',
        "application/json",
        422,
        "PULocationID",
        None,
        "integer zone ID",
    ),
    (
        "zone as float",
        b'{"PULocationID": 10.0, "DOLocationID": 3, "trip_distance": 1}',
        "application/json",
        422,
        "PULocationID",
        None,
        "integer zone ID",
    ),
    (
        "zone as bool",
        b'{"PULocationID": 10, "DOLocationID": true, "trip_distance": 1}',
        "application/json",
        422,
        "DOLocationID",
        None,
        "got a JSON boolean",
    ),
    (
        "zone 0",
        b'{"PULocationID": 0, "DOLocationID": 3, "trip_distance": 1}',
        "application/json",
        422,
        "PULocationID",
        None,
        "1-265, got 0",
    ),
    (
        "zone 266",
        b'{"PULocationID": 10, "DOLocationID": 266, "trip_distance": 1}',
        "application/json",
        422,
        "DOLocationID",
        None,
        "1-265, got 266",
    ),
    (
        "distance as string",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": "4"}',
        "application/json",
        422,
        "trip_distance",
        None,
        "number of miles",
    ),
    (
        "distance as bool",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": false}',
        "application/json",
        422,
        "trip_distance",
        None,
        "got a JSON boolean",
    ),
    (
        "distance null",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": null}',
        "application/json",
        422,
        "trip_distance",
        None,
        "got a JSON null",
    ),
    (
        "negative distance",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": -1.5}',
        "application/json",
        422,
        "trip_distance",
        None,
        ">= 0",
    ),
    (
        "NaN distance",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": NaN}',
        "application/json",
        422,
        "trip_distance",
        None,
        "finite",
    ),
    (
        "infinite distance",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": 1e400}',
        "application/json",
        422,
        "trip_distance",
        None,
        "finite",
    ),
    (
        "huge integer distance",
        b'{"PULocationID": 10, "DOLocationID": 3, "trip_distance": 1' + b"0" * 400 + b"}",
        "application/json",
        422,
        "trip_distance",
        None,
        "finite",
    ),
    (
        "bad ride in a batch",
        b'[{"PULocationID": 10, "DOLocationID": 3, "trip_distance": 1}, {"PULocationID": 10, "trip_distance": 1}]',
        "application/json",
        422,
        "DOLocationID",
        1,
        "missing field",
    ),
    (
        "non-object in a batch",
        b'[{"PULocationID": 10, "DOLocationID": 3, "trip_distance": 1}, 5]',
        "application/json",
        422,
        None,
        1,
        "must be a JSON object",
    ),
    (
        "batch over max_batch",
        b"[" + b",".join([b'{"PULocationID": 1, "DOLocationID": 1, "trip_distance": 1}'] * 6) + b"]",
        "application/json",
        413,
        None,
        None,
        "at most 5",
    ),
]


# --- The files a chapter writes ------------------------------------------------------------------


def written_file(chapter: str, filename: str) -> str:
    """The body of the ``%%writefile .../<filename>`` cell of chapter ``chapter`` (e.g. ``"07"``).

    Raises:
        LookupError: the chapter has no such cell.
    """
    import nbformat

    from helpers.course.runner import find_chapters, notebooks_dir

    path = find_chapters(notebooks_dir(), [chapter])[0]
    for cell in nbformat.read(path, as_version=4).cells:
        first, _, body = cell.source.partition("\n")
        if cell.cell_type == "code" and first.startswith("%%writefile") and first.endswith(f"/{filename}"):
            return body
    raise LookupError(f"{path.name} has no `%%writefile .../{filename}` cell")


def write_chapter_file(chapter: str, filename: str, folder: Path) -> Path:
    """Write the chapter's ``filename`` into ``folder`` as the notebook does, and return its path."""
    path = folder / filename
    path.write_text(written_file(chapter, filename) + "\n")
    return path


# --- A scripted TLC site, and a mirror of the real one ------------------------------------------


@dataclass
class Reply:
    """One scripted answer; ``length`` larger than ``body`` simulates a connection cut mid-file."""

    status: int = 200
    body: bytes = b""
    length: int | None = None
    content_type: str | None = None


@dataclass
class FakeTLC:
    """Routes map a path to the replies given in turn (the last one repeats); any other path gets
    ``default``; ``hits`` counts requests."""

    url: str
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    default: list[Reply] = field(default_factory=lambda: [Reply(404, b"not found")])
    hits: dict[str, int] = field(default_factory=dict)


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

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
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


# --- The package's imports -----------------------------------------------------------------------

HELPERS = Path(__file__).resolve().parents[1] / "helpers"


def helpers_modules() -> dict[str, Path]:
    """Every module of ``helpers``, by its dotted name below the package (``"serve.batch"``)."""
    modules = {}
    for path in sorted(HELPERS.rglob("*.py")):
        parts = path.relative_to(HELPERS).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_modules(source: str, modules: Iterable[str], *, at_import: bool = False) -> set[str]:
    """The ``helpers`` modules that ``source`` imports, at its top or inside a function (``at_import``:
    only those its top level imports, which importing it runs).

    ``from helpers.serve import batch`` names the module ``serve.batch``; ``from helpers.serve.batch
    import run`` names it too, by the module a name comes from.
    """
    known = set(modules)
    found = set()
    tree = ast.parse(source)
    for node in tree.body if at_import else ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("helpers.") for alias in node.names if alias.name.startswith("helpers.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("helpers"):
            package = node.module.removeprefix("helpers").removeprefix(".")
            for alias in node.names:
                submodule = f"{package}.{alias.name}".lstrip(".")
                found.add(submodule if submodule in known else package)
    return found & known


def import_graph(*, at_import: bool = False) -> dict[str, set[str]]:
    """Each ``helpers`` module and the ``helpers`` modules it imports (itself and ``__init__`` left out);
    ``at_import``: only the imports its top level runs."""
    modules = helpers_modules()
    return {
        name: imported_modules(path.read_text(), modules, at_import=at_import) - {name, ""}
        for name, path in modules.items()
    }


# --- The committed outputs, compared as nbval compares them -------------------------------------

SANITIZE_CONFIG = Path(__file__).resolve().parent / "nbval_sanitize.cfg"
# What nbval leaves out of a comparison (bookkeeping, tracebacks, widget ids, images), and stderr:
# warnings and log lines that depend on the machine (a default port taken by a parallel test, a
# slow start), not on the chapter; what a cell prints and returns is compared.
_NOT_COMPARED = {
    "stderr",
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}


def checked_cells(notebook) -> list[int]:
    """The code cells whose outputs nbval's lax mode compares: tagged ``nbval-check-output``
    (or marked with nbval's comment, which the course keeps out of a learner's cells), and not skipped."""
    from nbval.plugin import find_comment_markers, find_metadata_tags

    checked = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        options = {**dict(find_metadata_tags(cell.metadata)), **dict(find_comment_markers(cell.source))}
        if options.get("check") and not options.get("skip"):
            checked.append(index)
    return checked


def compared_outputs(outputs, patterns: list[tuple[str, str]]) -> dict[str, list]:
    """A cell's outputs as nbval compares them: stdout merged into one (how the kernel cut it into
    messages is chance), a result by its MIME types, in order, with the volatile parts replaced by
    the sanitizer's patterns; stderr is left out (see ``_NOT_COMPARED``)."""
    from nbval.plugin import coalesce_streams, transform_streams_for_comparison

    def sanitized(value):
        if isinstance(value, str):
            for regex, replace in patterns:
                value = re.sub(regex, replace, value)
        return value

    fields: dict[str, list] = {}
    for output in transform_streams_for_comparison(coalesce_streams(copy.deepcopy(outputs))):
        for key, value in output.items():
            if key in _NOT_COMPARED:
                continue
            items = value.items() if key == "data" else [(key, value)]
            for name, item in items:
                if name not in _NOT_COMPARED:
                    fields.setdefault(name, []).append(sanitized(item))
    return fields


def output_differences(committed: Path, executed: Path) -> list[str]:
    """Where an executed copy of a notebook disagrees with its committed form, in the cells nbval
    compares: one line per cell, empty when they agree."""
    import nbformat
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns(SANITIZE_CONFIG.read_text())
    want, got = nbformat.read(committed, as_version=4), nbformat.read(executed, as_version=4)
    if [cell.source for cell in want.cells] != [cell.source for cell in got.cells]:
        return [f"{executed.name} is not an executed copy of {committed.name}: their cells differ"]
    differences = []
    for index in checked_cells(want):
        expected, actual = (compared_outputs(nb.cells[index].outputs, patterns) for nb in (want, got))
        if expected != actual:
            differences.append(f"{committed.name} cell {index}: committed {expected!r}, this run {actual!r}")
    return differences
