"""The batch job's contract, whichever engine runs it: which rides go in, which columns come out, where.

Both engines (:mod:`helpers.serve.batch` on pandas, :mod:`helpers.serve.batch_spark` on Spark) read
the columns :func:`input_columns` names from a TLC month checked by :func:`check_input`, and write
exactly :func:`output_schema` to :func:`output_path`. ``ride_id`` is ``YYYY/MM_<row>``
(:func:`ride_id_prefix` and the ride's row number in its month's file), so both give a ride the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.core import data
from helpers.core.features import RIDE_FIELDS
from helpers.core.tlc import DROPOFF_COLUMN, PICKUP_COLUMN
from helpers.ml import models

logger = logging.getLogger(__name__)

# What check_input accepts for each column the job reads: any width of integer, timestamps of any unit.
_INPUT_KINDS = {
    "pickup": (pa.types.is_timestamp, "a timestamp"),
    "dropoff": (pa.types.is_timestamp, "a timestamp"),
    "PULocationID": (pa.types.is_integer, "an integer"),
    "DOLocationID": (pa.types.is_integer, "an integer"),
    "trip_distance": (pa.types.is_floating, "a float"),
}


class ModelLoadError(RuntimeError):
    """The model URI could not be loaded; nothing was read or written."""


class InputSchemaError(ValueError):
    """A month's file lacks a column the job reads, or has it with the wrong type; nothing was written."""


def output_columns(color: str) -> list[str]:
    """The columns of a predictions file, in order."""
    return output_schema(color).names


def output_schema(color: str) -> pa.Schema:
    """The Arrow schema of a predictions file, the same whichever engine wrote it."""
    return pa.schema(
        [
            pa.field("ride_id", pa.string(), nullable=False),
            (PICKUP_COLUMN[color], pa.timestamp("us")),
            ("PULocationID", pa.int64()),
            ("DOLocationID", pa.int64()),
            ("actual_duration", pa.float64()),
            ("predicted_duration", pa.float64()),
            ("diff", pa.float64()),
            pa.field("model_version", pa.string(), nullable=False),
        ]
    )


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
        raise InputSchemaError(
            f"{path} is not a {color} TLC trip file: {'; '.join(problems)}. Delete it to "
            "fetch the month again, or check that it is the right file"
        )


def fetch_inputs(color: str, months: Sequence[tuple[int, int]]) -> list[data.MonthData]:
    """Fetch every month of a job (cache, download or twin) and check each file, before any scoring.

    Raises:
        helpers.core.data.DownloadError: a month could not be downloaded (e.g. not published yet).
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


def output_path(base: Path, color: str, year: int, month: int) -> Path:
    """``base/taxi_type=<color>/year=YYYY/month=MM/predictions.parquet``, which
    ``pd.read_parquet(base)`` reads as one dataset with taxi_type, year and month columns."""
    return Path(base) / f"taxi_type={color}" / f"year={year:04d}" / f"month={month:02d}" / "predictions.parquet"


def load_model(model_uri: str) -> models.LoadedModel:
    """:func:`helpers.ml.models.load`, its failures as one error.

    Raises:
        ModelLoadError: the model could not be loaded.
    """
    try:
        return models.load(model_uri)
    except Exception as exc:  # a file, a run or a registry: each fails in its own way
        raise ModelLoadError(f"cannot load the model {model_uri!r}: {exc}") from exc
