"""Batch metrics in a database, one row per batch: SQLite by default, PostgreSQL as the course runs it."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from helpers.core import config
from helpers.monitor.drift import BatchMetrics, ColumnDrift, batch_start

_METADATA = sa.MetaData()
METRICS_TABLE = sa.Table(
    "batch_metrics",
    _METADATA,
    sa.Column("batch", sa.String(64), primary_key=True),  # one row per batch: re-scoring replaces it
    sa.Column("batch_start", sa.DateTime, nullable=False, index=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("prediction_drift", sa.Float, nullable=False),
    sa.Column("prediction_drift_detected", sa.Boolean, nullable=False),
    sa.Column("drifted_columns", sa.Integer, nullable=False),
    sa.Column("drifted_share", sa.Float, nullable=False),
    sa.Column("missing_share", sa.Float, nullable=False),
    sa.Column("rmse", sa.Float),
    sa.Column("mae", sa.Float),
    sa.Column("column_drift", sa.Text, nullable=False),  # JSON: per-column verdicts, to explain a drift
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)


def _row(metrics: BatchMetrics, now: datetime) -> dict[str, Any]:
    values = asdict(metrics)
    return {
        **{k: v for k, v in values.items() if k != "columns"},
        "batch_start": batch_start(metrics.batch),
        "column_drift": json.dumps(values["columns"]),
        "recorded_at": now,
    }


def _metrics(row: dict[str, Any]) -> BatchMetrics:
    fields = {
        k: row[k]
        for k in (
            "batch",
            "rows",
            "prediction_drift",
            "prediction_drift_detected",
            "drifted_columns",
            "drifted_share",
            "missing_share",
            "rmse",
            "mae",
        )
    }
    return BatchMetrics(**fields, columns=tuple(ColumnDrift(**c) for c in json.loads(row["column_drift"])))


class MetricsStore:
    """Batch metrics in a database: SQLite by default, PostgreSQL for a ``postgresql+psycopg://`` URL.

    Args:
        url: A SQLAlchemy URL; default :func:`helpers.core.config.monitoring_db_uri`. The table is
            created when missing.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or config.monitoring_db_uri()
        self.engine = sa.create_engine(self.url)
        _METADATA.create_all(self.engine)

    def save(self, *metrics: BatchMetrics) -> None:
        """Write batches in one transaction, replacing earlier rows of the same batches.

        Either every batch is written or, if anything fails, none is and earlier rows stay as they were.
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = [_row(m, now) for m in metrics]
        with self.engine.begin() as connection:
            for row in rows:
                connection.execute(METRICS_TABLE.delete().where(METRICS_TABLE.c.batch == row["batch"]))
                connection.execute(METRICS_TABLE.insert().values(**row))

    def get(self, batch: str) -> BatchMetrics | None:
        """The stored metrics of one batch, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(METRICS_TABLE.select().where(METRICS_TABLE.c.batch == batch)).mappings().first()
        return None if row is None else _metrics(dict(row))

    def load(self) -> pd.DataFrame:
        """Every stored batch as a frame, ordered by when the batch begins (the per-column JSON left out)."""
        columns = [c for c in METRICS_TABLE.c if c.name != "column_drift"]
        query = sa.select(*columns).order_by(METRICS_TABLE.c.batch_start, METRICS_TABLE.c.batch)
        with self.engine.connect() as connection:
            return pd.DataFrame(connection.execute(query).mappings().all(), columns=[c.name for c in columns])

    def close(self) -> None:
        """Release the connections (a PostgreSQL server can then stop without waiting for them)."""
        self.engine.dispose()
