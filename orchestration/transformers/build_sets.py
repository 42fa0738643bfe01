"""Build the training and validation sets: the ride fields the model reads, the target, the split."""

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test

COLUMNS = ["PULocationID", "DOLocationID", "trip_distance", "PU_DO", "duration", "split"]


@transformer
def build_sets(prepared, *args, **kwargs):
    sets = prepared[COLUMNS].reset_index(drop=True)
    print(sets.groupby("split")["duration"].describe().round(2).to_string())
    return sets


@test
def test_sets_are_usable(sets, *args) -> None:
    counts = sets["split"].value_counts()
    for split in ("train", "validation"):
        assert counts.get(split, 0) >= 100, f"{split} set has {counts.get(split, 0)} rides, fewer than 100"
    assert sets["duration"].between(1, 60).all(), "a duration is outside 1-60 minutes"
    nulls = sets[COLUMNS].isna().sum()
    assert not nulls.any(), f"missing values in {nulls[nulls > 0].to_dict()}"
    assert (sets["trip_distance"] >= 0).all(), "negative trip_distance"
