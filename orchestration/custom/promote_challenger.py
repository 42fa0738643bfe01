"""Compare the challenger with the champion on the test month; move `champion` only if it is better."""

from dataclasses import asdict

from helpers.core import data, features
from helpers.core.tlc import parse_month
from helpers.ml import registry

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom


@custom
def promote_challenger(*args, **kwargs):
    color, test_month = kwargs.get("color") or "green", kwargs.get("test_month") or "2021-03"
    df_test = features.read_prepared(data.fetch_month(color, *parse_month(test_month)).path)
    # Chapter 04's rule: both versions scored on the test month, the alias moved only for a lower RMSE,
    # the old champion kept as previous-champion for a roll back.
    decision = asdict(registry.promote_if_better(df_test))
    print(("promoted" if decision["promoted"] else "kept the champion") + f": {decision['reason']}")
    return decision
