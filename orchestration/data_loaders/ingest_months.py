"""Ingest: the training and validation months, real TLC files or their offline twin."""

import pandas as pd

from helpers.orchestrate.pipelines import RunSettings

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@data_loader
def ingest_months(*args, **kwargs):
    settings = RunSettings.from_variables(kwargs)
    print(settings.describe())
    # fetch() downloads each month once (or makes its offline twin) and returns the cached file.
    months = settings.fetch()
    return pd.concat(
        [pd.read_parquet(month.path).assign(split=split) for split, month in months.items()], ignore_index=True
    )


@test
def test_both_months_ingested(raw, *args) -> None:
    assert set(raw["split"]) == {"train", "validation"}, f"splits found: {sorted(set(raw['split']))}"
