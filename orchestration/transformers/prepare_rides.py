"""Prepare: duration in minutes, rides of 1-60 minutes, zones as categories (chapter 02)."""

from helpers.orchestrate import pipelines

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@transformer
def prepare_rides(raw, *args, **kwargs):
    prepared = pipelines.prepare_rides(raw)
    print(f"kept {len(prepared):,} of {len(raw):,} rides ({len(prepared) / len(raw):.1%})")
    return prepared


@test
def test_durations_in_range(prepared, *args) -> None:
    assert prepared["duration"].between(1, 60).all(), "a duration is outside 1-60 minutes"
