"""Compare the challenger with the champion on the test month; move `champion` only if it is better."""

from helpers.orchestrate import pipelines

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom


@custom
def promote_challenger(*args, **kwargs):
    decision = pipelines.promote_challenger(kwargs.get("test_month"), kwargs.get("color") or "green")
    print(("promoted" if decision["promoted"] else "kept the champion") + f": {decision['reason']}")
    return decision
