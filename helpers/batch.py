"""Batch (offline) scoring: predict the duration of every ride in a month and save it as parquet.

Run it as ``python -m helpers.batch --color green --year 2021 --month 1``; ``--help`` says more.

Which rides are scored: **all of them**. The course's ``score.py`` and homework keep only rides of
1-60 minutes before predicting, but a model in production cannot filter on the duration it is
asked to predict, so here every ride gets a prediction and ``actual_duration`` (and ``diff``) is
informative only. ``ride_id`` comes from the row's position in the month's file, so
``result[duration_mask(result.actual_duration)]`` is exactly the course's rows, with the course's
ride ids and predictions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from helpers import config, data, models
from helpers.features import RIDE_FIELDS, add_duration
from helpers.tlc import COLORS, DROPOFF_COLUMN, PICKUP_COLUMN

logger = logging.getLogger(__name__)

CHUNK_ROWS = 250_000
_STRING = pd.StringDtype("pyarrow")  # a few bytes a row instead of a Python object per ride id


class ModelLoadError(RuntimeError):
    """The model URI could not be loaded; nothing was read or written."""


def output_columns(color: str) -> list[str]:
    """The columns of a predictions file, in order."""
    return ["ride_id", PICKUP_COLUMN[color], "PULocationID", "DOLocationID",
            "actual_duration", "predicted_duration", "diff", "model_version"]


def _file_month(pickup: pd.Series) -> tuple[int, int]:
    # A TLC month file holds a few rides from other months; its own month is by far the commonest.
    periods = pickup.dt.to_period("M").value_counts()
    return periods.index[0].year, periods.index[0].month


def _ride_ids(index: pd.Index, year: int, month: int) -> pd.Series:
    # f"{year:04d}/{month:02d}_{index}" as the course builds it, in Arrow rather than Python strings.
    numbers = pc.cast(pa.array(np.asarray(index)), pa.string())
    ids = pc.binary_join_element_wise(f"{year:04d}/{month:02d}_", numbers, "")
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


def write_atomically(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` to ``path`` through a temporary file in the same folder, then rename it.

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
        df.to_parquet(part, index=False)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def run(color: str, year: int, month: int, model_uri: str = models.DEFAULT_MODEL_URI,
        output_dir: Path | None = None, *, progress: bool = True) -> Path:
    """Score one month: load the model, fetch the month, score it, write its predictions file.

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
    """
    try:
        model = models.load(model_uri)
    except Exception as exc:  # a file, a run or a registry: each fails in its own way
        raise ModelLoadError(f"cannot load the model {model_uri!r}: {exc}") from exc
    month_data = data.fetch_month(color, year, month)
    logger.info(month_data.message)
    columns = [PICKUP_COLUMN[color], DROPOFF_COLUMN[color], *RIDE_FIELDS]
    df = pd.read_parquet(month_data.path, columns=columns)
    scored = score_month(model, df, color, year=year, month=month, progress=progress)
    base = Path(output_dir) if output_dir is not None else config.build_dir() / "predictions"
    path = write_atomically(scored, output_path(base, color, year, month))
    logger.info("wrote %d predictions of model %s to %s", len(scored), model.version, path)
    return path


def _month(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"month must be a number 1-12, got {text!r}") from None
    if not 1 <= value <= 12:
        raise argparse.ArgumentTypeError(f"month must be 1-12, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.batch",
        description="Predict the trip duration of every ride of one NYC TLC month and write them to "
                    "<output-dir>/taxi_type=<color>/year=<YYYY>/month=<MM>/predictions.parquet. "
                    "Uses the real TLC file, or its offline twin when WORKBOOK_OFFLINE=1 or offline.",
        epilog="example: python -m helpers.batch --color green --year 2021 --month 1 "
               "--model-uri models/lin_reg.bin",
    )
    parser.add_argument("--color", required=True, choices=COLORS, help="taxi type")
    parser.add_argument("--year", required=True, type=int, help="year of the month to score, e.g. 2021")
    parser.add_argument("--month", required=True, type=_month, help="month to score, 1-12")
    default_uri = os.environ.get("MODEL_URI", models.DEFAULT_MODEL_URI)
    parser.add_argument("--model-uri", default=default_uri,
                        help="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model or a "
                             f"pickled pipeline file (default: $MODEL_URI, else {models.DEFAULT_MODEL_URI}; "
                             f"now {default_uri})")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="base folder of the predictions (default: <build dir>/predictions, "
                             "build dir from WORKBOOK_BUILD_DIR)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (argparse exits with 2 on bad arguments)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = run(args.color, args.year, args.month, args.model_uri, args.output_dir)
    except ModelLoadError as exc:
        print(f"error: {exc}\nTrain and register a model first (chapters 02-04), or pass --model-uri "
              "with a pickled pipeline file.", file=sys.stderr)
        return 1
    except data.DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
