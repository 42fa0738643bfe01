"""Instant feedback for the exercises, in the spirit of Kaggle's learntools.

Each exercise is declared as data: the question, the expected value (or one computed by the
notebook from the data it really loaded), a tolerance, and hints for the usual wrong answers.
A check never raises: an unanswered exercise says so, a wrong one gets a specific hint. The
exercises where the learner writes code run it through the checks of their chapter's module in
:mod:`helpers.course.exercises`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.course.exercise import Exercise, matches, safe
from helpers.course.exercises import (
    chapter_01,
    chapter_02,
    chapter_03,
    chapter_04,
    chapter_05,
    chapter_06,
    chapter_07,
    chapter_08,
    chapter_09,
    chapter_10,
)
from helpers.course.feedback import CORRECT, INCORRECT, NOT_ATTEMPTED, Feedback

__all__ = ["CORRECT", "EXERCISES", "INCORRECT", "NOT_ATTEMPTED", "Exercise", "Feedback", "check", "solution"]

EXERCISES: dict[str, Exercise] = {
    exercise_id: exercise
    for chapter in (
        chapter_01,
        chapter_02,
        chapter_03,
        chapter_04,
        chapter_05,
        chapter_06,
        chapter_07,
        chapter_08,
        chapter_09,
        chapter_10,
    )
    for exercise_id, exercise in chapter.EXERCISES.items()
}


def _is_stub(function: Callable) -> bool:
    """True for the notebook's stub: a body of only a docstring, ``...``, ``pass`` or comments."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.FunctionDef) else []
    return bool(body) and all(
        isinstance(node, ast.Pass)
        or (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and (node.value.value is Ellipsis or isinstance(node.value.value, str))
        )
        for node in body
    )


def check(exercise_id: str, answer: Any, **context: Any) -> Feedback:
    """Check a learner's answer and say what to do next; never raises on a wrong answer.

    Args:
        exercise_id: Key in :data:`EXERCISES`, e.g. ``"01.maturity"``.
        answer: The learner's answer (a function for a coding exercise, or the file it wrote);
            ``None`` or the notebook's stub means not attempted yet.
        context: What the check needs: for a coding exercise e.g. ``server=`` the team server, for a
            value the data decides, the objects its answer is computed from (``vectorizer=``).

    Returns:
        Feedback whose status is ``"not attempted"``, ``"correct"`` or ``"incorrect"``.
    """
    exercise = EXERCISES[exercise_id]
    if answer is None or (exercise.verify and callable(answer) and _is_stub(answer)):
        return Feedback(NOT_ATTEMPTED, f"Not attempted yet. {exercise.question}")
    if exercise.verify:
        # A block the learner wrote with %%writefile is answered by its file.
        if not callable(answer) and not isinstance(answer, Path):
            return Feedback(INCORRECT, "Not quite: pass the function itself (its name, without calling it).")
        try:
            return exercise.verify(answer, **context)
        except Exception as error:  # noqa: BLE001 - a check never raises; the reason is shown instead
            return Feedback(
                INCORRECT, f"Could not run the check ({type(error).__name__}: {error}); did every cell above it run?"
            )
    if exercise.expected_from is None:
        right = exercise.expected
    else:
        try:
            right = exercise.expected_from(**context)
        except TypeError as missing:
            raise ValueError(f"exercise {exercise_id!r} computes its answer from the data: {missing}") from missing
    if matches(answer, right, exercise.tolerance):
        return Feedback(CORRECT, "Correct!")
    for test, hint in exercise.hints:
        if safe(test, answer):
            return Feedback(INCORRECT, f"Not quite: {hint}")
    return Feedback(INCORRECT, f"Not quite. Hint: {exercise.hint}")


def solution(exercise_id: str) -> str:
    """The code that answers an exercise, for a learner who wants to see it."""
    return EXERCISES[exercise_id].solution
