"""helpers.monitoring: drift and quality of scored batches, the metrics store on SQLite and
PostgreSQL, and alert rules delivered to a webhook on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression

from helpers import batch, config, features, models, monitoring, training, twin
from helpers.postgres import PostgresServer, binaries_dir, start_postgres
from helpers.alerts import AlertInbox


def monitored_frame(n: int, seed: int, *, start: str = "2021-03-01", days: int = 1) -> pd.DataFrame:
    """A scored batch with every monitored column, its actual durations and pickup times."""
    rng = np.random.default_rng(seed)
    distance = rng.lognormal(1, 0.8, n)
    predicted = 5 + 2.5 * distance + rng.normal(0, 1, n)
    pickup = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s")
    return pd.DataFrame({
        "lpep_pickup_datetime": pickup,
        "PULocationID": rng.integers(1, 8, n), "DOLocationID": rng.integers(1, 8, n),
        "trip_distance": distance, "passenger_count": rng.choice([1.0, 2.0, 3.0], n),
        "fare_amount": 3 + 2.5 * distance, "total_amount": 5 + 2.5 * distance,
        "predicted_duration": predicted, "actual_duration": predicted + rng.normal(0, 3, n),
    })


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return monitored_frame(3_000, seed=1)


def metrics(batch: str = "green/2021-03", **values) -> monitoring.BatchMetrics:
    defaults = dict(rows=100, prediction_drift=0.01, prediction_drift_detected=False, drifted_columns=0,
                    drifted_share=0.0, missing_share=0.0, rmse=6.0, mae=4.0,
                    columns=(monitoring.ColumnDrift("predicted_duration", 0.01, "Wasserstein distance (normed)", 0.1,
                                                    False),))
    return monitoring.BatchMetrics(batch=batch, **{**defaults, **values})


# --- drift and quality ---------------------------------------------------------------------------

def test_identical_batch_shows_no_drift(reference: pd.DataFrame) -> None:
    result = monitoring.batch_metrics(reference.copy(), reference, "green/2021-03")
    assert result.prediction_drift == pytest.approx(0)
    assert not result.prediction_drift_detected
    assert (result.drifted_columns, result.drifted_share) == (0, 0)
    assert result.drifted() == []


def test_shifted_batch_drifts_and_says_which_columns(reference: pd.DataFrame) -> None:
    current = monitored_frame(3_000, seed=2)
    current["trip_distance"] *= 2
    current["predicted_duration"] += 8
    result = monitoring.batch_metrics(current, reference, "green/2021-04")
    assert result.prediction_drift_detected and result.prediction_drift > 0.1
    assert {c.column for c in result.drifted()} == {"trip_distance", "predicted_duration"}
    assert (result.drifted_columns, result.drifted_share) == (2, pytest.approx(2 / 7))


def test_missing_share_is_the_share_of_missing_monitored_cells(reference: pd.DataFrame) -> None:
    current = monitored_frame(1_000, seed=3)
    current.loc[:99, "passenger_count"] = np.nan  # 100 of 7 x 1000 monitored cells
    current.loc[:49, "fare_amount"] = np.nan  # and 50 more
    assert monitoring.batch_metrics(current, reference, "green/2021-03").missing_share == pytest.approx(150 / 7_000)


def test_rmse_and_mae_count_only_rides_of_1_to_60_minutes(reference: pd.DataFrame) -> None:
    current = monitored_frame(2_000, seed=4)
    current.loc[:9, "actual_duration"] = 500  # meters left running: outside the course's range
    inside = current[current.actual_duration.between(1, 60)]
    assert len(inside) < len(current) - 10
    result = monitoring.batch_metrics(current, reference, "green/2021-03")
    assert result.rmse == pytest.approx(training.rmse(inside.actual_duration, inside.predicted_duration))
    assert result.mae == pytest.approx((inside.actual_duration - inside.predicted_duration).abs().mean())


def test_quality_is_unknown_without_actual_durations(reference: pd.DataFrame) -> None:
    current = monitored_frame(1_000, seed=5).drop(columns="actual_duration")
    result = monitoring.batch_metrics(current, reference, "green/2021-03")
    assert (result.rmse, result.mae) == (None, None)


def test_batch_without_the_monitored_columns_is_rejected_naming_them(reference: pd.DataFrame) -> None:
    current = reference.drop(columns=["trip_distance", "predicted_duration"])
    with pytest.raises(ValueError, match=r"\['trip_distance', 'predicted_duration'\]"):
        monitoring.batch_metrics(current, reference, "green/2021-03")


def test_batch_keys_name_a_month_or_a_day() -> None:
    assert monitoring.batch_key("green", 2021, 3) == "green/2021-03"
    assert monitoring.batch_key("green", 2021, 3, 5) == "green/2021-03-05"
    assert monitoring.batch_start("green/2021-03-05") == pd.Timestamp("2021-03-05")
    with pytest.raises(ValueError, match="not a batch key"):
        monitoring.batch_start("../../etc")
    with pytest.raises(ValueError, match="color"):
        monitoring.batch_key("blue", 2021, 3)


def test_daily_metrics_give_one_batch_per_day_and_skip_stray_pickups(reference: pd.DataFrame) -> None:
    month = monitored_frame(1_500, seed=6, start="2021-03-01", days=3)
    month.loc[:4, "lpep_pickup_datetime"] = pd.Timestamp("2009-01-01 10:00")  # strays, as in real files
    days = monitoring.daily_metrics(month, reference, "green", reference_rows=2_000)
    assert [d.batch for d in days] == ["green/2021-03-01", "green/2021-03-02", "green/2021-03-03"]
    assert sum(d.rows for d in days) == 1_495
    first = monitoring.daily_metrics(month, reference, "green", days=2, reference_rows=2_000)
    assert [d.batch for d in first] == ["green/2021-03-01", "green/2021-03-02"]


def test_html_report_goes_under_the_build_dir(reference: pd.DataFrame) -> None:
    monitoring.batch_metrics(monitored_frame(1_000, seed=7), reference, "green/2021-05", save_html=True)
    path = monitoring.report_path("green/2021-05")
    assert path == config.build_dir() / "monitoring" / "green" / "2021-05.html"
    assert "<html" in path.read_text()[:2000].lower()


# --- the twin's drift story, seen by a real model --------------------------------------------------

@pytest.fixture(scope="module")
def twin_story() -> dict[str, monitoring.BatchMetrics]:
    def raw(year: int, month: int) -> pd.DataFrame:
        return twin.make_twin("green", year, month, n_rows=10_000).to_pandas()

    model = models.LoadedModel("test", "1", training.train_pipeline(LinearRegression(), features.prepare(raw(2021, 1))))

    def scored(year: int, month: int) -> pd.DataFrame:
        df = raw(year, month)
        return monitoring.monitored_batch(batch.score_month(model, df, "green", progress=False), df)

    reference = scored(2021, 2)  # the validation month, as chapter 02 splits them
    return {f"{y}-{m:02d}": monitoring.batch_metrics(scored(y, m), reference, monitoring.batch_key("green", y, m))
            for y, m in [(2021, 3), (2023, 1)]}


def test_twin_2021_months_are_close_to_each_other(twin_story) -> None:
    assert not twin_story["2021-03"].prediction_drift_detected
    assert twin_story["2021-03"].drifted_share < 0.5


def test_twin_2023_has_drifted_from_2021(twin_story) -> None:
    jan23 = twin_story["2023-01"]
    assert jan23.prediction_drift_detected and jan23.prediction_drift > 0.1
    assert "predicted_duration" in [c.column for c in jan23.drifted()]


# --- alert rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "threshold"), [("drifted_share", 0.5), ("missing_share", 0.1), ("rmse", 10.0)])
def test_rule_fires_exactly_at_its_threshold_and_not_below(rule: str, threshold: float) -> None:
    rules = monitoring.AlertRules()
    assert getattr(rules, rule) == threshold
    at = monitoring.evaluate_rules(metrics(**{rule: threshold}), rules)
    assert [(v.rule, v.value, v.threshold) for v in at] == [(rule, threshold, threshold)]
    assert monitoring.evaluate_rules(metrics(**{rule: np.nextafter(threshold, 0)}), rules) == []


def test_prediction_drift_rule_follows_evidentlys_verdict() -> None:
    drifted = metrics(prediction_drift=0.2, prediction_drift_detected=True)
    assert [v.rule for v in monitoring.evaluate_rules(drifted)] == ["prediction_drift"]
    assert monitoring.evaluate_rules(drifted, monitoring.AlertRules(prediction_drift=False)) == []


def test_a_rule_set_to_none_is_off_and_unknown_rmse_never_fires() -> None:
    assert monitoring.evaluate_rules(metrics(rmse=50.0), monitoring.AlertRules(rmse=None)) == []
    assert monitoring.evaluate_rules(metrics(rmse=None)) == []


def test_alert_is_delivered_to_a_webhook_on_loopback() -> None:
    broken = metrics("green/2023-01", prediction_drift=0.21, prediction_drift_detected=True, drifted_share=0.57)
    with AlertInbox() as inbox:
        violations = monitoring.alert_on_violations(broken, url=inbox.url)
        alert = inbox.wait_for("green/2023-01", timeout=10)
    assert [v.rule for v in violations] == ["prediction_drift", "drifted_share"]
    assert alert.title == "Monitoring: green/2023-01 needs attention"
    assert "drifted_share = 0.570" in alert.text
    assert alert.body["details"]["metrics"]["batch"] == "green/2023-01"


def test_no_alert_when_every_rule_holds(closed_port_url: str) -> None:
    # Nothing listens at the URL: posting would raise, so an empty result proves nothing was sent.
    assert monitoring.alert_on_violations(metrics(), url=closed_port_url) == []


# --- the store, on SQLite and on PostgreSQL --------------------------------------------------------

@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the session, from the pgserver package's binaries; skips
    without them, but fails in CI (where `make setup` installs them), so that the PostgreSQL tests can
    never silently stop running there."""
    try:
        binaries_dir()
    except RuntimeError as missing:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{missing} CI=true, so this is an error, not a skip")
        pytest.skip(str(missing))
    folder = tmp_path_factory.mktemp("postgres")
    # No fsync: a test server holds nothing worth a flush.
    server = start_postgres(folder / "data", secrets.token_urlsafe(12), folder / "server.log", fsync=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def metrics_store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = f"test_{secrets.token_hex(4)}"
        server.create_database(name)
        url = server.database_url(name, with_password=True)
    metrics_store = monitoring.MetricsStore(url)
    yield metrics_store
    metrics_store.close()


def test_default_store_is_the_configured_sqlite_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WORKBOOK_MONITORING_DB", f"sqlite:///{tmp_path / 'm.db'}")
    default = monitoring.MetricsStore()
    default.save(metrics())
    default.close()
    assert (tmp_path / "m.db").exists()


def test_store_reads_back_what_it_saved_in_batch_time_order(metrics_store) -> None:
    days = [metrics(f"green/2021-03-{d:02d}", rmse=6.0 + d) for d in (3, 1, 2)]
    metrics_store.save(*days)
    table = metrics_store.load()
    assert list(table.batch) == ["green/2021-03-01", "green/2021-03-02", "green/2021-03-03"]
    assert list(table.rmse) == [7.0, 8.0, 9.0]
    assert metrics_store.get("green/2021-03-02") == days[2]


def test_store_keeps_unknown_quality_as_null(metrics_store) -> None:
    metrics_store.save(metrics(rmse=None, mae=None))
    assert metrics_store.get("green/2021-03").rmse is None
    assert metrics_store.load().rmse.isna().all()


def test_rescoring_a_batch_replaces_its_row(metrics_store) -> None:
    metrics_store.save(metrics(rmse=6.0))
    metrics_store.save(metrics(rmse=7.5))
    table = metrics_store.load()
    assert list(table.batch) == ["green/2021-03"] and list(table.rmse) == [7.5]


def test_a_write_that_fails_half_way_leaves_nothing_of_it(metrics_store) -> None:
    metrics_store.save(metrics("green/2021-03", rmse=6.0))
    inserts = []

    def fail_on_second_insert(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)
            if len(inserts) == 2:
                raise RuntimeError("the database went away")

    sa.event.listen(metrics_store.engine, "before_cursor_execute", fail_on_second_insert)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            metrics_store.save(metrics("green/2021-03", rmse=9.0), metrics("green/2021-04", rmse=9.0))
    finally:
        sa.event.remove(metrics_store.engine, "before_cursor_execute", fail_on_second_insert)
    assert len(inserts) == 2  # the first batch's row was written, then rolled back
    table = metrics_store.load()
    assert list(table.batch) == ["green/2021-03"] and list(table.rmse) == [6.0]


def test_per_column_drift_survives_the_round_trip(metrics_store) -> None:
    drifted = replace(metrics(), columns=(
        monitoring.ColumnDrift("trip_distance", 0.31, "Wasserstein distance (normed)", 0.1, True),
        monitoring.ColumnDrift("PULocationID", 0.02, "Jensen-Shannon distance", 0.1, False)))
    metrics_store.save(drifted)
    assert metrics_store.get(drifted.batch).drifted() == [drifted.columns[0]]


def test_service_health_reads_traffic_errors_and_latency_from_the_metrics():
    from synthetic import synthetic_month

    from helpers.serving import create_app

    model = models.LoadedModel("test://small", "1", training.train_pipeline(LinearRegression(), synthetic_month(300, seed=1)))
    client = create_app(model).test_client()
    for _ in range(20):
        client.post("/predict", json={"PULocationID": 10, "DOLocationID": 3, "trip_distance": 4.0})
    for _ in range(5):
        client.post("/predict", json={"PULocationID": 10, "DOLocationID": 3, "trip_distance": -1})
    health = monitoring.service_health(client.get("/metrics").get_data(as_text=True))
    assert (health["requests"], health["client_errors"], health["server_errors"]) == (25, 5, 0)
    assert health["error_share"] == 0
    assert 0 < health["p50_ms"] <= health["p99_ms"] < 1000


def test_latency_quantiles_interpolate_within_the_bucket():
    buckets = [(0.01, 50), (0.1, 100), (float("inf"), 100)]
    assert monitoring._quantile(buckets, 0.5) == pytest.approx(0.01)
    assert monitoring._quantile(buckets, 0.75) == pytest.approx(0.055)
    assert np.isnan(monitoring._quantile([(0.01, 0), (float("inf"), 0)], 0.5))


def test_a_scored_batch_is_ready_to_monitor(store):
    from helpers import registry

    registry.ensure_champion()
    current = monitoring.scored_batch("green", "2021-03", registry.champion_uri())
    assert len(current) == 83_827
    assert set(monitoring.MONITORED_COLUMNS) <= set(current.columns)


# --- chapter 07's report by hand -----------------------------------------------------------------

def _tied_tails(df: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    # Clipped at the reference's 0.5-99.5% range, every tail is a tie, so batch_metrics' own
    # clipping to the 0.1-99.9% range changes nothing and only the reports are compared.
    numeric = [*monitoring.NUMERICAL_COLUMNS, monitoring.PREDICTION]
    low, high = reference[numeric].quantile(0.005), reference[numeric].quantile(0.995)
    return df.assign(**{column: df[column].clip(low[column], high[column]) for column in numeric})


def test_the_chapters_report_by_hand_gives_batch_metrics_numbers(reference: pd.DataFrame) -> None:
    import nbformat

    shifted = monitored_frame(2_000, seed=5)
    shifted = shifted.assign(trip_distance=shifted.trip_distance * 1.5, predicted_duration=shifted.predicted_duration + 3)
    current, tied_reference = _tied_tails(shifted, reference), _tied_tails(reference, reference)
    notebook = nbformat.read(config.REPO_ROOT / "notebooks" / "07_monitoring.ipynb", as_version=4)
    namespace = {"current": current, "reference": tied_reference}
    for cell in notebook.cells:
        if "evidently-by-hand" in cell.metadata.get("tags", []):
            exec(cell.source, namespace)  # noqa: S102 - the chapter's own cells, as committed
    helper = monitoring.batch_metrics(current, tied_reference, "green/2021-03")
    assert helper.drifted_columns > 0
    assert namespace["by_hand"] == pytest.approx({"prediction_drift": helper.prediction_drift,
                                                  "drifted_columns": helper.drifted_columns,
                                                  "missing_share": helper.missing_share})
