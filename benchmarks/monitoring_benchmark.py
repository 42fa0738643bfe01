"""Monitoring cost and the drift the offline twin shows, with chapter 02's linear regression.

Trains LinearRegression on the twin's green Jan 2021 and scores every month below with it. Times
``batch_metrics`` for a month and for a day against a month's reference, ``daily_metrics`` over a
month, and writing the HTML report; then prints the drift figures of Feb 2021, Jan 2022 and
Jan 2023 against two references: Jan 2021 (the training month, in-sample predictions) and
Feb 2021 (the validation month).

Run: .venv/bin/python benchmarks/monitoring_benchmark.py
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

import pandas as pd
from sklearn.linear_model import LinearRegression

from helpers.core import features, twin
from helpers.ml import models, training
from helpers.monitor import drift
from helpers.serve import batch

warnings.filterwarnings("ignore")  # Evidently's dependencies warn about their own deprecations


def scored_month(model: models.LoadedModel, year: int, month: int) -> pd.DataFrame:
    raw = twin.make_twin("green", year, month).to_pandas()
    return drift.monitored_batch(batch.score_month(model, raw, "green", progress=False), raw)


def timed(label: str, work):
    start = time.perf_counter()
    result = work()
    print(f"{label:<52} {time.perf_counter() - start:6.2f} s")
    return result


def main() -> None:
    os.environ.setdefault("WORKBOOK_BUILD_DIR", tempfile.mkdtemp(prefix="monitoring-benchmark-"))
    jan21_raw = twin.make_twin("green", 2021, 1).to_pandas()
    pipeline = training.train_pipeline(LinearRegression(), features.prepare(jan21_raw))
    model = models.LoadedModel("benchmark", "1", pipeline)
    months = {(y, m): scored_month(model, y, m) for y, m in [(2021, 1), (2021, 2), (2021, 3), (2022, 1), (2023, 1)]}
    reference, march = months[2021, 2], months[2021, 3]
    print(f"reference: green 2021-02, {len(reference):,} rides; current: green 2021-03, {len(march):,} rides\n")

    timed("batch_metrics, one month", lambda: drift.batch_metrics(march, reference, "green/2021-03"))
    one_day = march[march.lpep_pickup_datetime.dt.day == 5]
    timed(
        f"batch_metrics, one day ({len(one_day):,} rides)",
        lambda: drift.batch_metrics(one_day, reference, "green/2021-03-05"),
    )
    days = timed("daily_metrics, a whole month", lambda: drift.daily_metrics(march, reference, "green"))
    timed(
        "batch_metrics + save_html, one month",
        lambda: drift.batch_metrics(march, reference, "green/2021-03", save_html=True),
    )
    html = drift.report_path("green/2021-03")
    print(f"HTML report: {html.stat().st_size / 1e6:.1f} MB")
    flagged = [d.batch for d in days if d.prediction_drift_detected]
    print(
        f"days of 2021-03 with prediction drift: {len(flagged)} of {len(days)}; "
        f"max drifted share {max(d.drifted_share for d in days):.2f}\n"
    )

    print(
        f"{'reference':<10} {'batch':<14} {'pred drift':>10} {'detected':>8} {'drifted':>8} {'share':>6} "
        f"{'missing':>8} {'rmse':>6}  drifted columns"
    )
    for ref_key in [(2021, 1), (2021, 2)]:
        for key in [(2021, 2), (2022, 1), (2023, 1)]:
            if key == ref_key:
                continue
            m = drift.batch_metrics(months[key], months[ref_key], drift.batch_key("green", *key))
            print(
                f"{ref_key[0]}-{ref_key[1]:02d}    {m.batch:<14} {m.prediction_drift:>10.3f} "
                f"{str(m.prediction_drift_detected):>8} {m.drifted_columns:>8} {m.drifted_share:>6.2f} "
                f"{m.missing_share:>8.3f} {m.rmse:>6.2f}  {', '.join(c.column for c in m.drifted())}"
            )


if __name__ == "__main__":
    main()
