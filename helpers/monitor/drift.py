"""Drift and quality of scored batches, measured with Evidently against a reference.

A *batch* is a month (or a day) of rides scored by :func:`helpers.serve.batch.score_month`, with the
ride columns the course monitors joined back from the raw month (:func:`monitored_batch`). It is
compared with a *reference* scored the same way: a month the model did not train on, such as
chapter 02's validation month. (The training month's own predictions are overfitted: a one-hot
``PU_DO`` model fits its rare zone pairs exactly, so even a month drawn from the same distribution
looks drifted against them. On the twin, with 0.1 the threshold, Feb 2021 scores 0.07 against
Jan 2021's own predictions, 0.15 on 20,000-ride samples; Mar 2021 scores 0.005 against Feb 2021.)

:func:`batch_metrics` gives the course's three Grafana panels (prediction drift, drifted columns,
missing values) plus RMSE and MAE when actual durations are known;
:class:`helpers.monitor.metrics_store.MetricsStore` keeps one row per batch, and
:mod:`helpers.monitor.alert_rules` says when a batch needs attention.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import DriftedColumnsCount, MissingValueCount, ValueDrift
from sklearn.metrics import mean_absolute_error

from helpers.core import config, data
from helpers.core.features import duration_mask
from helpers.core.tlc import COLORS, PICKUP_COLUMN, parse_month
from helpers.ml import models
from helpers.ml.training import rmse
from helpers.serve import batch

# The course's monitored columns (its evidently_metrics_calculation.py), and the model's output.
CATEGORICAL_COLUMNS = ["PULocationID", "DOLocationID"]
NUMERICAL_COLUMNS = ["trip_distance", "passenger_count", "fare_amount", "total_amount"]
PREDICTION = "predicted_duration"
ACTUAL = "actual_duration"
MONITORED_COLUMNS = [*CATEGORICAL_COLUMNS, *NUMERICAL_COLUMNS, PREDICTION]


# --- Batches -------------------------------------------------------------------------------------


def batch_key(color: str, year: int, month: int, day: int | None = None) -> str:
    """The store's key of a month (``"green/2021-03"``) or a day (``"green/2021-03-05"``)."""
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    start = datetime(year, month, day or 1)  # validates the date
    return f"{color}/{start:%Y-%m}" + (f"-{start:%d}" if day is not None else "")


def batch_start(batch: str) -> datetime:
    """When a batch begins: midnight of its day, or of the first of its month."""
    _, _, period = batch.partition("/")
    try:
        return datetime.strptime(period, "%Y-%m-%d" if period.count("-") == 2 else "%Y-%m")
    except ValueError:
        raise ValueError(f"not a batch key: {batch!r}; expected e.g. 'green/2021-03' or 'green/2021-03-05'") from None


def monitored_batch(scored: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """A scored month with the monitored ride columns it lacks joined back from its raw month.

    ``score_month`` keeps the raw month's row index, so the join is by row.

    Raises:
        ValueError: ``raw`` lacks monitored columns, or its rows are not the scored rows.
    """
    missing = [c for c in MONITORED_COLUMNS if c not in scored and c not in raw]
    if missing:
        raise ValueError(f"the raw month lacks the monitored columns {missing}")
    if not scored.index.equals(raw.index):
        raise ValueError("scored and raw rows differ: pass the raw month that was scored, unfiltered")
    extra = [c for c in MONITORED_COLUMNS if c not in scored]
    return scored.join(raw[extra])


def scored_batch(color: str, month: str, model_uri: str = models.DEFAULT_MODEL_URI) -> pd.DataFrame:
    """A month scored by chapter 06's batch job (written under ``build/predictions``), ready to monitor.

    Raises:
        helpers.serve.batch.ModelLoadError: the model could not be loaded.
    """
    year, number = parse_month(month)
    scored = pd.read_parquet(batch.run(color, year, number, model_uri, progress=False))
    return monitored_batch(scored, data.read_month(color, year, number))


def _check_columns(df: pd.DataFrame, what: str, also: Iterable[str] = ()) -> None:
    missing = [c for c in [*MONITORED_COLUMNS, *also] if c not in df]
    if missing:
        raise ValueError(
            f"the {what} batch lacks the columns {missing}; build it with "
            "helpers.monitor.drift.monitored_batch(score_month(...), raw_month)"
        )


# --- Metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """Evidently's drift verdict on one column: the score, how it was tested, and whether it drifted."""

    column: str
    score: float
    method: str
    threshold: float
    detected: bool


@dataclass(frozen=True)
class BatchMetrics:
    """What monitoring knows about one batch; plain values, ready for the store and the alert rules.

    ``missing_share`` is the share of missing cells over the monitored columns; ``rmse`` and ``mae``
    are over the rides of 1-60 minutes (the course's evaluation) and None without actual durations.
    """

    batch: str
    rows: int
    prediction_drift: float
    prediction_drift_detected: bool
    drifted_columns: int
    drifted_share: float
    missing_share: float
    rmse: float | None = None
    mae: float | None = None
    columns: tuple[ColumnDrift, ...] = field(default=())

    def drifted(self) -> list[ColumnDrift]:
        """The columns whose drift was detected, most drifted first (largest score relative to threshold)."""
        return sorted((c for c in self.columns if c.detected), key=lambda c: -abs(c.score - c.threshold))


def _clip_range(reference: pd.DataFrame) -> dict[str, tuple[float, float]]:
    # Evidently scales numeric drift by the reference's std (Wasserstein) or bins the combined
    # range into equal widths (PSI, Jensen-Shannon), so a single 240,000-mile ride of a broken
    # meter hides any real shift. Clipping both frames to the reference's 0.1-99.9% range keeps
    # every ride (outliers pile up at the edge, where they still count) and keeps the scale sane.
    numeric = reference[[*NUMERICAL_COLUMNS, PREDICTION]]
    low, high = numeric.quantile(0.001), numeric.quantile(0.999)
    return {c: (float(low[c]), float(high[c])) for c in numeric}


def _dataset(df: pd.DataFrame, clip: dict[str, tuple[float, float]]) -> Dataset:
    # Zone IDs are categories, not quantities; cast so both frames agree whatever their dtype.
    frame = df[MONITORED_COLUMNS].astype({c: "string" for c in CATEGORICAL_COLUMNS})
    for column, (low, high) in clip.items():
        frame[column] = frame[column].clip(low, high)
    definition = DataDefinition(
        numerical_columns=[*NUMERICAL_COLUMNS, PREDICTION], categorical_columns=CATEGORICAL_COLUMNS
    )
    return Dataset.from_pandas(frame, data_definition=definition)


def _quality(df: pd.DataFrame) -> tuple[float | None, float | None]:
    if ACTUAL not in df:
        return None, None
    known = df[df[ACTUAL].notna() & duration_mask(df[ACTUAL])]
    if known.empty:
        return None, None
    return rmse(known[ACTUAL], known[PREDICTION]), float(mean_absolute_error(known[ACTUAL], known[PREDICTION]))


def run_report(current: pd.DataFrame, reference: pd.DataFrame) -> Snapshot:
    """Evidently's report on the monitored columns of ``current`` against ``reference``: a ValueDrift
    and a MissingValueCount per column and the DriftedColumnsCount, with their tests; both frames
    prepared as :func:`batch_metrics` reads them (zones as categories, numbers clipped to the
    reference's range). Read it with ``.dict()``, or save it with ``.save_html(path)``."""
    clip = _clip_range(reference)
    drift = [ValueDrift(column=c) for c in MONITORED_COLUMNS]
    missing = [MissingValueCount(column=c) for c in MONITORED_COLUMNS]
    report = Report([*drift, DriftedColumnsCount(columns=MONITORED_COLUMNS), *missing], include_tests=True)
    return report.run(current_data=_dataset(current, clip), reference_data=_dataset(reference, clip))


def report_path(batch: str) -> Path:
    """Where the HTML report of a batch goes: ``<build dir>/monitoring/<batch>.html``."""
    batch_start(batch)  # a key with '..' or an absolute path never reaches the file system
    return config.build_dir() / "monitoring" / f"{batch}.html"


def batch_metrics(
    current: pd.DataFrame, reference: pd.DataFrame, batch: str, *, save_html: bool = False
) -> BatchMetrics:
    """Compare a scored batch with the reference and summarise it.

    Args:
        current: The batch, from :func:`monitored_batch` (or a slice of one, e.g. a day).
        reference: The reference month (see the module docstring), prepared the same way.
        batch: Its key, from :func:`batch_key`.
        save_html: Also write Evidently's full report (megabytes) to :func:`report_path`.

    Returns:
        The batch's metrics, with the per-column drift verdicts in ``columns``.

    Raises:
        ValueError: either frame lacks a monitored column, or ``current`` is empty.
    """
    batch_start(batch)
    _check_columns(current, "current")
    _check_columns(reference, "reference")
    if current.empty:
        raise ValueError(f"batch {batch} has no rows")
    snapshot = run_report(current, reference)
    if save_html:
        path = report_path(batch)
        path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(path))
    results = snapshot.dict()
    # Evidently says whether a column drifted only in its tests (FAIL = drift), not in the metric.
    detected = {
        t["metric_config"]["params"]["column"]: t["status"].value == "FAIL"
        for t in results["tests"]
        if t["metric_config"]["params"]["type"].endswith(":ValueDrift")
    }
    columns, missing, drifted = {}, [], {}
    for metric in results["metrics"]:
        params = metric["config"]
        kind = params["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            name = params["column"]
            columns[name] = ColumnDrift(
                name, float(metric["value"]), params["method"], float(params["threshold"]), detected[name]
            )
        elif kind == "MissingValueCount":
            missing.append(float(metric["value"]["share"]))
        elif kind == "DriftedColumnsCount":
            drifted = metric["value"]
    error, absolute = _quality(current)
    prediction = columns[PREDICTION]
    return BatchMetrics(
        batch=batch,
        rows=len(current),
        prediction_drift=prediction.score,
        prediction_drift_detected=prediction.detected,
        drifted_columns=int(drifted["count"]),
        drifted_share=float(drifted["share"]),
        # Evidently's DatasetMissingValueCount divides missing cells by rows, not cells; every
        # column has the same rows, so the mean of the column shares is the share of cells.
        missing_share=float(np.mean(missing)),
        rmse=error,
        mae=absolute,
        columns=tuple(columns.values()),
    )


def daily_metrics(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    color: str,
    *,
    days: int | None = None,
    min_rows: int = 100,
    reference_rows: int | None = 20_000,
) -> list[BatchMetrics]:
    """Metrics for every day of a scored month (the course's Grafana time series), in day order.

    Days are by pickup time; days with fewer than ``min_rows`` rides are skipped, which drops the
    few stray pickups of other months that every TLC file holds. Evidently's time goes mostly into
    the reference, so the days share one fixed sample of ``reference_rows`` rides of it (None: all),
    which halves the time of a green month (a day has ~2,700 rides). ``days`` keeps only the first
    days (a quick run); None keeps them all.

    Raises:
        ValueError: the month lacks a monitored column or the color's pickup column.
    """
    pickup = PICKUP_COLUMN[color]
    _check_columns(current, "current", also=[pickup])
    if reference_rows is not None and len(reference) > reference_rows:
        reference = reference.sample(reference_rows, random_state=0)
    by_day = [
        (day, rides)
        for day, rides in current.groupby(current[pickup].dt.normalize(), sort=True)
        if len(rides) >= min_rows
    ]
    return [
        batch_metrics(rides, reference, batch_key(color, day.year, day.month, day.day)) for day, rides in by_day[:days]
    ]
