"""Run a learner's function for a code-writing exercise, in isolation, and say what it got wrong.

Each ``verify_*`` takes the learner's function (and what the notebook passes as context) and
returns :class:`~helpers.feedback.Feedback`. Those that touch MLflow run it inside
:func:`isolated_tracking`: a fresh store of its own, so the learner's experiment keeps only their
real runs, and afterwards the kernel's tracking URI, experiment, active run and model are exactly
as they were.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.feedback import Feedback, right, wrong

_MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID",
                     "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_ACTIVE_MODEL_ID",
                     "_MLFLOW_ACTIVE_MODEL_ID")


@dataclass(frozen=True)
class _FluentState:
    """Everything MLflow's fluent API remembers between calls. MLflow has no public way to save and
    restore it, so this reads the module globals its own setters write."""

    variables: dict[str, str | None]
    tracking_uri: str | None
    registry_uri: str | None
    experiment_id: str | None
    run_stack: list
    last_run_id: str | None
    last_model_id: str | None
    model_context: Any

    @classmethod
    def capture(cls) -> _FluentState:
        from mlflow.tracking import _model_registry, _tracking_service, fluent

        return cls({name: os.environ.get(name) for name in _MLFLOW_VARIABLES},
                   _tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri,
                   fluent._active_experiment_id, list(fluent._active_run_stack.get()),
                   fluent._last_active_run_id.get(), fluent._last_logged_model_id.get(),
                   fluent._ACTIVE_MODEL_CONTEXT.get())

    def restore(self) -> None:
        import mlflow
        from mlflow.tracking import _model_registry, fluent

        # A run the learner's code left open belongs to the check's store: end it there.
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(self.tracking_uri)
        _model_registry.utils._registry_uri = self.registry_uri
        fluent._active_experiment_id = self.experiment_id
        fluent._active_run_stack.set(list(self.run_stack))
        fluent._last_active_run_id.set(self.last_run_id)
        fluent._last_logged_model_id.set(self.last_model_id)
        fluent._ACTIVE_MODEL_CONTEXT.set(self.model_context)
        for name, value in self.variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def isolated_tracking() -> Iterator[str]:
    """A fresh SQLite tracking and registry store in a temporary folder, for the block only.

    The block starts with no active run and an experiment ``check`` whose artifacts live in the same
    folder, which is also the working directory, so even an experiment the learner's code creates
    writes nothing beside the notebook. Yields the store's tracking URI.
    """
    import mlflow
    from mlflow.tracking import fluent

    saved = _FluentState.capture()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="workbook-check-") as folder:
        try:
            os.chdir(folder)
            for name in _MLFLOW_VARIABLES:
                os.environ.pop(name, None)
            fluent._active_run_stack.set([])
            uri = f"sqlite:///{Path(folder, 'mlflow.db')}"
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            experiment_id = mlflow.MlflowClient().create_experiment(
                "check", artifact_location=Path(folder, "artifacts").as_uri())
            mlflow.set_experiment(experiment_id=experiment_id)
            yield uri
        finally:
            saved.restore()
            os.chdir(cwd)


def _raised(error: Exception) -> Feedback:
    return wrong(f"your function raised {type(error).__name__}: {str(error)[:300]}")


# --- 01: the download URL ------------------------------------------------------------------------

_URL_CASES = (("green", 2021, 1), ("yellow", 2023, 11), ("green", 2022, 3))


def verify_month_url(month_url: Callable[[str, int, int], str]) -> Feedback:
    """``month_url(color, year, month)`` must give the TLC's own URL for a few months."""
    from helpers import config, tlc

    for color, year, month in _URL_CASES:
        expected = f"{config.TLC_BASE_URL}/{tlc.trip_filename(color, year, month)}"
        try:
            got = month_url(color, year, month)
        except Exception as error:  # noqa: BLE001 - the learner's code may raise anything
            return _raised(error)
        if got == expected:
            continue
        call = f"month_url({color!r}, {year}, {month})"
        if not isinstance(got, str):
            return wrong(f"{call} returned {got!r}; return the URL as a string.")
        if got.endswith(f"{year}-{month}.parquet"):
            return wrong(f"{call} gave {got!r}: the month has two digits, 03 not 3 (f\"{{month:02d}}\").")
        if not got.startswith(config.TLC_BASE_URL + "/"):
            return wrong(f"{call} gave {got!r}: files live under {config.TLC_BASE_URL}/.")
        return wrong(f"{call} gave {got!r}, expected {expected!r}.")
    return right()


# --- 02: the duration filter ---------------------------------------------------------------------

_MINUTES = (-5.0, 0.5, 1.0, 12.25, 60.0, 61.0, 600.0)
_KEPT = [1.0, 12.25, 60.0]


def _green_rides() -> pd.DataFrame:
    pickup = pd.Timestamp("2021-01-04 08:00")
    return pd.DataFrame({
        "lpep_pickup_datetime": [pickup] * len(_MINUTES),
        "lpep_dropoff_datetime": [pickup + pd.Timedelta(minutes=m) for m in _MINUTES],
        "PULocationID": [74, 75, 41, 42, 166, 7, 129],
        "DOLocationID": [75, 74, 42, 41, 7, 166, 82],
        "trip_distance": [1.0, 0.2, 0.4, 2.5, 14.0, 9.0, 3.0],
    })


def verify_keep_rides(keep_rides: Callable[[pd.DataFrame], pd.DataFrame]) -> Feedback:
    """``keep_rides(df)`` must add ``duration`` in minutes and keep the rides of 1 to 60, both included."""
    try:
        kept = keep_rides(_green_rides())
    except Exception as error:  # noqa: BLE001
        return _raised(error)
    if not isinstance(kept, pd.DataFrame):
        return wrong(f"return the filtered frame, not {type(kept).__name__}.")
    if "duration" not in kept.columns:
        return wrong("the frame you return has no `duration` column: add it, dropoff minus pickup in minutes.")
    durations = sorted(pd.to_numeric(kept["duration"], errors="coerce").round(4).tolist())
    if durations == _KEPT:
        return right()
    asked = f"Rides of {', '.join(f'{m:g}' for m in _MINUTES)} minutes"
    if durations and max(durations) > 60 * 60 - 1:
        return wrong("those durations look like seconds: .dt.total_seconds() / 60 gives minutes.")
    if durations == [12.25]:
        return wrong(f"{asked} kept only 12.25: both ends are included, 1 and 60 minutes stay (between(1, 60)).")
    if durations in ([1.0, 12.25], [12.25, 60.0]):
        return wrong(f"{asked} kept {durations}: both ends are included (>= 1 and <= 60).")
    return wrong(f"{asked} should keep {_KEPT}; yours kept {durations}.")


# --- 03: a tracked run ---------------------------------------------------------------------------

_LOG_RUN_TRAIN_ROWS, _LOG_RUN_VAL_ROWS = 3_000, 1_000


def _predict_rides(model: Any, df_val: pd.DataFrame) -> np.ndarray | None:
    """What a learner's logged sklearn model predicts for ``df_val``: a course pipeline takes the
    frame, a DictVectorizer-first pipeline takes ride dicts; anything else cannot predict from rides."""
    from helpers import features

    for rides in (df_val, features.to_dicts(df_val)):
        try:
            return np.asarray(model.predict(rides), dtype=float)
        except Exception:  # noqa: BLE001 - try the other form a pipeline may take
            continue
    return None


def verify_log_run(log_run: Callable[[pd.DataFrame, pd.DataFrame], str], df_train: pd.DataFrame,
                   df_val: pd.DataFrame) -> Feedback:
    """``log_run(df_train, df_val)`` must record a finished run with a param, the validation RMSE of
    the model it logged as ``rmse``, and that model, and return the run's id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from helpers import features, training

    train = df_train.sample(min(len(df_train), _LOG_RUN_TRAIN_ROWS), random_state=1)
    val = df_val.sample(min(len(df_val), _LOG_RUN_VAL_ROWS), random_state=1)
    with isolated_tracking():
        try:
            run_id = log_run(train, val)
        except Exception as error:  # noqa: BLE001
            if "untrusted types" in str(error):
                return wrong("MLflow refused to save the course's pipeline without trusting its feature "
                             "step: pass skops_trusted_types=tracking.SKOPS_TRUSTED_TYPES to log_model.")
            return _raised(error)
        if not isinstance(run_id, str):
            return wrong(f"return the run's id (run.info.run_id), not {run_id!r}.")
        try:
            run = mlflow.MlflowClient().get_run(run_id)
        except MlflowException:
            return wrong(f"no run {run_id!r} in the store the check gave your function: did it call "
                         "mlflow.set_tracking_uri itself? Leave that to the top of the notebook.")
        if run.info.status != "FINISHED":
            return wrong("the run is still open: log inside `with mlflow.start_run():` so it ends.")
        if not run.data.params:
            return wrong("the run has no parameter: mlflow.log_param('model', ...) or log_params({...}).")
        if "rmse" not in run.data.metrics:
            return wrong(f"the run has no metric named 'rmse' (it has {sorted(run.data.metrics)}).")
        models = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
        if not models:
            return wrong("the run logged no model: mlflow.sklearn.log_model(pipeline, name='model', ...).")
        predicted = _predict_rides(mlflow.sklearn.load_model(models[0].model_uri), val)
    if predicted is None:
        return wrong("the logged model cannot predict from rides: log the whole pipeline, "
                     "DictVectorizer and regressor together.")
    measured = training.rmse(features.target(val), predicted)
    if not np.isclose(run.data.metrics["rmse"], measured, rtol=1e-4):
        return wrong(f"the run's rmse is {run.data.metrics['rmse']:.4f}, but the model it logged scores "
                     f"{measured:.4f} on df_val: log the RMSE of that model on the validation rides.")
    return right()


# --- 04: register and promote --------------------------------------------------------------------

_CHECK_MODEL = "check-model"


def _logged_model_uri(seed: int) -> str:
    """A small real model, logged in the check's store; its URI is what the learner registers."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    from helpers import tracking, training

    rng = np.random.default_rng(seed)
    rides = pd.DataFrame({"PULocationID": rng.integers(1, 20, 50).astype(str),
                          "DOLocationID": rng.integers(1, 20, 50).astype(str),
                          "trip_distance": rng.uniform(0.5, 10, 50)})
    rides["PU_DO"] = rides["PULocationID"] + "_" + rides["DOLocationID"]
    rides["duration"] = 3 + 2.5 * rides["trip_distance"]
    with mlflow.start_run():
        return tracking.log_pipeline(training.train_pipeline(LinearRegression(), rides), rides).model_uri


def verify_register_champion(register_champion: Callable[[str, str], Any]) -> Feedback:
    """``register_champion(model_uri, name)`` must add a version of ``name`` for that model, point the
    alias ``champion`` at it and return it; a second call moves the alias to the second version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with isolated_tracking():
        client = mlflow.MlflowClient()
        for expected_version, seed in (("1", 1), ("2", 2)):
            model_uri = _logged_model_uri(seed)
            try:
                returned = register_champion(model_uri, _CHECK_MODEL)
            except Exception as error:  # noqa: BLE001
                return _raised(error)
            versions = client.search_model_versions(f"name = '{_CHECK_MODEL}'")
            if len(versions) != int(expected_version):
                return wrong(f"after {expected_version} call(s) the model has {len(versions)} version(s): "
                             "register each model_uri once, with mlflow.register_model(model_uri, name).")
            try:
                champion = client.get_model_version_by_alias(_CHECK_MODEL, "champion")
            except MlflowException:
                staged = [v.version for v in versions if v.current_stage != "None"]
                if staged:
                    return wrong("that moved a stage, the legacy way; point the alias instead: "
                                 "client.set_registered_model_alias(name, 'champion', version.version).")
                return wrong("no version has the alias 'champion': "
                             "client.set_registered_model_alias(name, 'champion', version.version).")
            if str(champion.version) != expected_version:
                return wrong(f"after registering version {expected_version}, 'champion' still points at "
                             f"version {champion.version}: point it at the version you just registered.")
            if str(getattr(returned, "version", None)) != expected_version:
                return wrong(f"return the new ModelVersion (version {expected_version}), not {returned!r}.")
    return right()


# --- 08: a reviewer's permission -----------------------------------------------------------------

@contextmanager
def _logged_in(username: str, password: str) -> Iterator[None]:
    """MLflow's clients log in through these variables; the learner's own login comes back after."""
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(zip(names, (username, password)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def verify_review_grant(grant: Callable, server: Any, hint: str) -> Feedback:
    """Run ``grant`` for a new user on a new experiment of the team server, then tag a run as that user."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    suffix = secrets.token_hex(4)
    username, password = f"check-reviewer-{suffix}", secrets.token_urlsafe(16)
    with _logged_in("admin", server.credentials.admin_password):
        auth, admin = get_app_client("basic-auth", tracking_uri=server.url), MlflowClient(server.url)
        auth.create_user(username, password)
        experiment_id = admin.create_experiment(f"check-review-{suffix}")
        run_id = admin.create_run(experiment_id).info.run_id
        try:
            grant(auth, username, experiment_id)
        except Exception as error:  # noqa: BLE001
            return _raised(error)
        permission = auth.get_user_permission(username, "experiment", experiment_id).permission
        is_admin = auth.get_user(username).is_admin
    with _logged_in(username, password):
        try:
            MlflowClient(server.url).set_tag(run_id, "review", "approved")
            tagged = True
        except MlflowException:
            tagged = False
    with _logged_in("admin", server.credentials.admin_password):
        auth.delete_user(username)
        admin.delete_experiment(experiment_id)
    if is_admin:
        return wrong("an admin may do anything anywhere; grant a permission on this one experiment instead.")
    if not tagged:
        return wrong(f"with {permission} the reviewer's tag still gets 403. Hint: {hint}")
    if permission == "MANAGE":
        return wrong("it works, but MANAGE also lets him delete the experiment and change who may do what; "
                     "EDIT is enough.")
    return right()


# --- 05: a block's @test -------------------------------------------------------------------------

def _broken_sets(sets: pd.DataFrame) -> list[tuple[pd.DataFrame, str]]:
    """Bad batches a ``build_sets`` test must stop, each with the hint for letting it through."""
    no_validation = sets[sets["split"] == "train"]
    too_long = sets.copy()
    too_long.loc[too_long.index[0], "duration"] = 75.0
    too_short = sets.copy()
    too_short.loc[too_short.index[-1], "duration"] = 0.5
    return [
        (no_validation, "a batch with no validation rides passed your test: assert that both 'train' and "
                        "'validation' are in set(sets['split'])."),
        (too_long, "a batch with a ride of 75 minutes passed your test: assert that every duration is at most 60 "
                   "(sets['duration'].between(1, 60).all())."),
        (too_short, "a batch with a ride of 0.5 minutes passed your test: durations start at 1 minute."),
    ]


def verify_sets_test(sets_test: Callable[..., None], sets: pd.DataFrame) -> Feedback:
    """Run a learner's ``@test`` for ``build_sets`` as Mage does, on the block's real output and on
    broken copies of it: it must pass the first and raise AssertionError on each of the others."""
    try:
        sets_test(sets.copy())
    except AssertionError as error:
        return wrong(f"your test failed the real output of build_sets ({error or 'no message'}); "
                     "a test must let a good batch through.")
    except Exception as error:  # noqa: BLE001
        return _raised(error)
    for broken, hint in _broken_sets(sets):
        try:
            sets_test(broken)
        except AssertionError:
            continue
        except Exception as error:  # noqa: BLE001
            return wrong(f"on a bad batch your test raised {type(error).__name__}, not AssertionError; "
                         "Mage reports a failed test by the assert that fails (assert condition, 'message').")
        return wrong(hint)
    return right()


# --- 07: reading a report, an alert rule ---------------------------------------------------------

def _check_report(current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, Any]:
    """The result of the report ``monitoring.batch_metrics`` runs, on samples the notebook never showed."""
    from helpers import monitoring

    current, reference = current.sample(2_000, random_state=7), reference.sample(2_000, random_state=8)
    clip = monitoring._clip_range(reference)
    snapshot = monitoring._report(monitoring.MONITORED_COLUMNS).run(
        current_data=monitoring._dataset(current, clip), reference_data=monitoring._dataset(reference, clip))
    return snapshot.dict()


def verify_column_scores(column_scores: Callable[[dict], dict[str, float]], current: pd.DataFrame,
                         reference: pd.DataFrame) -> Feedback:
    """``column_scores(result)`` must map each ValueDrift metric's column to its drift score."""
    result = _check_report(current, reference)
    expected = {metric["config"]["column"]: float(metric["value"]) for metric in result["metrics"]
                if metric["config"]["type"].endswith(":ValueDrift")}
    try:
        scores = column_scores(result)
    except Exception as error:  # noqa: BLE001
        return _raised(error)
    if not isinstance(scores, dict):
        return wrong(f"return a dict {{column: score}}, not {type(scores).__name__}.")
    if scores and all(isinstance(value, bool) for value in scores.values()):
        return wrong("those are the verdicts (drifted or not); the score is the metric's 'value', a number.")
    if set(scores) - set(expected):
        return wrong(f"{sorted(set(scores) - set(expected))} have no drift score: keep only the metrics whose "
                     "config 'type' ends with ':ValueDrift', keyed by their config 'column'.")
    if set(expected) - set(scores):
        return wrong(f"{sorted(set(expected) - set(scores))} are missing: this report has one ValueDrift per "
                     "column; loop over every entry of result['metrics'].")
    off = [column for column in expected if not np.isclose(float(scores[column]), expected[column])]
    if off:
        return wrong(f"the scores of {off} are not the report's: read each metric's 'value' "
                     "(a report on other rides gives other numbers, so none can be typed in).")
    return right()


_RULE_CASES = ((0.6, 0.5, True), (0.5, 0.5, True), (0.4, 0.5, False), (0.1, 0.1, True), (None, 10.0, False))


def verify_rule_fires(fires: Callable[[float | None, float], bool]) -> Feedback:
    """``fires(value, threshold)``: the course's rule, at or above the threshold, and never on no value."""
    for value, threshold, expected in _RULE_CASES:
        try:
            answer = fires(value, threshold)
        except Exception as error:  # noqa: BLE001
            if value is None:
                return wrong(f"fires(None, {threshold}) raised {type(error).__name__}: a batch without actual "
                             "durations has rmse None, and no value breaks no rule; return False for it.")
            return _raised(error)
        if bool(answer) != expected:
            if value == threshold:
                return wrong(f"fires({value}, {threshold}) should be True: the course's rules fire when a value "
                             "reaches its threshold (>=), so a batch exactly at it is reported.")
            return wrong(f"fires({value}, {threshold}) returned {answer!r}, expected {expected}.")
    return right()


# --- 06: a prediction route ----------------------------------------------------------------------

_ROUTE_RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
_BAD_ROUTE_RIDES = (("a negative trip_distance", {**_ROUTE_RIDE, "trip_distance": -3}),
                    ("no trip_distance", {"PULocationID": 10, "DOLocationID": 50}))


class _RecordingModel:
    """Stands in for the champion with a duration the check can recompute (2 min + 1.5 min a mile),
    and remembers the rides it was asked about, to tell whether a bad ride reached it."""

    def __init__(self) -> None:
        self.rides: list[dict] = []

    def predict(self, rides: Any) -> np.ndarray:
        scalars = isinstance(rides, dict) and not any(isinstance(v, list | tuple) for v in rides.values())
        frame = pd.DataFrame([rides] if scalars else rides)
        self.rides += frame.to_dict("records")
        return self.minutes(frame["trip_distance"].astype(float).to_numpy())

    @staticmethod
    def minutes(distance: Any) -> Any:
        return 2 + 1.5 * distance


def verify_predict_route(create_app: Callable[[Any], Any]) -> Feedback:
    """``create_app(model)`` must return a Flask app whose ``POST /predict`` answers the model's
    ``{"duration": ...}`` for a ride, and a 4xx with ``{"error": ...}`` for a ride with a missing or
    negative distance, without asking the model. Requests go through Flask's test client: no port."""
    from flask import Flask

    model = _RecordingModel()
    expected = _RecordingModel.minutes(_ROUTE_RIDE["trip_distance"])
    try:
        app = create_app(model)
    except Exception as error:  # noqa: BLE001
        return _raised(error)
    if not isinstance(app, Flask):
        return wrong(f"create_app returned {type(app).__name__}; return the Flask app you built (app = Flask(...)).")
    app.config["PROPAGATE_EXCEPTIONS"] = True  # a failing route raises here, so the hint can name the error
    client = app.test_client()
    try:
        answer = client.post("/predict", json=_ROUTE_RIDE)
    except Exception as error:  # noqa: BLE001
        return wrong(f"POST /predict with the ride {_ROUTE_RIDE} raised {type(error).__name__}: {str(error)[:200]}")
    if answer.status_code == 404:
        return wrong("POST /predict answered 404: no route has that path; "
                     "decorate your function with @app.route('/predict', methods=['POST']).")
    if answer.status_code == 405:
        return wrong("POST /predict answered 405 (method not allowed): a route answers only GET "
                     "unless you pass methods=['POST'].")
    body = answer.get_json(silent=True)
    if answer.status_code != 200 or not isinstance(body, dict) or "duration" not in body:
        return wrong(f"a good ride got {answer.status_code} {answer.get_data(as_text=True)[:100]!r}; "
                     "answer 200 with JSON: return jsonify(duration=...).")
    if not model.rides:
        return wrong("the duration did not come from the model: call model.predict(pd.DataFrame([ride])).")
    got = _number_or_none(body["duration"])
    if got is None or not np.isclose(got, expected):
        return wrong(f"the check's model predicts {expected:g} min for {_ROUTE_RIDE}, your route answered "
                     f"{body['duration']!r}: answer float(model.predict(...)[0]).")
    for what, bad_ride in _BAD_ROUTE_RIDES:
        model.rides.clear()
        try:
            answer = client.post("/predict", json=bad_ride)
        except Exception as error:  # noqa: BLE001
            return wrong(f"a ride with {what} made your route raise {type(error).__name__} ({str(error)[:100]}), "
                         "which a client gets as a 500, an error of the server: check the ride first and "
                         "return jsonify(error='...'), 422.")
        if answer.status_code == 200:
            return wrong(f"a ride with {what} got 200 and a prediction: check trip_distance before predicting "
                         "and return jsonify(error='...'), 422.")
        if not 400 <= answer.status_code < 500:
            return wrong(f"a ride with {what} got {answer.status_code}; a bad ride is the client's mistake, "
                         "so answer a 4xx (422: JSON that is not a valid ride).")
        if model.rides:
            return wrong(f"a ride with {what} got {answer.status_code}, but only after your route asked the "
                         "model: check the ride before predicting.")
        error_body = answer.get_json(silent=True)
        if not isinstance(error_body, dict) or not error_body.get("error"):
            return wrong(f"a ride with {what} got {answer.status_code} without saying why: "
                         "return jsonify(error='<what is wrong>'), 422.")
    return right()


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
