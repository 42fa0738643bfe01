"""Ingest: the training and validation months, real TLC files or their offline twin."""

from helpers.orchestrate import pipelines

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@data_loader
def ingest_months(*args, **kwargs):
    settings = pipelines.RunSettings.from_variables(kwargs)
    print(settings.describe())
    return pipelines.ingest_months(settings)


@test
def test_both_months_ingested(raw, *args) -> None:
    assert set(raw["split"]) == set(pipelines.SPLITS), f"splits found: {sorted(set(raw['split']))}"
