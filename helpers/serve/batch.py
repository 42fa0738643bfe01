"""Batch (offline) scoring: predict the duration of every ride in a month and save it as parquet.

Run it as ``python -m helpers.serve.batch --color green --year 2021 --month 1``; ``--help`` says more.
``--months 2021-01..2021-12 --engine spark`` scores a year in one Spark job (``helpers.serve.batch_spark``),
with the same model, into the same files: both engines write exactly :func:`helpers.serve.predictions.output_schema`.

Which rides are scored: **all of them**. The course's ``score.py`` and homework keep only rides of
1-60 minutes before predicting, but a model in production cannot filter on the duration it is
asked to predict, so here every ride gets a prediction and ``actual_duration`` (and ``diff``) is
informative only. ``ride_id`` is ``YYYY/MM_<row>``, the ride's row number in its month's file (Spark
reads it as ``_metadata.row_index``), so both engines give a ride the same id, and
``result[duration_mask(result.actual_duration)]`` is exactly the course's rows, with the course's
ride ids and predictions.
"""

from __future__ import annotations

import argparse
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

from helpers.core import config, data
from helpers.core.features import RIDE_FIELDS, add_duration
from helpers.core.tlc import COLORS, DROPOFF_COLUMN, PICKUP_COLUMN, month_range
from helpers.ml import models
from helpers.serve.predictions import (
    InputSchemaError,
    ModelLoadError,
    fetch_inputs,
    input_columns,
    load_model,
    output_columns,
    output_path,
    output_schema,
    ride_id_prefix,
)

logger = logging.getLogger(__name__)

CHUNK_ROWS = 250_000
_STRING = pd.StringDtype("pyarrow")  # a few bytes a row instead of a Python object per ride id
ENGINES = ("pandas", "spark")


def _file_month(pickup: pd.Series) -> tuple[int, int]:
    # A TLC month file holds a few rides from other months; its own month is by far the commonest.
    periods = pickup.dt.to_period("M").value_counts()
    return periods.index[0].year, periods.index[0].month


def _ride_ids(index: pd.Index, year: int, month: int) -> pd.Series:
    # The prefix and the row number as the course builds it, in Arrow rather than Python strings.
    numbers = pc.cast(pa.array(np.asarray(index)), pa.string())
    ids = pc.binary_join_element_wise(ride_id_prefix(year, month), numbers, "")
    return pd.Series(pd.arrays.ArrowStringArray(ids), index=index, name="ride_id")


def score_month(
    model: models.LoadedModel,
    df: pd.DataFrame,
    color: str,
    *,
    year: int | None = None,
    month: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict the duration of every ride of a raw TLC month (see the module docstring for which).

    Args:
        model: From :func:`helpers.ml.models.load`.
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
    with tqdm(total=len(df), unit="rides", desc=f"scoring {color} {year:04d}-{month:02d}", disable=not progress) as bar:
        for start in range(0, len(df), chunk_rows):
            chunk = df.iloc[start : start + chunk_rows]
            predicted[start : start + len(chunk)] = model.predict(chunk[RIDE_FIELDS])
            bar.update(len(chunk))
    actual = add_duration(df[[pickup_column, DROPOFF_COLUMN[color]]])["duration"].to_numpy()
    result = pd.DataFrame(
        {
            "ride_id": _ride_ids(df.index, year, month),
            pickup_column: df[pickup_column],
            "PULocationID": df["PULocationID"],
            "DOLocationID": df["DOLocationID"],
            "actual_duration": actual,
            "predicted_duration": predicted,
            "diff": actual - predicted,
            "model_version": pd.Series(model.version, index=df.index, dtype=_STRING),
        },
        index=df.index,
    )
    return result[output_columns(color)]


def write_atomically(df: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> Path:
    """Write ``df`` (with ``schema``, when given) to ``path`` through a temporary file in the same
    folder, then rename it.

    A failed write leaves neither a partial ``path`` nor the temporary file, and a previous
    ``path`` stays as it was until the new one is complete. The temporary name starts with a dot,
    which dataset readers skip, so even a killed process does not corrupt the partitioned dataset.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False) as tmp:
        part = Path(tmp.name)
    try:
        table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
        # Without pandas' metadata, as Spark writes it: pandas then reads both engines' files alike.
        pq.write_table(table.replace_schema_metadata(None), part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def run(
    color: str,
    year: int,
    month: int,
    model_uri: str = models.DEFAULT_MODEL_URI,
    output_dir: Path | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Score one month with pandas: load the model, fetch the month, score it, write its predictions file.

    Args:
        color, year, month: Which TLC month.
        model_uri: Anything :func:`helpers.ml.models.load` accepts.
        output_dir: Base of the partitioned predictions; default ``<build dir>/predictions``.
        progress: Show a tqdm bar while scoring.

    Returns:
        The predictions file written (see :func:`output_path`).

    Raises:
        ModelLoadError: the model could not be loaded (checked before any data is fetched).
        helpers.core.data.DownloadError: the month could not be downloaded.
        InputSchemaError: the month's file has the wrong schema.
    """
    return run_months(color, [(year, month)], model_uri, output_dir, progress=progress)[0]


def run_months(
    color: str,
    months: Sequence[tuple[int, int]],
    model_uri: str = models.DEFAULT_MODEL_URI,
    output_dir: Path | None = None,
    *,
    engine: str = "pandas",
    master: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Score several months in one job, one predictions file each, with pandas or Spark.

    Args:
        color: ``"green"`` or ``"yellow"``.
        months: ``(year, month)`` pairs, e.g. from :func:`month_range`.
        model_uri: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<id>/model`` or
            a pickled pipeline file.
        output_dir: Base of the partitioned predictions; default ``<build dir>/predictions``.
        engine: ``"pandas"`` (one process, a month at a time) or ``"spark"`` (see ``helpers.serve.batch_spark``).
        master: Spark's master URL (Spark only); default ``local[*]``, or what spark-submit was given.
        progress: Show a tqdm bar while scoring (pandas only; Spark has its UI).

    Returns:
        The predictions files written, in the order of ``months``.

    Raises:
        ModelLoadError: the model could not be loaded (checked before any data is fetched).
        helpers.core.data.DownloadError: a month could not be downloaded.
        InputSchemaError: a month's file has the wrong schema.
        helpers.servers.spark_session.SparkUnavailable: engine ``"spark"`` without pyspark or Java.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    base = Path(output_dir) if output_dir is not None else config.build_dir() / "predictions"
    if engine == "spark":
        from helpers.serve import (
            batch_spark,  # pyspark only when asked for: .venv-mage has none
        )

        return batch_spark.run_months(color, months, model_uri, base, master=master)
    model = load_model(model_uri)
    paths = []
    for month_data in fetch_inputs(color, months):
        df = pd.read_parquet(month_data.path, columns=input_columns(color))
        scored = score_month(model, df, color, year=month_data.year, month=month_data.month, progress=progress)
        path = write_atomically(
            scored, output_path(base, color, month_data.year, month_data.month), output_schema(color)
        )
        logger.info("wrote %d predictions of model %s to %s", len(scored), model.version, path)
        paths.append(path)
    return paths


# --- The command line -------------------------------------------------------------------------


def _month(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"month must be a number 1-12, got {text!r}") from None
    if not 1 <= value <= 12:
        raise argparse.ArgumentTypeError(f"month must be 1-12, got {value}")
    return value


def _months(text: str) -> list[tuple[int, int]]:
    try:
        return month_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.serve.batch",
        description="Predict the trip duration of every ride of NYC TLC months and write them to "
        "<output-dir>/taxi_type=<color>/year=<YYYY>/month=<MM>/predictions.parquet. "
        "Uses the real TLC files, or their offline twin when WORKBOOK_OFFLINE=1 or offline.",
        epilog="examples: python -m helpers.serve.batch --color green --year 2021 --month 1 "
        "--model-uri models/pipeline.bin; "
        "python -m helpers.serve.batch --color yellow --months 2021-01..2021-12 --engine spark. "
        "On a cluster: spark-submit --master <URL> --py-files helpers.zip helpers/serve/batch.py ... "
        "--engine spark, with MLFLOW_TRACKING_URI pointing at the tracking server.",
    )
    parser.add_argument("--color", required=True, choices=COLORS, help="taxi type")
    parser.add_argument("--year", type=int, help="year of the month to score, e.g. 2021")
    parser.add_argument("--month", type=_month, help="month to score, 1-12")
    parser.add_argument(
        "--months",
        type=_months,
        help="months to score instead of --year/--month: 2021-03, 2021-01..2021-12 or a comma list",
    )
    default_uri = config.model_uri()
    parser.add_argument(
        "--model-uri",
        default=default_uri,
        help="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model or a "
        f"pickled pipeline file (default: $MODEL_URI, else {models.DEFAULT_MODEL_URI}; "
        f"now {default_uri})",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="base folder of the predictions (default: <build dir>/predictions, build dir from WORKBOOK_BUILD_DIR)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="pandas",
        help="pandas: one process, a month at a time (default); spark: one Spark job for all "
        "the months (needs pyspark and Java, which `make setup` installs)",
    )
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master URL, e.g. spark://host:7077 (default: local[*], one JVM using "
        "every core, or the master spark-submit was given)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (argparse exits with 2 on bad arguments)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.months is None and (args.year is None or args.month is None):
        parser.error("give --year and --month, or --months")
    if args.months is not None and (args.year is not None or args.month is not None):
        parser.error("give either --year and --month, or --months, not both")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from helpers.servers.spark_session import (
        SparkUnavailable,  # light: pyspark itself is imported only to start it
    )

    months = args.months or [(args.year, args.month)]
    try:
        paths = run_months(args.color, months, args.model_uri, args.output_dir, engine=args.engine, master=args.master)
    except ModelLoadError as exc:
        print(
            f"error: {exc}\nTrain and register a model first (chapters 02-04), or pass --model-uri "
            "with a pickled pipeline file.",
            file=sys.stderr,
        )
        return 1
    except (data.DownloadError, InputSchemaError, SparkUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
