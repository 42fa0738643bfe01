"""Instant feedback for the exercises, in the spirit of Kaggle's learntools.

Each exercise is declared as data: the question, the expected value (or one computed by the
notebook from the data it really loaded), a tolerance, and hints for the usual wrong answers.
A check never raises: an unanswered exercise says so, a wrong one gets a specific hint. The
exercises where the learner writes code run it through :mod:`helpers.code_checks`.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers import code_checks
from helpers.feedback import CORRECT, INCORRECT, NOT_ATTEMPTED, Feedback

__all__ = ["CORRECT", "EXERCISES", "INCORRECT", "NOT_ATTEMPTED", "Exercise", "Feedback", "check", "solution"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: what is asked, what is right, and what to say when it is not.

    ``hints`` pairs a test on a wrong answer with the hint it earns; the first that matches is
    shown, else ``hint``. ``expected`` may be left ``None`` when the notebook computes it. An
    exercise where the learner writes a function has ``verify``: it runs the function in isolation
    and returns the feedback itself.
    """

    question: str
    hint: str
    solution: str
    expected: Any = None
    tolerance: float = 0.0
    hints: tuple[tuple[Callable[[Any], bool], str], ...] = field(default_factory=tuple)
    verify: Callable[..., Feedback] | None = None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _matches(answer: Any, expected: Any, tolerance: float) -> bool:
    if isinstance(expected, str):
        return isinstance(answer, str) and answer.strip().lower() == expected.strip().lower()
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return answer == expected
    number = _number(answer)
    return number is not None and math.isclose(number, expected, rel_tol=0, abs_tol=tolerance)


def _safe(test: Callable[[Any], bool], answer: Any) -> bool:
    # A hint's test must never turn a learner's odd answer into a traceback.
    try:
        return bool(test(answer))
    except Exception:
        return False


def _between(low: float, high: float) -> Callable[[Any], bool]:
    return lambda answer: _number(answer) is not None and low <= _number(answer) <= high


EXERCISES: dict[str, Exercise] = {
    "01.month_url": Exercise(
        question="Write month_url(color, year, month) returning the TLC's download URL of that month's file, "
                 "e.g. month_url('green', 2021, 1).",
        hint="The pattern is in the markdown above: base URL, then {color}_tripdata_{YYYY-MM}.parquet.",
        solution='def month_url(color, year, month):\n'
                 '    return f"https://d37ci6vzurychx.cloudfront.net/trip-data/{color}_tripdata_{year}-{month:02d}.parquet"',
        verify=code_checks.verify_month_url,
    ),
    "01.maturity": Exercise(
        question=(
            "A team trains models in notebooks, hands a pickle to engineers who deploy it by hand, "
            "and tracks nothing. Which MLOps maturity level (0-4) is it at?"
        ),
        expected=0,
        hint="Without any automation or experiment tracking a team is at the very first level.",
        solution="answer = 0",
        hints=(
            (lambda a: _number(a) == 1, "Level 1 already automates releases with DevOps (CI, tests); this team does not."),
            (lambda a: _number(a) is not None and _number(a) >= 2, "Levels 2 and above need at least automated training and tracked experiments."),
        ),
    ),
    "02.keep_rides": Exercise(
        question="Write keep_rides(df) that adds `duration` (minutes from lpep_pickup_datetime to "
                 "lpep_dropoff_datetime) to a green trip frame and returns only the rides of 1 to 60 minutes, "
                 "both included.",
        hint="(dropoff - pickup).dt.total_seconds() / 60, then keep df[df.duration.between(1, 60)].",
        solution='def keep_rides(df):\n'
                 '    df = df.copy()\n'
                 '    df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds() / 60\n'
                 '    return df[(df.duration >= 1) & (df.duration <= 60)]',
        verify=code_checks.verify_keep_rides,
    ),
    "02.n_features": Exercise(
        question="How many columns does the fitted DictVectorizer produce (its feature count)?",
        hint="A fitted DictVectorizer knows its columns: len(pipeline['vectorizer'].feature_names_).",
        solution="answer = len(pipeline['vectorizer'].feature_names_)",
        hints=(
            (lambda a: _number(a) == 2, "Each distinct PU_DO pair becomes its own column; count them all."),
        ),
    ),
    "03.log_run": Exercise(
        question="Write log_run(df_train, df_val): in one MLflow run, train a pipeline, log at least one "
                 "param, its validation RMSE as the metric `rmse` and the model with mlflow.sklearn.log_model; "
                 "return the run's id.",
        hint="with mlflow.start_run() as run: fit, log_param, log_metric('rmse', ...), "
             "mlflow.sklearn.log_model(...); then return run.info.run_id.",
        solution='def log_run(df_train, df_val):\n'
                 '    with mlflow.start_run() as run:\n'
                 '        pipeline = make_pipeline(features.RideFeatures(), DictVectorizer(), Ridge(alpha=10.0))\n'
                 '        pipeline.fit(df_train, df_train["duration"])\n'
                 '        mlflow.log_param("alpha", 10.0)\n'
                 '        mlflow.log_metric("rmse", root_mean_squared_error(df_val["duration"], pipeline.predict(df_val)))\n'
                 '        mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=tracking.pip_requirements(),\n'
                 '                                 skops_trusted_types=tracking.SKOPS_TRUSTED_TYPES)\n'
                 '    return run.info.run_id',
        verify=code_checks.verify_log_run,
    ),
    "03.l1_param": Exercise(
        question="In the course's search space, which XGBoost parameter is the L1 regularisation?",
        expected="reg_alpha",
        hint="Look at boosting.SEARCH_SPACE: two parameters start with reg_.",
        solution='answer = "reg_alpha"',
        hints=((lambda a: str(a).strip().lower() == "reg_lambda", "reg_lambda is the L2 penalty; L1 is the other one."),),
    ),
    "04.register": Exercise(
        question="Write register_champion(model_uri, name): register the model as a new version of `name`, "
                 "point the alias `champion` at that version and return it.",
        hint="version = mlflow.register_model(model_uri, name), then "
             "MlflowClient().set_registered_model_alias(name, 'champion', version.version).",
        solution='def register_champion(model_uri, name):\n'
                 '    version = mlflow.register_model(model_uri, name)\n'
                 '    MlflowClient().set_registered_model_alias(name, "champion", version.version)\n'
                 '    return version',
        verify=code_checks.verify_register_champion,
    ),
    "04.alias": Exercise(
        question="Which alias does the web service load, models:/nyc-taxi-duration@...?",
        expected="champion",
        hint="Two aliases are in play; the server loads the one that has won.",
        solution='answer = "champion"',
        hints=((lambda a: str(a).strip().lower() == "challenger", "The challenger has not won yet; servers load the winner."),),
    ),
    "05.sets_test": Exercise(
        question="Write test_sets(sets, *args), a Mage @test for build_sets' output: it passes a good batch and "
                 "fails (assert) when a split is missing or a duration is outside 1-60 minutes.",
        hint="Two asserts: set(sets['split']) == {'train', 'validation'}, and sets['duration'].between(1, 60).all().",
        solution='def test_sets(sets, *args):\n'
                 '    assert set(sets["split"]) == {"train", "validation"}, f"splits: {sorted(set(sets[\'split\']))}"\n'
                 '    assert sets["duration"].between(1, 60).all(), "a duration is outside 1-60 minutes"',
        verify=code_checks.verify_sets_test,
    ),
    "05.auto_month": Exercise(
        question="The retrain_monthly trigger starts a run on 1 June 2024 with train_month: auto. "
                 "Which month does that run train on (YYYY-MM)?",
        expected="2024-04",
        hint="pipelines.RunSettings.from_variables({'train_month': 'auto', 'execution_date': ...}) answers it; "
             "it validates on the newest complete month and trains on the one before.",
        solution='answer = pipelines.month_label(pipelines.RunSettings.from_variables(\n'
                 '    {"train_month": "auto", "execution_date": "2024-06-01T00:00:00"}).train)',
        hints=(
            (lambda a: str(a).strip() == "2024-05", "May is the month that run validates on; it trains on the one before."),
            (lambda a: str(a).strip() == "2024-06", "June has only just begun: its file is neither complete nor published."),
        ),
    ),
    "06.predict_route": Exercise(
        question="Write create_app(model): a Flask app whose POST /predict answers {\"duration\": <minutes>} "
                 "for a ride from model.predict, and a 4xx with {\"error\": ...}, without asking the model, "
                 "when trip_distance is missing or negative.",
        hint="@app.route('/predict', methods=['POST']); read request.get_json(); if the distance is missing "
             "or below 0, return jsonify(error=...), 422; else return jsonify(duration=float(model.predict(...)[0])).",
        solution='def create_app(model):\n'
                 '    app = Flask("duration-prediction")\n'
                 '\n'
                 '    @app.route("/predict", methods=["POST"])\n'
                 '    def predict():\n'
                 '        ride = request.get_json()\n'
                 '        distance = ride.get("trip_distance")\n'
                 '        if not isinstance(distance, int | float) or distance < 0:\n'
                 '            return jsonify(error=f"trip_distance must be a number >= 0, got {distance!r}"), 422\n'
                 '        return jsonify(duration=float(model.predict(pd.DataFrame([ride]))[0]))\n'
                 '\n'
                 '    return app',
        verify=code_checks.verify_predict_route,
    ),
    "06.mode": Exercise(
        question="Scoring every trip of last month overnight for a report: batch, online or streaming?",
        expected="batch",
        hint="Nobody waits for these answers, and the data is all there already.",
        solution='answer = "batch"',
        hints=(
            (lambda a: str(a).strip().lower() == "online", "Online is for a client waiting on each answer."),
            (lambda a: str(a).strip().lower() == "streaming", "Streaming is for events that keep arriving."),
        ),
    ),
    "07.column_scores": Exercise(
        question="Write column_scores(result): from a report's result (snapshot.dict()), return {column: drift score} "
                 "for every ValueDrift metric in it.",
        hint="Loop over result['metrics']; keep those whose config 'type' ends with ':ValueDrift'; "
             "the key is metric['config']['column'], the score metric['value'].",
        solution='def column_scores(result):\n'
                 '    return {metric["config"]["column"]: metric["value"] for metric in result["metrics"]\n'
                 '            if metric["config"]["type"].endswith(":ValueDrift")}',
        verify=code_checks.verify_column_scores,
    ),
    "07.rule_fires": Exercise(
        question="Write fires(value, threshold), the course's alert rule: True when the value reaches the threshold; "
                 "False when there is no value (None).",
        hint="return value is not None and value >= threshold",
        solution='def fires(value, threshold):\n'
                 '    return value is not None and value >= threshold',
        verify=code_checks.verify_rule_fires,
    ),
    "08.grant": Exercise(
        question=("Write grant_review(auth, username, experiment_id) so that the reviewer `username` can tag "
                  "the runs of that experiment, and nothing more."),
        hint="Tagging a run needs EDIT on its experiment: auth.grant_user_permission(username, 'experiment', "
             "experiment_id, 'EDIT').",
        solution='def grant_review(auth, username, experiment_id):\n'
                 '    auth.grant_user_permission(username, "experiment", experiment_id, "EDIT")',
        verify=lambda grant, server: code_checks.verify_review_grant(grant, server, EXERCISES["08.grant"].hint),
    ),
    "08.delete_status": Exercise(
        question="The reviewer, logged in with READ, tries to delete the data scientist's experiment. "
                 "Which HTTP status does the server answer?",
        expected=403,
        hint="The server knows who he is, and refuses: that is the 4xx for 'forbidden'.",
        solution="answer = 403",
        hints=(
            (lambda a: _number(a) == 401, "401 means the server does not know who you are; he logged in."),
            (lambda a: _number(a) == 200, "READ lets him look, not delete."),
        ),
    ),
}


def _is_stub(function: Callable) -> bool:
    """True for the notebook's stub: a body of only a docstring, ``...``, ``pass`` or comments."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.FunctionDef) else []
    return bool(body) and all(isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(
        node.value, ast.Constant) and (node.value.value is Ellipsis or isinstance(node.value.value, str)))
        for node in body)


def check(exercise_id: str, answer: Any, expected: Any = None, **context: Any) -> Feedback:
    """Check a learner's answer and say what to do next; never raises on a wrong answer.

    Args:
        exercise_id: Key in :data:`EXERCISES`, e.g. ``"01.maturity"``.
        answer: The learner's answer (a function, for a coding exercise); ``None`` or the notebook's
            stub means not attempted yet.
        expected: The right answer when it depends on the data the notebook loaded.
        context: What a coding exercise's check needs, e.g. ``server=`` the team server.

    Returns:
        Feedback whose status is ``"not attempted"``, ``"correct"`` or ``"incorrect"``.
    """
    exercise = EXERCISES[exercise_id]
    if answer is None or (exercise.verify and callable(answer) and _is_stub(answer)):
        return Feedback(NOT_ATTEMPTED, f"Not attempted yet. {exercise.question}")
    if exercise.verify:
        if not callable(answer):
            return Feedback(INCORRECT, "Not quite: pass the function itself (its name, without calling it).")
        try:
            return exercise.verify(answer, **context)
        except Exception as error:  # noqa: BLE001 - a check never raises; the reason is shown instead
            return Feedback(INCORRECT, f"Could not run the check ({type(error).__name__}: {error}); "
                                       "did every cell above it run?")
    right = exercise.expected if expected is None else expected
    if right is None:
        raise ValueError(f"exercise {exercise_id!r} has no fixed answer; pass expected= computed from the data")
    if _matches(answer, right, exercise.tolerance):
        return Feedback(CORRECT, "Correct!")
    for test, hint in exercise.hints:
        if _safe(test, answer):
            return Feedback(INCORRECT, f"Not quite: {hint}")
    return Feedback(INCORRECT, f"Not quite. Hint: {exercise.hint}")


def solution(exercise_id: str) -> str:
    """The code that answers an exercise, for a learner who wants to see it."""
    return EXERCISES[exercise_id].solution
