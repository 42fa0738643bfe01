"""Chapter 05, orchestration: a block's @test, the automatic month."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from helpers.course.exercise import Exercise
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import raised


def _broken_sets(sets: pd.DataFrame) -> list[tuple[pd.DataFrame, str]]:
    """Bad batches a ``build_sets`` test must stop, each with the hint for letting it through."""
    no_validation = sets[sets["split"] == "train"]
    too_long = sets.copy()
    too_long.loc[too_long.index[0], "duration"] = 75.0
    too_short = sets.copy()
    too_short.loc[too_short.index[-1], "duration"] = 0.5
    return [
        (
            no_validation,
            "a batch with no validation rides passed your test: assert that both 'train' and "
            "'validation' are in set(sets['split']).",
        ),
        (
            too_long,
            "a batch with a ride of 75 minutes passed your test: assert that every duration is at most 60 "
            "(sets['duration'].between(1, 60).all()).",
        ),
        (too_short, "a batch with a ride of 0.5 minutes passed your test: durations start at 1 minute."),
    ]


def verify_sets_test(sets_test: Callable[..., None], sets: pd.DataFrame) -> Feedback:
    """Run a learner's ``@test`` for ``build_sets`` as Mage does, on the block's real output and on
    broken copies of it: it must pass the first and raise AssertionError on each of the others."""
    try:
        sets_test(sets.copy())
    except AssertionError as error:
        return wrong(
            f"your test failed the real output of build_sets ({error or 'no message'}); "
            "a test must let a good batch through."
        )
    except Exception as error:  # noqa: BLE001
        return raised(error)
    for broken, hint in _broken_sets(sets):
        try:
            sets_test(broken)
        except AssertionError:
            continue
        except Exception as error:  # noqa: BLE001
            return wrong(
                f"on a bad batch your test raised {type(error).__name__}, not AssertionError; "
                "Mage reports a failed test by the assert that fails (assert condition, 'message')."
            )
        return wrong(hint)
    return right()


EXERCISES: dict[str, Exercise] = {
    "05.sets_test": Exercise(
        question="Write test_sets(sets, *args), a Mage @test for build_sets' output: it passes a good batch and "
        "fails (assert) when a split is missing or a duration is outside 1-60 minutes.",
        hint="Two asserts: set(sets['split']) == {'train', 'validation'}, and sets['duration'].between(1, 60).all().",
        solution="def test_sets(sets, *args):\n"
        '    assert set(sets["split"]) == {"train", "validation"}, f"splits: {sorted(set(sets[\'split\']))}"\n'
        '    assert sets["duration"].between(1, 60).all(), "a duration is outside 1-60 minutes"',
        verify=verify_sets_test,
    ),
    "05.auto_month": Exercise(
        question="The retrain_monthly trigger starts a run on 1 June 2024 with train_month: auto. "
        "Which month does that run train on (YYYY-MM)?",
        expected="2024-04",
        hint="pipelines.RunSettings.from_variables({'train_month': 'auto', 'execution_date': ...}) answers it; "
        "it validates on the newest complete month and trains on the one before.",
        solution="answer = pipelines.month_label(pipelines.RunSettings.from_variables(\n"
        '    {"train_month": "auto", "execution_date": "2024-06-01T00:00:00"}).train)',
        hints=(
            (
                lambda a: str(a).strip() == "2024-05",
                "May is the month that run validates on; it trains on the one before.",
            ),
            (
                lambda a: str(a).strip() == "2024-06",
                "June has only just begun: its file is neither complete nor published.",
            ),
        ),
    ),
}
