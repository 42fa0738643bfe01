"""helpers.monitor.metrics_store: batch metrics kept in SQLite and in a real PostgreSQL, one row per batch."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
import sqlalchemy as sa

from helpers.monitor.drift import ColumnDrift
from helpers.monitor.metrics_store import MetricsStore
from tests.support import sample_metrics as metrics


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def batch_store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = f"test_{secrets.token_hex(4)}"
        server.create_database(name)
        url = server.database_url(name, with_password=True)
    store = MetricsStore(url)
    yield store
    store.close()


def test_default_store_is_the_configured_sqlite_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKBOOK_MONITORING_DB", f"sqlite:///{tmp_path / 'm.db'}")
    default = MetricsStore()
    default.save(metrics())
    default.close()
    assert (tmp_path / "m.db").exists()


def test_store_reads_back_what_it_saved_in_batch_time_order(batch_store) -> None:
    days = [metrics(f"green/2021-03-{d:02d}", rmse=6.0 + d) for d in (3, 1, 2)]
    batch_store.save(*days)
    table = batch_store.load()
    assert list(table.batch) == ["green/2021-03-01", "green/2021-03-02", "green/2021-03-03"]
    assert list(table.rmse) == [7.0, 8.0, 9.0]
    assert batch_store.get("green/2021-03-02") == days[2]


def test_store_keeps_unknown_quality_as_null(batch_store) -> None:
    batch_store.save(metrics(rmse=None, mae=None))
    assert batch_store.get("green/2021-03").rmse is None
    assert batch_store.load().rmse.isna().all()


def test_rescoring_a_batch_replaces_its_row(batch_store) -> None:
    batch_store.save(metrics(rmse=6.0))
    batch_store.save(metrics(rmse=7.5))
    table = batch_store.load()
    assert list(table.batch) == ["green/2021-03"] and list(table.rmse) == [7.5]


def test_a_write_that_fails_half_way_leaves_nothing_of_it(batch_store) -> None:
    batch_store.save(metrics("green/2021-03", rmse=6.0))
    inserts = []

    def fail_on_second_insert(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)
            if len(inserts) == 2:
                raise RuntimeError("the database went away")

    sa.event.listen(batch_store.engine, "before_cursor_execute", fail_on_second_insert)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            batch_store.save(metrics("green/2021-03", rmse=9.0), metrics("green/2021-04", rmse=9.0))
    finally:
        sa.event.remove(batch_store.engine, "before_cursor_execute", fail_on_second_insert)
    assert len(inserts) == 2  # the first batch's row was written, then rolled back
    table = batch_store.load()
    assert list(table.batch) == ["green/2021-03"] and list(table.rmse) == [6.0]


def test_per_column_drift_survives_the_round_trip(batch_store) -> None:
    drifted = replace(
        metrics(),
        columns=(
            ColumnDrift("trip_distance", 0.31, "Wasserstein distance (normed)", 0.1, True),
            ColumnDrift("PULocationID", 0.02, "Jensen-Shannon distance", 0.1, False),
        ),
    )
    batch_store.save(drifted)
    assert batch_store.get(drifted.batch).drifted() == [drifted.columns[0]]
