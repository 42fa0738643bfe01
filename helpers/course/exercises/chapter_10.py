"""Chapter 10, engineering practice: a unit test that must catch broken feature code; how much a longer
ride adds."""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pandas as pd

from helpers.course.exercise import Exercise
from helpers.course.feedback import Feedback, right, wrong

# The ride of the chapter's behavioural tests, and the two distances the question compares.
RIDE = {"PULocationID": 74, "DOLocationID": 75}
SHORT_MILES, LONG_MILES = 2.0, 6.0


def broken_versions(prepare_features: Callable) -> list[tuple[Callable, str]]:
    """``prepare_features`` with one bug each, and what the bug does, for the hint that a test missed it."""

    def swapped_zones(ride):
        return prepare_features({**ride, "PULocationID": ride["DOLocationID"], "DOLocationID": ride["PULocationID"]})

    def whole_miles(ride):
        features = prepare_features(ride)
        return features.assign(trip_distance=features["trip_distance"].astype(int).astype(float))

    def no_drop_off(ride):
        return prepare_features(ride).drop(columns="DOLocationID")

    return [
        (swapped_zones, "swaps the pick-up and drop-off zones"),
        (whole_miles, "cuts the distance to whole miles (3.66 becomes 3.0)"),
        (no_drop_off, "leaves out the DOLocationID column"),
    ]


@contextlib.contextmanager
def _bound(test: Callable, prepare_features: Callable) -> Iterator[Callable]:
    """``test`` with ``prepare_features`` replaced: in its globals, and in ``model_service`` should it
    call the function through that module."""
    namespace = {**test.__globals__, "prepare_features": prepare_features}
    rebound = types.FunctionType(test.__code__, namespace, test.__name__, test.__defaults__, test.__closure__)
    module = sys.modules.get("model_service")
    with mock.patch.object(module, "prepare_features", prepare_features) if module else contextlib.nullcontext():
        yield rebound


def _failure(test: Callable, prepare_features: Callable) -> BaseException | None:
    """What ``test`` raised with this ``prepare_features``; None when it passed."""
    with _bound(test, prepare_features) as rebound:
        try:
            rebound()
        except Exception as error:  # noqa: BLE001 - an assert or anything else: the test failed
            return error
    return None


def verify_unit_test(test: Callable, prepare_features: Callable) -> Feedback:
    """Run the learner's test on the real ``prepare_features`` (it must pass) and on each broken one
    (it must fail)."""
    if test.__code__.co_argcount:
        return wrong("your test takes arguments; this check calls it as pytest calls a test without fixtures: test().")
    failed = _failure(test, prepare_features)
    if failed is not None:
        return wrong(
            f"your test fails on the real prepare_features ({type(failed).__name__}: {str(failed)[:200]}); "
            "it must pass on working code."
        )
    for broken, bug in broken_versions(prepare_features):
        if _failure(test, broken) is None:
            return wrong(
                f"your test passes on a prepare_features that {bug}. Assert on every column's value, e.g. "
                "features.to_dict('records') == [{...}] for a ride you chose."
            )
    return right()


def longer_ride_minutes(model: Any) -> float:
    """How many minutes ``model`` adds to the chapter's ride when it is 6 miles instead of 2."""
    rides = pd.DataFrame([{**RIDE, "trip_distance": miles} for miles in (SHORT_MILES, LONG_MILES)])
    short, long = (float(minutes) for minutes in model.predict(rides))
    return long - short


EXERCISES: dict[str, Exercise] = {
    "10.unit_test": Exercise(
        question=(
            "Write test_prepare_features(): call prepare_features with a ride and assert on what it returns, "
            "so that the test passes on the real function and fails on a broken one."
        ),
        hint="Compare the whole row: prepare_features(ride).to_dict('records') == [{...}] with the values you expect.",
        solution="def test_prepare_features():\n"
        '    ride = {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}\n'
        "    features = prepare_features(ride)\n"
        '    assert features.to_dict("records") == [{"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}]',
        verify=verify_unit_test,
    ),
    "10.longer_ride": Exercise(
        question="By how many minutes does the champion's prediction for the ride from zone 74 to 75 grow "
        "when it is 6 miles instead of 2?",
        expected_from=longer_ride_minutes,
        tolerance=0.1,
        hint="Predict both rides in one DataFrame (integer zones, float distances) and subtract the 2-mile "
        "prediction from the 6-mile one.",
        solution="rides = pd.DataFrame([{'PULocationID': 74, 'DOLocationID': 75, 'trip_distance': miles} "
        "for miles in (2.0, 6.0)])\nshort, long = champion_model.predict(rides)\nanswer = long - short",
        hints=((lambda answer: float(answer) < 0, "a longer ride should take longer: 6 miles minus 2 miles."),),
    ),
}
