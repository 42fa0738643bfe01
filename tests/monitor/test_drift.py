"""helpers.monitor.drift: drift and quality of scored batches, by Evidently against a reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from helpers.core import config, features, twin
from helpers.ml import models, training
from helpers.monitor import drift
from helpers.serve import batch
from tests.support import monitored_frame


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return monitored_frame(3_000, seed=1)


# --- drift and quality ---------------------------------------------------------------------------


def test_identical_batch_shows_no_drift(reference: pd.DataFrame) -> None:
    result = drift.batch_metrics(reference.copy(), reference, "green/2021-03")
    assert result.prediction_drift == pytest.approx(0)
    assert not result.prediction_drift_detected
    assert (result.drifted_columns, result.drifted_share) == (0, 0)
    assert result.drifted() == []


def test_shifted_batch_drifts_and_says_which_columns(reference: pd.DataFrame) -> None:
    current = monitored_frame(3_000, seed=2)
    current["trip_distance"] *= 2
    current["predicted_duration"] += 8
    result = drift.batch_metrics(current, reference, "green/2021-04")
    assert result.prediction_drift_detected and result.prediction_drift > 0.1
    assert {c.column for c in result.drifted()} == {"trip_distance", "predicted_duration"}
    assert (result.drifted_columns, result.drifted_share) == (2, pytest.approx(2 / 7))


def test_missing_share_is_the_share_of_missing_monitored_cells(reference: pd.DataFrame) -> None:
    current = monitored_frame(1_000, seed=3)
    current.loc[:99, "passenger_count"] = np.nan  # 100 of 7 x 1000 monitored cells
    current.loc[:49, "fare_amount"] = np.nan  # and 50 more
    assert drift.batch_metrics(current, reference, "green/2021-03").missing_share == pytest.approx(150 / 7_000)


def test_rmse_and_mae_count_only_rides_of_1_to_60_minutes(reference: pd.DataFrame) -> None:
    current = monitored_frame(2_000, seed=4)
    current.loc[:9, "actual_duration"] = 500  # meters left running: outside the course's range
    inside = current[current.actual_duration.between(1, 60)]
    assert len(inside) < len(current) - 10
    result = drift.batch_metrics(current, reference, "green/2021-03")
    assert result.rmse == pytest.approx(training.rmse(inside.actual_duration, inside.predicted_duration))
    assert result.mae == pytest.approx((inside.actual_duration - inside.predicted_duration).abs().mean())


def test_quality_is_unknown_without_actual_durations(reference: pd.DataFrame) -> None:
    current = monitored_frame(1_000, seed=5).drop(columns="actual_duration")
    result = drift.batch_metrics(current, reference, "green/2021-03")
    assert (result.rmse, result.mae) == (None, None)


def test_batch_without_the_monitored_columns_is_rejected_naming_them(reference: pd.DataFrame) -> None:
    current = reference.drop(columns=["trip_distance", "predicted_duration"])
    with pytest.raises(ValueError, match=r"\['trip_distance', 'predicted_duration'\]"):
        drift.batch_metrics(current, reference, "green/2021-03")


def test_batch_keys_name_a_month_or_a_day() -> None:
    assert drift.batch_key("green", 2021, 3) == "green/2021-03"
    assert drift.batch_key("green", 2021, 3, 5) == "green/2021-03-05"
    assert drift.batch_start("green/2021-03-05") == pd.Timestamp("2021-03-05")
    with pytest.raises(ValueError, match="not a batch key"):
        drift.batch_start("../../etc")
    with pytest.raises(ValueError, match="color"):
        drift.batch_key("blue", 2021, 3)


def test_daily_metrics_give_one_batch_per_day_and_skip_stray_pickups(reference: pd.DataFrame) -> None:
    month = monitored_frame(1_500, seed=6, start="2021-03-01", days=3)
    month.loc[:4, "lpep_pickup_datetime"] = pd.Timestamp("2009-01-01 10:00")  # strays, as in real files
    days = drift.daily_metrics(month, reference, "green", reference_rows=2_000)
    assert [d.batch for d in days] == ["green/2021-03-01", "green/2021-03-02", "green/2021-03-03"]
    assert sum(d.rows for d in days) == 1_495
    first = drift.daily_metrics(month, reference, "green", days=2, reference_rows=2_000)
    assert [d.batch for d in first] == ["green/2021-03-01", "green/2021-03-02"]


def test_html_report_goes_under_the_build_dir(reference: pd.DataFrame) -> None:
    drift.batch_metrics(monitored_frame(1_000, seed=7), reference, "green/2021-05", save_html=True)
    path = drift.report_path("green/2021-05")
    assert path == config.build_dir() / "monitoring" / "green" / "2021-05.html"
    assert "<html" in path.read_text()[:2000].lower()


# --- the twin's drift story, seen by a real model --------------------------------------------------


@pytest.fixture(scope="module")
def twin_story() -> dict[str, drift.BatchMetrics]:
    def raw(year: int, month: int) -> pd.DataFrame:
        return twin.make_twin("green", year, month, n_rows=10_000).to_pandas()

    model = models.LoadedModel("test", "1", training.train_pipeline(LinearRegression(), features.prepare(raw(2021, 1))))

    def scored(year: int, month: int) -> pd.DataFrame:
        df = raw(year, month)
        return drift.monitored_batch(batch.score_month(model, df, "green", progress=False), df)

    reference = scored(2021, 2)  # the validation month, as chapter 02 splits them
    return {
        f"{y}-{m:02d}": drift.batch_metrics(scored(y, m), reference, drift.batch_key("green", y, m))
        for y, m in [(2021, 3), (2023, 1)]
    }


def test_twin_2021_months_are_close_to_each_other(twin_story) -> None:
    assert not twin_story["2021-03"].prediction_drift_detected
    assert twin_story["2021-03"].drifted_share < 0.5


def test_twin_2023_has_drifted_from_2021(twin_story) -> None:
    jan23 = twin_story["2023-01"]
    assert jan23.prediction_drift_detected and jan23.prediction_drift > 0.1
    assert "predicted_duration" in [c.column for c in jan23.drifted()]


def test_a_scored_batch_is_ready_to_monitor(store):
    from helpers.ml import registry

    registry.ensure_champion()
    current = drift.scored_batch("green", "2021-03", registry.champion_uri())
    assert len(current) == 83_827
    assert set(drift.MONITORED_COLUMNS) <= set(current.columns)


# --- chapter 08's report by hand -----------------------------------------------------------------


def _tied_tails(df: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    # Clipped at the reference's 0.5-99.5% range, every tail is a tie, so batch_metrics' own
    # clipping to the 0.1-99.9% range changes nothing and only the reports are compared.
    numeric = [*drift.NUMERICAL_COLUMNS, drift.PREDICTION]
    low, high = reference[numeric].quantile(0.005), reference[numeric].quantile(0.995)
    return df.assign(**{column: df[column].clip(low[column], high[column]) for column in numeric})


def test_the_chapters_report_by_hand_gives_batch_metrics_numbers(reference: pd.DataFrame) -> None:
    import nbformat

    shifted = monitored_frame(2_000, seed=5)
    shifted = shifted.assign(
        trip_distance=shifted.trip_distance * 1.5, predicted_duration=shifted.predicted_duration + 3
    )
    current, tied_reference = _tied_tails(shifted, reference), _tied_tails(reference, reference)
    notebook = nbformat.read(config.REPO_ROOT / "notebooks" / "08_monitoring.ipynb", as_version=4)
    namespace = {"current": current, "reference": tied_reference}
    for cell in notebook.cells:
        if "evidently-by-hand" in cell.metadata.get("tags", []):
            exec(cell.source, namespace)  # noqa: S102 - the chapter's own cells, as committed
    helper = drift.batch_metrics(current, tied_reference, "green/2021-03")
    assert helper.drifted_columns > 0
    assert namespace["by_hand"] == pytest.approx(
        {
            "prediction_drift": helper.prediction_drift,
            "drifted_columns": helper.drifted_columns,
            "missing_share": helper.missing_share,
        }
    )
