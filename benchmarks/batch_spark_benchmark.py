"""Batch scoring with pandas and with Spark (local[*]) on 1-12 months: rides per minute and peak memory.

Each case is the command a learner runs, ``python -m helpers.serve.batch --engine E --months ...``, in a
process of its own, from a warm cache (the offline twin, generated first). Its wall time includes
Python's imports and, for Spark, the JVM's start; its peak memory is the RSS of the whole process
tree (Python, the JVM, Spark's Python workers), sampled every 0.1 s. A straight line through each
engine's (rides, seconds) gives its fixed cost and its cost per million rides, from which the table
predicts where Spark overtakes pandas on more cores.

Run: WORKBOOK_OFFLINE=1 .venv/bin/python benchmarks/batch_spark_benchmark.py [--cases green:1,yellow:1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
from sklearn.linear_model import LinearRegression

from helpers.core import config, data
from helpers.core.features import prepare
from helpers.core.twin import make_twin
from helpers.ml.training import save_model, train_pipeline

FIRST_MONTH = {"green": (2021, 1), "yellow": (2023, 1)}  # yellow 2023: ~3M rides a month, as the real files
DEFAULT_CASES = "green:1,green:3,green:12,yellow:1,yellow:3"


def months(color: str, count: int) -> list[tuple[int, int]]:
    year, month = FIRST_MONTH[color]
    return [(year + (month - 1 + i) // 12, (month - 1 + i) % 12 + 1) for i in range(count)]


def run_case(engine: str, color: str, count: int, model: Path, out: Path) -> tuple[float, float]:
    """Seconds and peak MB of one ``python -m helpers.serve.batch`` run, its whole process tree."""
    first, last = months(color, count)[0], months(color, count)[-1]
    command = [
        sys.executable,
        "-m",
        "helpers.serve.batch",
        "--engine",
        engine,
        "--color",
        color,
        "--months",
        f"{first[0]}-{first[1]:02d}..{last[0]}-{last[1]:02d}",
        "--model-uri",
        str(model),
        "--output-dir",
        str(out),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass  # a worker ended while we looked
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr.read()}")
    return seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"color:months,... (default {DEFAULT_CASES})")
    parser.add_argument("--engines", default="pandas,spark")
    args = parser.parse_args()
    cases = [(color, int(count)) for color, count in (case.split(":") for case in args.cases.split(","))]
    engines = args.engines.split(",")

    print(f"{os.cpu_count()} CPUs; data: {config.data_dir()}; warming the cache...", flush=True)
    rows = {}
    for color, count in cases:
        rows[color, count] = sum(
            pq.read_metadata(data.fetch_month(color, y, m).path).num_rows for y, m in months(color, count)
        )
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        model = save_model(
            train_pipeline(LinearRegression(), prepare(make_twin("green", 2021, 1).to_pandas())),
            Path(folder) / "lin_reg.bin",
        )
        print("| case | rides | engine | seconds | M rides/min | peak MB |\n|---|---:|---|---:|---:|---:|")
        for color, count in cases:
            for engine in engines:
                seconds, peak = run_case(engine, color, count, model, Path(folder) / engine)
                results[engine, color, count] = seconds
                print(
                    f"| {color} x{count} | {rows[color, count]:,} | {engine} | {seconds:.1f} | "
                    f"{rows[color, count] / seconds * 60 / 1e6:.2f} | {peak:,.0f} |",
                    flush=True,
                )
    for engine in engines:
        points = [(rows[c, n], results[engine, c, n]) for c, n in cases]
        if len(points) >= 2:
            per_row, fixed = np.polyfit([r for r, _ in points], [s for _, s in points], 1)
            print(
                f"{engine}: {fixed:.1f} s fixed + {per_row * 1e6:.1f} s per million rides "
                f"({1 / per_row * 60 / 1e6:.2f} M rides/min at scale)"
            )


if __name__ == "__main__":
    main()
