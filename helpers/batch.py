"""Batch (offline) scoring: predict the duration of every ride in a month and save it as parquet.

Run it as ``python -m helpers.batch --color green --year 2021 --month 1``; ``--help`` says more.
``--months 2021-01..2021-12 --engine spark`` scores a year in one Spark job (``helpers.batch_spark``),
with the same model, into the same files: both engines write exactly :func:`output_schema`.

Which rides are scored: **all of them**. The course's ``score.py`` and homework keep only rides of
1-60 minutes before predicting, but a model in production cannot filter on the duration it is
asked to predict, so here every ride gets a prediction and ``actual_duration`` (and ``diff``) is
informative only. ``ride_id`` is ``YYYY/MM_<row>``, the ride's row number in its month's file (Spark
reads it as ``_metadata.row_index``), so both engines give a ride the same id, and
``result[duration_mask(result.actual_duration)]`` is exactly the course's rows, with the course's
ride ids and predictions.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from helpers import config, data, models
from helpers.features import RIDE_FIELDS, add_duration
from helpers.tlc import DROPOFF_COLUMN, PICKUP_COLUMN, parse_month

logger = logging.getLogger(__name__)

CHUNK_ROWS = 250_000
_STRING = pd.StringDtype("pyarrow")  # a few bytes a row instead of a Python object per ride id
ENGINES = ("pandas", "spark")
# What check_input accepts for each column the job reads: any width of integer, timestamps of any unit.
_INPUT_KINDS = {"pickup": (pa.types.is_timestamp, "a timestamp"), "dropoff": (pa.types.is_timestamp, "a timestamp"),
                "PULocationID": (pa.types.is_integer, "an integer"), "DOLocationID": (pa.types.is_integer, "an integer"),
                "trip_distance": (pa.types.is_floating, "a float")}


class ModelLoadError(RuntimeError):
    """The model URI could not be loaded; nothing was read or written."""


class InputSchemaError(ValueError):
    """A month's file lacks a column the job reads, or has it with the wrong type; nothing was written."""


def output_columns(color: str) -> list[str]:
    """The columns of a predictions file, in order."""
    return output_schema(color).names


def output_schema(color: str) -> pa.Schema:
    """The Arrow schema of a predictions file, the same whichever engine wrote it."""
    return pa.schema([pa.field("ride_id", pa.string(), nullable=False), (PICKUP_COLUMN[color], pa.timestamp("us")),
                      ("PULocationID", pa.int64()), ("DOLocationID", pa.int64()),
                      ("actual_duration", pa.float64()), ("predicted_duration", pa.float64()),
                      ("diff", pa.float64()), pa.field("model_version", pa.string(), nullable=False)])


def input_columns(color: str) -> list[str]:
    """The columns the job reads from a TLC month."""
    return [PICKUP_COLUMN[color], DROPOFF_COLUMN[color], *RIDE_FIELDS]


def check_input(path: Path, color: str) -> None:
    """Check that ``path`` is a parquet file with the columns the job reads, of usable types.

    Raises:
        InputSchemaError: not parquet, a column missing, or a column of another type (saying which).
    """
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputSchemaError(f"{path} is not a parquet file ({exc}); delete it to fetch the month again") from exc
    problems = []
    for name, (is_kind, kind) in _INPUT_KINDS.items():
        name = {"pickup": PICKUP_COLUMN[color], "dropoff": DROPOFF_COLUMN[color]}.get(name, name)
        if name not in schema.names:
            problems.append(f"{name} is missing")
        elif not is_kind(schema.field(name).type):
            problems.append(f"{name} is {schema.field(name).type}, expected {kind}")
    if problems:
        raise InputSchemaError(f"{path} is not a {color} TLC trip file: {'; '.join(problems)}. Delete it to "
                               "fetch the month again, or check that it is the right file")


def fetch_inputs(color: str, months: Sequence[tuple[int, int]]) -> list[data.MonthData]:
    """Fetch every month of a job (cache, download or twin) and check each file, before any scoring.

    Raises:
        helpers.data.DownloadError: a month could not be downloaded (e.g. not published yet).
        InputSchemaError: a month's file has the wrong schema.
    """
    inputs = []
    for year, month in months:
        month_data = data.fetch_month(color, year, month)
        logger.info(month_data.message)
        check_input(month_data.path, color)
        inputs.append(month_data)
    return inputs


def ride_id_prefix(year: int, month: int) -> str:
    """``"2021/01_"``: a ride's id is this followed by its row number in the month's file."""
    return f"{year:04d}/{month:02d}_"


def _file_month(pickup: pd.Series) -> tuple[int, int]:
    # A TLC month file holds a few rides from other months; its own month is by far the commonest.
    periods = pickup.dt.to_period("M").value_counts()
    return periods.index[0].year, periods.index[0].month


def _ride_ids(index: pd.Index, year: int, month: int) -> pd.Series:
    # The prefix and the row number as the course builds it, in Arrow rather than Python strings.
    numbers = pc.cast(pa.array(np.asarray(index)), pa.string())
    ids = pc.binary_join_element_wise(ride_id_prefix(year, month), numbers, "")
    return pd.Series(pd.arrays.ArrowStringArray(ids), index=index, name="ride_id")


def score_month(model: models.LoadedModel, df: pd.DataFrame, color: str, *, year: int | None = None,
                month: int | None = None, chunk_rows: int = CHUNK_ROWS, progress: bool = True) -> pd.DataFrame:
    """Predict the duration of every ride of a raw TLC month (see the module docstring for which).

    Args:
        model: From :func:`helpers.models.load`.
        df: A raw TLC month as read from its parquet file (index = row number in the file).
        color: ``"green"`` or ``"yellow"``; says which pickup column to keep.
        year, month: The file's month, for ``ride_id``; default the month most pickups fall in.
        chunk_rows: Rides per ``predict`` call, which bounds the memory the features take.
        progress: Show a tqdm bar.

    Returns:
        One row per ride: ride_id, the pickup time, PULocationID, DOLocationID, actual_duration,
        predicted_duration, diff (actual - predicted) and model_version, in that order.
    """
    pickup_column = PICKUP_COLUMN[color]
    if year is None or month is None:
        year, month = _file_month(df[pickup_column])
    predicted = np.empty(len(df))
    with tqdm(total=len(df), unit="rides", desc=f"scoring {color} {year:04d}-{month:02d}",
              disable=not progress) as bar:
        for start in range(0, len(df), chunk_rows):
            chunk = df.iloc[start:start + chunk_rows]
            predicted[start:start + len(chunk)] = model.predict(chunk[RIDE_FIELDS])
            bar.update(len(chunk))
    actual = add_duration(df[[pickup_column, DROPOFF_COLUMN[color]]])["duration"].to_numpy()
    result = pd.DataFrame({
        "ride_id": _ride_ids(df.index, year, month),
        pickup_column: df[pickup_column],
        "PULocationID": df["PULocationID"],
        "DOLocationID": df["DOLocationID"],
        "actual_duration": actual,
        "predicted_duration": predicted,
        "diff": actual - predicted,
        "model_version": pd.Series(model.version, index=df.index, dtype=_STRING),
    }, index=df.index)
    return result[output_columns(color)]


def output_path(base: Path, color: str, year: int, month: int) -> Path:
    """``base/taxi_type=<color>/year=YYYY/month=MM/predictions.parquet``, which
    ``pd.read_parquet(base)`` reads as one dataset with taxi_type, year and month columns."""
    return Path(base) / f"taxi_type={color}" / f"year={year:04d}" / f"month={month:02d}" / "predictions.parquet"


def write_atomically(df: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> Path:
    """Write ``df`` (with ``schema``, when given) to ``path`` through a temporary file in the same
    folder, then rename it.

    A failed write leaves neither a partial ``path`` nor the temporary file, and a previous
    ``path`` stays as it was until the new one is complete. The temporary name starts with a dot,
    which dataset readers skip, so even a killed process does not corrupt the partitioned dataset.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part",
                                     delete=False) as tmp:
        part = Path(tmp.name)
    try:
        table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
        # Without pandas' metadata, as Spark writes it: pandas then reads both engines' files alike.
        pq.write_table(table.replace_schema_metadata(None), part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def load_model(model_uri: str) -> models.LoadedModel:
    """:func:`helpers.models.load`, its failures as one error.

    Raises:
        ModelLoadError: the model could not be loaded.
    """
    try:
        return models.load(model_uri)
    except Exception as exc:  # a file, a run or a registry: each fails in its own way
        raise ModelLoadError(f"cannot load the model {model_uri!r}: {exc}") from exc


def run(color: str, year: int, month: int, model_uri: str = models.DEFAULT_MODEL_URI,
        output_dir: Path | None = None, *, progress: bool = True) -> Path:
    """Score one month with pandas: load the model, fetch the month, score it, write its predictions file.

    Args:
        color, year, month: Which TLC month.
        model_uri: Anything :func:`helpers.models.load` accepts.
        output_dir: Base of the partitioned predictions; default ``<build dir>/predictions``.
        progress: Show a tqdm bar while scoring.

    Returns:
        The predictions file written (see :func:`output_path`).

    Raises:
        ModelLoadError: the model could not be loaded (checked before any data is fetched).
        helpers.data.DownloadError: the month could not be downloaded.
        InputSchemaError: the month's file has the wrong schema.
    """
    return run_months(color, [(year, month)], model_uri, output_dir, progress=progress)[0]


def run_months(color: str, months: Sequence[tuple[int, int]], model_uri: str = models.DEFAULT_MODEL_URI,
               output_dir: Path | None = None, *, engine: str = "pandas", master: str | None = None,
               progress: bool = True) -> list[Path]:
    """Score several months in one job, one predictions file each, with pandas or Spark.

    Args:
        color: ``"green"`` or ``"yellow"``.
        months: ``(year, month)`` pairs, e.g. from :func:`month_range`.
        model_uri: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<id>/model`` or
            a pickled pipeline file.
        output_dir: Base of the partitioned predictions; default ``<build dir>/predictions``.
        engine: ``"pandas"`` (one process, a month at a time) or ``"spark"`` (see ``helpers.batch_spark``).
        master: Spark's master URL (Spark only); default ``local[*]``, or what spark-submit was given.
        progress: Show a tqdm bar while scoring (pandas only; Spark has its UI).

    Returns:
        The predictions files written, in the order of ``months``.

    Raises:
        ModelLoadError: the model could not be loaded (checked before any data is fetched).
        helpers.data.DownloadError: a month could not be downloaded.
        InputSchemaError: a month's file has the wrong schema.
        helpers.spark_session.SparkUnavailable: engine ``"spark"`` without pyspark or Java.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    base = Path(output_dir) if output_dir is not None else config.build_dir() / "predictions"
    if engine == "spark":
        from helpers import batch_spark  # pyspark only when asked for: .venv-mage has none

        return batch_spark.run_months(color, months, model_uri, base, master=master)
    model = load_model(model_uri)
    paths = []
    for month_data in fetch_inputs(color, months):
        df = pd.read_parquet(month_data.path, columns=input_columns(color))
        scored = score_month(model, df, color, year=month_data.year, month=month_data.month, progress=progress)
        path = write_atomically(scored, output_path(base, color, month_data.year, month_data.month),
                                output_schema(color))
        logger.info("wrote %d predictions of model %s to %s", len(scored), model.version, path)
        paths.append(path)
    return paths


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


if __name__ == "__main__":
    from helpers.batch_cli import main

    sys.exit(main())
