"""Build the training and validation sets: the ride fields the model reads, the target, the split."""

from helpers.orchestrate import pipelines

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@transformer
def build_sets(prepared, *args, **kwargs):
    sets = pipelines.build_sets(prepared)
    print(sets.groupby("split")["duration"].describe().round(2).to_string())
    return sets


@test
def test_sets_are_usable(sets, *args) -> None:
    pipelines.check_sets(sets)
