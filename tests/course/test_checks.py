import inspect

import pandas as pd
import pytest
from sklearn.feature_extraction import DictVectorizer

from helpers.course.checks import (
    CORRECT,
    EXERCISES,
    INCORRECT,
    NOT_ATTEMPTED,
    check,
    solution,
)
from tests.support import TwoAndAHalfMinutesAMile

# Three zone pairs and the distance: four columns, three of them pairs.
VECTORIZER = DictVectorizer().fit([{"PU_DO": pair, "trip_distance": 1.0} for pair in ("74_75", "75_74", "41_42")])


# A right and a wrong answer for every exercise, and what its check is passed where the data decides it.
CASES = {
    "01.maturity": dict(right=0, wrong=3, context={}),
    "02.n_pairs": dict(right=3, wrong=4, context={"vectorizer": VECTORIZER}),
    # Trials of 6.80, 6.85 and 6.90 minutes against a best of 6.80: two within 1%.
    "03.near_best": dict(
        right=2, wrong=3, context={"trial_runs": pd.DataFrame({"metrics.rmse": [6.80, 6.85, 6.90]}), "best_rmse": 6.80}
    ),
    "04.version_served": dict(right=3, wrong=4, context={}),
    "05.auto_month": dict(right="2024-04", wrong="2024-05", context={}),
    # Two of the four rides missed by more than 10 minutes, one each way.
    "06.miss_share": dict(right=0.5, wrong=2, context={"judged": pd.DataFrame({"diff": [1.0, 11.0, -12.5, 3.0]})}),
    "07.mode": dict(right="streaming", wrong="online", context={}),
    "09.delete_status": dict(right=403, wrong=401, context={}),
    "10.longer_ride": dict(right=10.0, wrong=5.0, context={"model": TwoAndAHalfMinutesAMile()}),
}
# Exercises where the learner writes a function: their checks run it (tests/test_code_checks.py,
# and tests/test_team_server.py against a real team server); here, what every one says to a stub.
CODING = {name for name, exercise in EXERCISES.items() if exercise.verify}


def test_every_exercise_has_a_case():
    assert set(CASES) | CODING == set(EXERCISES)


def stub(*args):
    """A notebook's stub, unfilled."""
    ...


@pytest.mark.parametrize("exercise_id", sorted(CODING))
def test_a_coding_exercise_left_as_its_stub_is_not_attempted(exercise_id):
    assert check(exercise_id, stub, server=None).status == NOT_ATTEMPTED
    assert check(exercise_id, None, server=None).status == NOT_ATTEMPTED


@pytest.mark.parametrize("exercise_id", sorted(CODING))
def test_a_coding_exercise_answered_with_a_value_asks_for_the_function(exercise_id):
    feedback = check(exercise_id, "EDIT", server=None)
    assert feedback.status == INCORRECT and "pass the function itself" in feedback.message


def test_a_check_that_cannot_reach_its_server_says_so_instead_of_raising():
    def grant(auth, username, experiment_id):
        auth.grant_user_permission(username, "experiment", experiment_id, "EDIT")

    feedback = check("09.grant", grant, server=None)
    assert feedback.status == INCORRECT and "Could not run the check" in feedback.message


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_unanswered_is_not_attempted_and_repeats_the_question(exercise_id):
    feedback = check(exercise_id, None, **CASES[exercise_id]["context"])
    assert feedback.status == NOT_ATTEMPTED
    assert EXERCISES[exercise_id].question in repr(feedback)


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_right_answer_is_accepted(exercise_id):
    case = CASES[exercise_id]
    assert check(exercise_id, case["right"], **case["context"]).status == CORRECT


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_wrong_answer_is_rejected_with_a_hint(exercise_id):
    case = CASES[exercise_id]
    feedback = check(exercise_id, case["wrong"], **case["context"])
    assert feedback.status == INCORRECT
    assert "Not quite" in feedback.message


def test_the_validation_month_gets_the_specific_hint():
    assert "validates on" in check("05.auto_month", "2024-05").message


def test_an_answer_of_the_wrong_type_gets_a_hint_not_a_traceback():
    assert check("05.auto_month", 202404).status == INCORRECT


def test_a_number_typed_with_spaces_is_read_as_a_number():
    assert check("02.n_pairs", " 3 ", vectorizer=VECTORIZER).status == CORRECT


def test_data_dependent_exercise_without_its_data_is_a_notebook_bug():
    with pytest.raises(ValueError, match="computes its answer from the data"):
        check("02.n_pairs", 5)


def test_no_check_is_handed_its_answer():
    assert "expected" not in inspect.signature(check).parameters


def test_solution_is_code():
    assert solution("01.maturity") == "answer = 0"
