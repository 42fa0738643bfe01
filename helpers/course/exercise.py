"""An exercise declared as data, and how an answer is matched against it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers.course.feedback import Feedback


@dataclass(frozen=True)
class Exercise:
    """One exercise: what is asked, what is right, and what to say when it is not.

    ``hints`` pairs a test on a wrong answer with the hint it earns; the first that matches is
    shown, else ``hint``. When the data decides the answer, ``expected_from`` computes it from what
    the notebook passes the check (its fitted objects, never the answer itself). An
    exercise where the learner writes a function has ``verify``: it runs the function in isolation
    and returns the feedback itself.
    """

    question: str
    hint: str
    solution: str
    expected: Any = None
    expected_from: Callable[..., Any] | None = None
    tolerance: float = 0.0
    hints: tuple[tuple[Callable[[Any], bool], str], ...] = field(default_factory=tuple)
    verify: Callable[..., Feedback] | None = None


def number(value: Any) -> float | None:
    """``value`` as a number (a learner may type ``" 3 "`` or ``3.0``), or None when it is none."""
    try:
        read = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(read) else read


def matches(answer: Any, expected: Any, tolerance: float) -> bool:
    """Whether ``answer`` is ``expected``: a string whatever its case and spaces, a number within ``tolerance``."""
    if isinstance(expected, str):
        return isinstance(answer, str) and answer.strip().lower() == expected.strip().lower()
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return answer == expected
    read = number(answer)
    return read is not None and math.isclose(read, expected, rel_tol=0, abs_tol=tolerance)


def safe(test: Callable[[Any], bool], answer: Any) -> bool:
    """``test(answer)``, False when it raises: a hint's test must never turn a learner's odd answer into a traceback."""
    try:
        return bool(test(answer))
    except Exception:  # noqa: BLE001 - whatever the learner typed, a hint's test only says no
        return False


def between(low: float, high: float) -> Callable[[Any], bool]:
    """A hint's test: the answer is a number from ``low`` to ``high``."""
    return lambda answer: number(answer) is not None and low <= number(answer) <= high
