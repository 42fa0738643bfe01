"""The code-writing exercises: each check accepts its solution, gives the specific
hint to a typical wrong answer, and leaves the learner's MLflow state exactly as it found it."""

import ast
import importlib
import os
import sys

import mlflow
import nbformat
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

from helpers.course.checks import CORRECT, INCORRECT, NOT_ATTEMPTED, check, solution
from helpers.course.isolation import isolated_tracking
from helpers.course.runner import find_chapters, notebooks_dir
from helpers.ml import tracking, training
from tests.support import TwoAndAHalfMinutesAMile, write_chapter_file


def notebook_names(exercise_id: str) -> dict:
    """What the exercise's chapter has imported by the time its check cell runs: its solution must
    work with those names alone, as a learner pastes it."""
    path = next(path for path in find_chapters(notebooks_dir()) if path.stem.startswith(exercise_id[:2]))
    namespace: dict = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        if f'check("{exercise_id}"' in cell.source:
            return namespace
        if cell.source.lstrip().startswith("%%"):  # a file the cell writes, not the kernel's imports
            continue
        # A shell or magic line becomes a `pass` at its indentation, so that a block it alone filled still parses.
        source = "\n".join(
            line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
            for line in cell.source.splitlines()
        )
        imports = [node for node in ast.parse(source).body if isinstance(node, ast.Import | ast.ImportFrom)]
        exec(compile(ast.Module(imports, type_ignores=[]), path.name, "exec"), namespace)  # noqa: S102
    raise LookupError(f"{path.name} has no check cell for {exercise_id}")


def solved(exercise_id: str):
    namespace = notebook_names(exercise_id)
    imported = set(namespace)
    exec(solution(exercise_id), namespace)  # noqa: S102 - the solution a learner is shown
    return next(value for name, value in namespace.items() if name not in imported and callable(value))


def fluent_state() -> dict:
    active = mlflow.active_run()
    return {
        "tracking_uri": mlflow.get_tracking_uri(),
        "registry_uri": mlflow.get_registry_uri(),
        "experiment_id": mlflow.tracking.fluent._get_experiment_id(),
        "active_run": active.info.run_id if active else None,
        "variables": {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")},
        "cwd": os.getcwd(),
    }


@pytest.fixture
def learner(store):
    """The learner's kernel: the course store, an experiment of their own, a run left open."""
    experiment = tracking.use_experiment("learner-experiment")
    with mlflow.start_run(run_name="learner-open-run"):
        yield experiment
    mlflow.set_experiment(tracking.EXPERIMENT_NAME)


def learner_runs(experiment) -> int:
    return len(MlflowClient().search_runs([experiment.experiment_id]))


# --- 01 ------------------------------------------------------------------------------------------


def test_the_month_url_check_accepts_its_solution():
    assert check("01.month_url", solved("01.month_url")).status == CORRECT


def test_a_month_url_without_two_digit_months_gets_that_hint():
    def month_url(color, year, month):
        return f"https://d37ci6vzurychx.cloudfront.net/trip-data/{color}_tripdata_{year}-{month}.parquet"

    feedback = check("01.month_url", month_url)
    assert feedback.status == INCORRECT and "two digits" in feedback.message


def test_a_month_url_that_raises_gets_its_error_not_a_traceback():
    def month_url(color, year, month):
        return color + year

    feedback = check("01.month_url", month_url)
    assert feedback.status == INCORRECT and "raised TypeError" in feedback.message


# --- 02 ------------------------------------------------------------------------------------------


def test_the_duration_filter_check_accepts_its_solution():
    assert check("02.keep_rides", solved("02.keep_rides")).status == CORRECT


def test_a_filter_that_drops_the_boundaries_gets_the_both_ends_hint():
    def keep_rides(df):
        df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds() / 60
        return df[(df.duration > 1) & (df.duration < 60)]

    feedback = check("02.keep_rides", keep_rides)
    assert feedback.status == INCORRECT and "both ends are included" in feedback.message


def test_a_duration_in_seconds_gets_the_minutes_hint():
    def keep_rides(df):
        df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds()
        return df[df.duration.between(60, 3600)]

    feedback = check("02.keep_rides", keep_rides)
    assert feedback.status == INCORRECT and "seconds" in feedback.message


# --- 03 ------------------------------------------------------------------------------------------


def test_the_log_run_check_accepts_its_solution_and_leaves_the_learners_state_alone(learner, months):
    df_train, df_val, _ = months
    before, runs_before = fluent_state(), learner_runs(learner)

    assert check("03.log_run", solved("03.log_run"), df_train=df_train, df_val=df_val).status == CORRECT
    assert fluent_state() == before
    assert learner_runs(learner) == runs_before


def test_an_invented_rmse_is_caught_by_scoring_the_logged_model(learner, months):
    def log_run(df_train, df_val):
        with mlflow.start_run() as run:
            pipeline = training.train_pipeline(LinearRegression(), df_train)
            mlflow.log_param("estimator", "LinearRegression")
            mlflow.log_metric("rmse", 7.5)
            mlflow.sklearn.log_model(
                pipeline,
                name="model",
                skops_trusted_types=tracking.SKOPS_TRUSTED_TYPES,
                pip_requirements=tracking.pip_requirements(),
            )
        return run.info.run_id

    feedback = check("03.log_run", log_run, df_train=months[0], df_val=months[1])
    assert feedback.status == INCORRECT and "the model it logged scores" in feedback.message


def test_a_run_left_open_gets_that_hint_and_is_closed_in_the_checks_store(learner, months):
    def log_run(df_train, df_val):
        run = mlflow.start_run()
        mlflow.log_param("estimator", "none")
        return run.info.run_id

    before = fluent_state()
    feedback = check("03.log_run", log_run, df_train=months[0], df_val=months[1])
    assert feedback.status == INCORRECT and "still open" in feedback.message
    assert fluent_state() == before


def test_a_pipeline_logged_without_trusting_its_features_gets_the_skops_hint(learner, months):
    def log_run(df_train, df_val):
        with mlflow.start_run() as run:
            pipeline = training.train_pipeline(LinearRegression(), df_train)
            mlflow.log_metric("rmse", training.evaluate(pipeline, df_val))
            mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=tracking.pip_requirements())
        return run.info.run_id

    feedback = check("03.log_run", log_run, df_train=months[0], df_val=months[1])
    assert feedback.status == INCORRECT and "skops_trusted_types" in feedback.message


def test_an_isolated_store_writes_nothing_where_the_kernel_runs(learner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with isolated_tracking() as uri:
        mlflow.set_experiment("created-by-the-learners-code")
        with mlflow.start_run():
            mlflow.log_text("x", "note.txt")
        assert uri != learner.artifact_location
    assert list(tmp_path.iterdir()) == []


# --- 04 ------------------------------------------------------------------------------------------


def test_the_register_check_accepts_its_solution_and_leaves_the_learners_state_alone(learner):
    before = fluent_state()

    assert check("04.register", solved("04.register")).status == CORRECT
    assert fluent_state() == before
    assert not MlflowClient().search_registered_models("name = 'check-model'")


def test_moving_a_stage_instead_of_an_alias_gets_the_legacy_hint(learner):
    def register_champion(model_uri, name):
        version = mlflow.register_model(model_uri, name)
        MlflowClient().transition_model_version_stage(name, version.version, "Production")
        return version

    with pytest.warns(FutureWarning):
        feedback = check("04.register", register_champion)
    assert feedback.status == INCORRECT and "legacy" in feedback.message


def test_an_alias_that_stays_on_the_first_version_gets_that_hint(learner):
    def register_champion(model_uri, name):
        version = mlflow.register_model(model_uri, name)
        if str(version.version) == "1":
            MlflowClient().set_registered_model_alias(name, "champion", version.version)
        return version

    feedback = check("04.register", register_champion)
    assert feedback.status == INCORRECT and "still points at version 1" in feedback.message


# --- 05 ------------------------------------------------------------------------------------------

STUB_BLOCK = """if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer
if "test" not in globals():
    from mage_ai.data_preparation.decorators import test


@transformer
def build_sets(prepared, *args, **kwargs):
    ...  # your code here


@test
def test_sets(sets, *args):
    ...  # your code here
"""


def block_attempt(source: str, *, run: bool):
    """The learner's path: a fresh copy of the project, the block written into it, its pipeline run with
    ``mage run`` when ``run``; returns what the notebook passes the check."""
    from helpers.core import config
    from helpers.orchestrate import mage

    project = mage.copy_project(config.build_dir() / "05_orchestration" / "project")
    block_file = project / "transformers" / "build_sets.py"
    block_file.write_text(source)
    pipeline_run = mage.run_pipeline("data_preparation", project=project) if run else None
    return block_file, pipeline_run


def test_the_untouched_block_stub_is_not_attempted():
    load, _ = block_attempt(STUB_BLOCK, run=False)
    assert check("05.sets_block", load, run=None).status == NOT_ATTEMPTED


@pytest.mark.parametrize(
    "source, words",
    [
        ("def build_sets(:\n", "could not load your block file: SyntaxError"),
        ("def build_sets(prepared):\n    return prepared\n", "decorate build_sets with @transformer"),
        (STUB_BLOCK.split("@test")[0].replace("...  # your code here", "return prepared"), "has no @test"),
        (solution("05.sets_block"), "run the copy's pipeline again"),
    ],
    ids=["syntax-error", "no-decorator", "no-test", "never-run"],
)
def test_a_block_that_mage_cannot_or_did_not_run_gets_that_hint(source, words):
    load, _ = block_attempt(source, run=False)
    feedback = check("05.sets_block", load, run=None)
    assert feedback.status == INCORRECT and words in feedback.message


@pytest.mark.mage
@pytest.mark.servers
def test_the_sets_block_check_accepts_its_solution_run_by_mage():
    load, run = block_attempt(solution("05.sets_block"), run=True)
    assert check("05.sets_block", load, run=run).status == CORRECT


@pytest.mark.mage
@pytest.mark.servers
def test_a_block_whose_test_fails_good_sets_in_mage_is_told_what_mage_reported():
    load, run = block_attempt(solution("05.sets_block").replace("between(1, 60)", "between(1, 30)"), run=True)
    feedback = check("05.sets_block", load, run=run)
    assert feedback.status == INCORRECT
    assert "Mage ran build_sets.test_sets on the real sets and it failed" in feedback.message
    assert "AssertionError: a duration is outside 1-60 minutes" in feedback.message


# --- 06 ------------------------------------------------------------------------------------------


def scored_by_hand():
    """The solution a learner is shown, wrapped to return a changed copy of its answer."""
    score_rides = solved("06.score_rides")

    def changing(change):
        def score(rides, model, year, month):
            scored = score_rides(rides, model, year, month)
            return change(scored) if change else scored

        return score

    return changing


def test_the_score_rides_check_accepts_its_solution():
    assert check("06.score_rides", scored_by_hand()(None)).status == CORRECT


def test_scoring_only_the_rides_of_1_to_60_minutes_gets_the_score_every_ride_hint():
    feedback = check("06.score_rides", scored_by_hand()(lambda df: df[df["actual_duration"].between(1, 60)]))
    assert feedback.status == INCORRECT and "a batch job scores every ride" in feedback.message


def test_ride_ids_without_two_digit_months_get_the_format_hint():
    def unpadded(df):
        return df.assign(ride_id="2021/3_" + df.index.astype(str))

    feedback = check("06.score_rides", scored_by_hand()(unpadded))
    assert feedback.status == INCORRECT and "'2021/3_0', not '2021/03_0'" in feedback.message


def test_a_diff_the_wrong_way_round_gets_that_hint():
    feedback = check("06.score_rides", scored_by_hand()(lambda df: df.assign(diff=-df["diff"])))
    assert feedback.status == INCORRECT and "the other way round" in feedback.message


def test_durations_in_seconds_get_the_minutes_hint():
    seconds = scored_by_hand()(lambda df: df.assign(actual_duration=df["actual_duration"] * 60))
    feedback = check("06.score_rides", seconds)
    assert feedback.status == INCORRECT and "divide by 60" in feedback.message


# --- 08 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored_months():
    """Two twin months with every monitored column and a made-up prediction, as chapter 08 scores them."""
    from helpers.core import twin

    def scored(month: int):
        df = twin.make_twin("green", 2021, month, n_rows=3_000).to_pandas()
        return df.assign(predicted_duration=5 + 2.5 * df["trip_distance"].clip(0, 50))

    return scored(3), scored(2)


def test_the_column_scores_check_accepts_its_solution(scored_months):
    current, reference = scored_months
    assert check("08.column_scores", solved("08.column_scores"), current=current, reference=reference).status == CORRECT


def test_returning_the_tests_verdicts_gets_the_score_hint(scored_months):
    def column_scores(result):
        return {
            test["metric_config"]["params"]["column"]: test["status"].value == "FAIL"
            for test in result["tests"]
            if test["metric_config"]["params"]["type"].endswith(":ValueDrift")
        }

    feedback = check("08.column_scores", column_scores, current=scored_months[0], reference=scored_months[1])
    assert feedback.status == INCORRECT and "verdicts" in feedback.message


def test_keeping_every_metric_gets_the_valuedrift_hint(scored_months):
    def column_scores(result):
        return {metric["metric_name"]: metric["value"] for metric in result["metrics"]}

    feedback = check("08.column_scores", column_scores, current=scored_months[0], reference=scored_months[1])
    assert feedback.status == INCORRECT and ":ValueDrift" in feedback.message


def test_the_rule_check_accepts_its_solution():
    assert check("08.rule_fires", solved("08.rule_fires")).status == CORRECT


def test_a_rule_with_evidentlys_strict_comparison_gets_the_threshold_hint():
    feedback = check("08.rule_fires", lambda value, threshold: value is not None and value > threshold)
    assert feedback.status == INCORRECT and "reaches its threshold" in feedback.message


def test_a_rule_that_compares_none_gets_the_no_value_hint():
    feedback = check("08.rule_fires", lambda value, threshold: value >= threshold)
    assert feedback.status == INCORRECT and "None" in feedback.message


# --- 07 ------------------------------------------------------------------------------------------


def solved_route():
    """``create_app`` from the solution a learner is shown, with the names chapter 07 imported for it."""
    return solved("07.predict_route")


def route_app(route_body):
    """``create_app(model)`` whose POST /predict runs ``route_body(model, ride)``."""
    import pandas as pd
    from flask import Flask, jsonify, request

    def create_app(model):
        app = Flask("learner")

        @app.route("/predict", methods=["POST"])
        def predict():
            return route_body(model, request.get_json(), jsonify, pd)

        return app

    return create_app


def test_the_route_check_accepts_its_solution():
    assert check("07.predict_route", solved_route()).status == CORRECT


def test_the_route_stub_is_not_attempted():
    from helpers.course.checks import NOT_ATTEMPTED

    def create_app(model): ...  # your code here

    assert check("07.predict_route", create_app).status == NOT_ATTEMPTED


def test_a_route_without_validation_gets_the_check_first_hint():
    def no_checks(model, ride, jsonify, pd):
        return jsonify(duration=float(model.predict(pd.DataFrame([ride]))[0]))

    feedback = check("07.predict_route", route_app(no_checks))
    assert feedback.status == INCORRECT and "a negative trip_distance got 200" in feedback.message


def test_a_route_that_checks_only_the_sign_gets_the_500_hint():
    def sign_only(model, ride, jsonify, pd):
        if ride["trip_distance"] < 0:
            return jsonify(error="negative"), 422
        return jsonify(duration=float(model.predict(pd.DataFrame([ride]))[0]))

    feedback = check("07.predict_route", route_app(sign_only))
    assert feedback.status == INCORRECT
    assert "no trip_distance made your route raise KeyError" in feedback.message and "500" in feedback.message


def test_a_get_only_route_gets_the_methods_hint():
    from flask import Flask

    def create_app(model):
        app = Flask("learner")
        app.add_url_rule("/predict", "predict", lambda: "?")
        return app

    feedback = check("07.predict_route", create_app)
    assert feedback.status == INCORRECT and "methods=['POST']" in feedback.message


def test_a_route_that_raises_gets_its_error_not_a_traceback():
    def broken(model, ride, jsonify, pd):
        raise ZeroDivisionError("oops")

    feedback = check("07.predict_route", route_app(broken))
    assert feedback.status == INCORRECT and "ZeroDivisionError: oops" in feedback.message


# --- 10.unit_test: the learner's test must pass on the real prepare_features and fail on broken ones


@pytest.fixture
def prepare_features(tmp_path, monkeypatch):
    """The chapter's prepare_features, imported from the model_service.py it writes, as its kernel does."""
    write_chapter_file("10", "model_service.py", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "model_service", raising=False)
    return importlib.import_module("model_service").prepare_features


def learner_test(source: str, prepare_features):
    namespace = {"prepare_features": prepare_features}
    exec(source, namespace)  # noqa: S102 - a test as a learner writes it in the cell
    return next(value for name, value in namespace.items() if name.startswith("test_"))


def test_the_unit_test_solution_passes_the_real_function_and_fails_every_broken_one(prepare_features):
    test = learner_test(solution("10.unit_test"), prepare_features)
    assert check("10.unit_test", test, prepare_features=prepare_features).status == CORRECT


# Weak tests a learner writes, each with the broken version it lets through.
WEAK_TESTS = {
    "swaps the pick-up and drop-off zones": (
        "def test_types():\n"
        "    features = prepare_features({'PULocationID': 1, 'DOLocationID': 2, 'trip_distance': 3.5})\n"
        "    assert list(features.dtypes.astype(str)) == ['int64', 'int64', 'float64']\n"
    ),
    "cuts the distance to whole miles": (
        "def test_values():\n"
        "    ride = {'PULocationID': 1, 'DOLocationID': 2, 'trip_distance': 3.0}\n"
        "    assert prepare_features(ride).to_dict('records') == [ride]\n"
    ),
}


@pytest.mark.parametrize("missed", sorted(WEAK_TESTS))
def test_a_weak_unit_test_is_told_which_broken_version_it_let_through(prepare_features, missed):
    test = learner_test(WEAK_TESTS[missed], prepare_features)
    feedback = check("10.unit_test", test, prepare_features=prepare_features)
    assert feedback.status == INCORRECT and missed in feedback.message


def test_a_unit_test_that_fails_on_the_real_function_is_told_so(prepare_features):
    test = learner_test(
        "def test_wrong():\n    assert prepare_features({'PULocationID': 1}) is None\n", prepare_features
    )
    feedback = check("10.unit_test", test, prepare_features=prepare_features)
    assert feedback.status == INCORRECT and "fails on the real prepare_features (KeyError" in feedback.message


def test_the_unit_test_stub_is_not_attempted(prepare_features):
    def test_prepare_features(): ...  # your code here

    assert check("10.unit_test", test_prepare_features, prepare_features=prepare_features).status == NOT_ATTEMPTED


def test_the_check_calls_the_function_through_model_service_too(prepare_features):
    test = learner_test(
        "import model_service\n"
        "def test_through_the_module():\n"
        "    ride = {'PULocationID': 130, 'DOLocationID': 205, 'trip_distance': 3.66}\n"
        "    assert model_service.prepare_features(ride).to_dict('records') == [ride]\n",
        prepare_features,
    )
    assert check("10.unit_test", test, prepare_features=prepare_features).status == CORRECT


def test_the_longer_ride_is_the_models_difference_between_6_and_2_miles():
    model = TwoAndAHalfMinutesAMile()
    assert check("10.longer_ride", 10.0, model=model).status == CORRECT
    assert check("10.longer_ride", -10.0, model=model).message.startswith("Not quite: a longer ride")
