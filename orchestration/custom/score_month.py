"""Batch inference (chapter 06): score every ride of a month with the model, write its predictions."""

from pathlib import Path

import pandas as pd

from helpers.core.tlc import parse_month
from helpers.serve import batch

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@custom
def score_month(*args, **kwargs):
    color, month = kwargs.get("color") or "green", kwargs.get("month") or "2021-03"
    model_uri = kwargs.get("model_uri") or "models:/nyc-taxi-duration@champion"
    output_dir = kwargs.get("output_dir")
    # Chapter 06's batch job: load the model first, then score the month and write its partition.
    path = batch.run(color, *parse_month(month), model_uri, Path(output_dir) if output_dir else None, progress=False)
    scored = pd.read_parquet(path, columns=["predicted_duration", "model_version"])
    summary = {
        "path": str(path),
        "rides": len(scored),
        "model_version": str(scored["model_version"].iloc[0]),
        "mean_predicted_duration": round(float(scored["predicted_duration"].mean()), 3),
    }
    print(f"{summary['rides']:,} rides scored by v{summary['model_version']} into {summary['path']}")
    return summary


@test
def test_every_ride_scored(summary, *args) -> None:
    assert summary["rides"] > 0, "no ride was scored"
    assert 1 <= summary["mean_predicted_duration"] <= 60, summary
