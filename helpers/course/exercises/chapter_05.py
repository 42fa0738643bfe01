"""Chapter 05, orchestration: a block with its @test, written into a copy of the project and run by
Mage; the automatic month."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.course.exercise import Exercise
from helpers.course.feedback import NOT_ATTEMPTED, Feedback, right, wrong
from helpers.orchestrate import mage

PIPELINE, BLOCK = "data_preparation", "build_sets"
COLUMNS = ["PULocationID", "DOLocationID", "trip_distance", "PU_DO", "duration", "split"]


def _is_stub(function: Callable[..., Any]) -> bool:
    """True for the notebook's stub: a body of only ``...``, ``pass``, a docstring or comments."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.FunctionDef) else []
    return all(
        isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in body
    )


def _broken_sets(sets: pd.DataFrame) -> list[tuple[pd.DataFrame, str]]:
    """Bad batches a ``build_sets`` test must stop, each with the hint for letting it through."""
    too_long = sets.copy()
    too_long.loc[too_long.index[0], "duration"] = 75.0
    too_short = sets.copy()
    too_short.loc[too_short.index[-1], "duration"] = 0.5
    no_miles = sets.copy()
    no_miles.loc[no_miles.index[0], "trip_distance"] = 0.0
    return [
        (
            sets[sets["split"] == "train"],
            "a batch with no validation rides passed your test: assert that both 'train' and "
            "'validation' are in set(sets['split']).",
        ),
        (
            too_long,
            "a batch with a ride of 75 minutes passed your test: assert that every duration is at most 60 "
            "(sets['duration'].between(1, 60).all()).",
        ),
        (too_short, "a batch with a ride of 0.5 minutes passed your test: durations start at 1 minute."),
        (no_miles, "a batch with a ride of 0 miles passed your test: assert (sets['trip_distance'] > 0).all()."),
    ]


def verify_sets_block(block_file: Path, run: mage.PipelineRun | None = None) -> Feedback:
    """Judge a learner's ``build_sets`` block from what Mage recorded of its run in the copy of the
    project: the run's status, the tests Mage ran and failed, and the sets the block returned; then
    run the block's tests on broken copies of those sets, which they must fail.

    Args:
        block_file: The learner's block file in the copy of the project.
        run: The ``mage run`` of the copy's ``data_preparation`` (``mage.run_pipeline(..., project=copy)``).
    """
    try:
        code = mage.load_block(block_file)
    except Exception as error:  # noqa: BLE001 - whatever the learner's file raises is the hint
        return wrong(f"Mage could not load your block file: {type(error).__name__}: {str(error)[:300]}")
    if not code.functions:
        return wrong("your file defines no block: decorate build_sets with @transformer.")
    if all(_is_stub(function) for function in [code.function(), *code.tests]):
        return Feedback(NOT_ATTEMPTED, f"Not attempted yet. {EXERCISES['05.sets_block'].question}")
    if _is_stub(code.function()):
        return wrong("build_sets is still the stub: return the prepared rides of more than 0 miles, six columns.")
    if not code.tests:
        return wrong("your block has no @test: Mage runs a function decorated with @test after the block.")
    if run is None or run.started_at < code.path.stat().st_mtime:
        return wrong("the block changed after its last run: run the copy's pipeline again (the cell above).")
    if not run.ok:
        failed = {name: error for name, error in run.failed_tests().items() if name.startswith(f"{BLOCK}.")}
        if failed:
            name, error = next(iter(failed.items()))
            return wrong(
                f"Mage ran {name} on the real sets and it failed ({error}); a test must let a good batch through."
            )
        return wrong(f"Mage failed the run: {run.error() or run.tail(3)}")
    passed = run.tests_passed()
    if len(passed) < 3 or passed[2] != (len(code.tests), len(code.tests)):
        return wrong(f"Mage did not report your {len(code.tests)} test(s) of build_sets as passed: {passed}.")
    prepared = mage.block_output(PIPELINE, "prepare_rides", project=run.project)
    sets = mage.block_output(PIPELINE, BLOCK, project=run.project)
    missing = [column for column in COLUMNS if column not in getattr(sets, "columns", [])]
    if missing:
        return wrong(f"Mage stored sets without the columns {missing}; keep {COLUMNS}.")
    if (sets["trip_distance"] <= 0).any():
        return wrong(f"the sets Mage stored still hold {(sets['trip_distance'] <= 0).sum():,} rides of 0 miles.")
    kept = int((prepared["trip_distance"] > 0).sum())
    if len(sets) != kept:
        return wrong(f"the sets hold {len(sets):,} rides, but {kept:,} prepared rides have more than 0 miles.")
    for broken, hint in _broken_sets(sets):
        try:
            for test in code.tests:
                test(broken)
        except AssertionError:
            continue
        except Exception as error:  # noqa: BLE001
            return wrong(
                f"on a bad batch your test raised {type(error).__name__}, not AssertionError; "
                "Mage reports a failed test by the assert that fails (assert condition, 'message')."
            )
        return wrong(hint)
    return right()


SETS_BLOCK_SOLUTION = """if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test

COLUMNS = ["PULocationID", "DOLocationID", "trip_distance", "PU_DO", "duration", "split"]


@transformer
def build_sets(prepared, *args, **kwargs):
    moving = prepared[prepared["trip_distance"] > 0]
    return moving[COLUMNS].reset_index(drop=True)


@test
def test_sets(sets, *args):
    assert set(sets["split"]) == {"train", "validation"}, f"splits: {sorted(set(sets['split']))}"
    assert sets["duration"].between(1, 60).all(), "a duration is outside 1-60 minutes"
    assert (sets["trip_distance"] > 0).all(), "a ride of 0 miles"
"""

EXERCISES: dict[str, Exercise] = {
    "05.sets_block": Exercise(
        question="In your copy of the project, write the block build_sets: the sets without the rides of 0 miles, "
        "and a @test that fails (assert) when a split is missing, a duration is outside 1-60 minutes or a "
        "ride has 0 miles. Then run the copy's data_preparation with mage run.",
        hint="Keep prepared[prepared['trip_distance'] > 0] and the six columns; three asserts in the test.",
        solution=SETS_BLOCK_SOLUTION,
        verify=verify_sets_block,
    ),
    "05.auto_month": Exercise(
        question="The retrain_monthly trigger starts a run on 1 June 2024 with train_month: auto. "
        "Which month does that run train on (YYYY-MM)?",
        expected="2024-04",
        hint="pipelines.RunSettings.from_variables({'train_month': 'auto', 'execution_date': ...}) answers it; "
        "it validates on the newest complete month and trains on the one before.",
        solution="from helpers.orchestrate import pipelines\n\n"
        "answer = pipelines.month_label(pipelines.RunSettings.from_variables(\n"
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
