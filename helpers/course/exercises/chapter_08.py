"""Chapter 08, monitoring: reading a report, an alert rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from helpers.course.exercise import Exercise
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import raised


def _check_report(current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, Any]:
    """The result of the report ``drift.batch_metrics`` runs, on samples the notebook never showed."""
    from helpers.monitor import drift

    current, reference = current.sample(2_000, random_state=7), reference.sample(2_000, random_state=8)
    return drift.run_report(current, reference).dict()


def verify_column_scores(
    column_scores: Callable[[dict], dict[str, float]], current: pd.DataFrame, reference: pd.DataFrame
) -> Feedback:
    """``column_scores(result)`` must map each ValueDrift metric's column to its drift score."""
    result = _check_report(current, reference)
    expected = {
        metric["config"]["column"]: float(metric["value"])
        for metric in result["metrics"]
        if metric["config"]["type"].endswith(":ValueDrift")
    }
    try:
        scores = column_scores(result)
    except Exception as error:  # noqa: BLE001
        return raised(error)
    if not isinstance(scores, dict):
        return wrong(f"return a dict {{column: score}}, not {type(scores).__name__}.")
    if scores and all(isinstance(value, bool) for value in scores.values()):
        return wrong("those are the verdicts (drifted or not); the score is the metric's 'value', a number.")
    if set(scores) - set(expected):
        return wrong(
            f"{sorted(set(scores) - set(expected))} have no drift score: keep only the metrics whose "
            "config 'type' ends with ':ValueDrift', keyed by their config 'column'."
        )
    if set(expected) - set(scores):
        return wrong(
            f"{sorted(set(expected) - set(scores))} are missing: this report has one ValueDrift per "
            "column; loop over every entry of result['metrics']."
        )
    off = [column for column in expected if not np.isclose(float(scores[column]), expected[column])]
    if off:
        return wrong(
            f"the scores of {off} are not the report's: read each metric's 'value' "
            "(a report on other rides gives other numbers, so none can be typed in)."
        )
    return right()


_RULE_CASES = ((0.6, 0.5, True), (0.5, 0.5, True), (0.4, 0.5, False), (0.1, 0.1, True), (None, 10.0, False))


def verify_rule_fires(fires: Callable[[float | None, float], bool]) -> Feedback:
    """``fires(value, threshold)``: the course's rule, at or above the threshold, and never on no value."""
    for value, threshold, expected in _RULE_CASES:
        try:
            answer = fires(value, threshold)
        except Exception as error:  # noqa: BLE001
            if value is None:
                return wrong(
                    f"fires(None, {threshold}) raised {type(error).__name__}: a batch without actual "
                    "durations has rmse None, and no value breaks no rule; return False for it."
                )
            return raised(error)
        if bool(answer) != expected:
            if value == threshold:
                return wrong(
                    f"fires({value}, {threshold}) should be True: the course's rules fire when a value "
                    "reaches its threshold (>=), so a batch exactly at it is reported."
                )
            return wrong(f"fires({value}, {threshold}) returned {answer!r}, expected {expected}.")
    return right()


EXERCISES: dict[str, Exercise] = {
    "08.column_scores": Exercise(
        question="Write column_scores(result): from a report's result (snapshot.dict()), return {column: drift score} "
        "for every ValueDrift metric in it.",
        hint="Loop over result['metrics']; keep those whose config 'type' ends with ':ValueDrift'; "
        "the key is metric['config']['column'], the score metric['value'].",
        solution="def column_scores(result):\n"
        '    return {metric["config"]["column"]: metric["value"] for metric in result["metrics"]\n'
        '            if metric["config"]["type"].endswith(":ValueDrift")}',
        verify=verify_column_scores,
    ),
    "08.rule_fires": Exercise(
        question="Write fires(value, threshold), the course's alert rule: True when the value reaches the threshold; "
        "False when there is no value (None).",
        hint="return value is not None and value >= threshold",
        solution="def fires(value, threshold):\n    return value is not None and value >= threshold",
        verify=verify_rule_fires,
    ),
}
