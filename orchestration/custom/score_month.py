"""Batch inference (chapter 06): score every ride of a month with the model, write its predictions."""

from helpers.orchestrate import pipelines

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def score_month(*args, **kwargs):
    summary = pipelines.score_month(
        kwargs.get("color") or "green",
        kwargs.get("month") or "2021-03",
        kwargs.get("model_uri") or "models:/nyc-taxi-duration@champion",
        kwargs.get("output_dir"),
    )
    print(f"{summary['rides']:,} rides scored by v{summary['model_version']} into {summary['path']}")
    return summary


@test
def test_every_ride_scored(summary, *args) -> None:
    assert summary["rides"] > 0, "no ride was scored"
    assert 1 <= summary["mean_predicted_duration"] <= 60, summary
