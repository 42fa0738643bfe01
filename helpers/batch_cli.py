"""The command line of the batch job, ``python -m helpers.batch``; ``--help`` says more."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from helpers import data, models
from helpers.batch import ENGINES, InputSchemaError, ModelLoadError, month_range, run_months
from helpers.tlc import COLORS


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
        prog="python -m helpers.batch",
        description="Predict the trip duration of every ride of NYC TLC months and write them to "
                    "<output-dir>/taxi_type=<color>/year=<YYYY>/month=<MM>/predictions.parquet. "
                    "Uses the real TLC files, or their offline twin when WORKBOOK_OFFLINE=1 or offline.",
        epilog="examples: python -m helpers.batch --color green --year 2021 --month 1 --model-uri models/pipeline.bin; "
               "python -m helpers.batch --color yellow --months 2021-01..2021-12 --engine spark. "
               "On a cluster: spark-submit --master <URL> --py-files helpers.zip helpers/batch.py ... "
               "--engine spark, with MLFLOW_TRACKING_URI pointing at the tracking server.",
    )
    parser.add_argument("--color", required=True, choices=COLORS, help="taxi type")
    parser.add_argument("--year", type=int, help="year of the month to score, e.g. 2021")
    parser.add_argument("--month", type=_month, help="month to score, 1-12")
    parser.add_argument("--months", type=_months,
                        help="months to score instead of --year/--month: 2021-03, 2021-01..2021-12 or a comma list")
    default_uri = os.environ.get("MODEL_URI", models.DEFAULT_MODEL_URI)
    parser.add_argument("--model-uri", default=default_uri,
                        help="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model or a "
                             f"pickled pipeline file (default: $MODEL_URI, else {models.DEFAULT_MODEL_URI}; "
                             f"now {default_uri})")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="base folder of the predictions (default: <build dir>/predictions, "
                             "build dir from WORKBOOK_BUILD_DIR)")
    parser.add_argument("--engine", choices=ENGINES, default="pandas",
                        help="pandas: one process, a month at a time (default); spark: one Spark job for all "
                             "the months (needs pyspark and Java, which `make setup` installs)")
    parser.add_argument("--master", default=None,
                        help="Spark master URL, e.g. spark://host:7077 (default: local[*], one JVM using "
                             "every core, or the master spark-submit was given)")
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
    from helpers.spark_session import SparkUnavailable  # light: pyspark itself is imported only to start it

    months = args.months or [(args.year, args.month)]
    try:
        paths = run_months(args.color, months, args.model_uri, args.output_dir, engine=args.engine,
                           master=args.master)
    except ModelLoadError as exc:
        print(f"error: {exc}\nTrain and register a model first (chapters 02-04), or pass --model-uri "
              "with a pickled pipeline file.", file=sys.stderr)
        return 1
    except (data.DownloadError, InputSchemaError, SparkUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in paths))
    return 0

