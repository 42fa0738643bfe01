"""Batch scoring speed on a yellow-sized month (~3M rides of the offline twin), in rides per minute.

Times the end-to-end job (read parquet -> score -> write parquet) and the scoring step alone, with
and the pipeline's own ``predict``.
The target is at least 1M rides a minute on 2 cores.

Run: .venv/bin/python benchmarks/batch_benchmark.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from sklearn.linear_model import LinearRegression

from helpers.core.features import prepare
from helpers.core.twin import make_twin
from helpers.ml import models
from helpers.ml.training import train_pipeline
from helpers.serve import batch

TARGET_PER_MINUTE = 1_000_000


def timed(label: str, rows: int, work):
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    per_minute = rows / seconds * 60
    verdict = "ok" if per_minute >= TARGET_PER_MINUTE else "BELOW TARGET"
    print(f"{label:<46} {seconds:7.2f} s {per_minute / 1e6:8.2f} M rides/min  {verdict}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rides in the month (default: the twin's ~3M)")
    args = parser.parse_args()

    model = models.LoadedModel(
        "benchmark",
        "green-2021-01",
        train_pipeline(LinearRegression(), prepare(make_twin("green", 2021, 1).to_pandas())),
    )
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "yellow_tripdata_2023-01.parquet"
        pq.write_table(make_twin("yellow", 2023, 1, n_rows=args.rows), source)
        columns = ["tpep_pickup_datetime", "tpep_dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance"]
        rows = pq.read_metadata(source).num_rows
        print(f"yellow 2023-01 twin: {rows:,} rides; {os.cpu_count()} CPUs; model trained on green 2021-01")

        def end_to_end():
            df = pd.read_parquet(source, columns=columns)
            scored = batch.score_month(model, df, "yellow", year=2023, month=1, progress=False)
            return batch.write_atomically(scored, batch.output_path(Path(folder) / "out", "yellow", 2023, 1))

        timed("end to end (read -> score -> write)", rows, end_to_end)
        df = pd.read_parquet(source, columns=columns)
        timed("score_month alone", rows, lambda: batch.score_month(model, df, "yellow", progress=False))
        rides = df[["PULocationID", "DOLocationID", "trip_distance"]]
        timed("predict alone (pipeline.predict)", rows, lambda: model.predict(rides))


if __name__ == "__main__":
    main()
