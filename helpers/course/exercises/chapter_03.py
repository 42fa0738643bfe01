"""Chapter 03, tracking: a tracked run, the trials near the best."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from helpers.course.exercise import Exercise
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import isolated_tracking, raised

_LOG_RUN_TRAIN_ROWS, _LOG_RUN_VAL_ROWS = 3_000, 1_000


def _predict_rides(model: Any, df_val: pd.DataFrame) -> np.ndarray | None:
    """What a learner's logged sklearn model predicts for ``df_val``: a course pipeline takes the
    frame, a DictVectorizer-first pipeline takes ride dicts; anything else cannot predict from rides."""
    from helpers.core import features

    for rides in (df_val, features.to_dicts(df_val)):
        try:
            return np.asarray(model.predict(rides), dtype=float)
        except Exception:  # noqa: BLE001 - try the other form a pipeline may take
            continue
    return None


def verify_log_run(
    log_run: Callable[[pd.DataFrame, pd.DataFrame], str], df_train: pd.DataFrame, df_val: pd.DataFrame
) -> Feedback:
    """``log_run(df_train, df_val)`` must record a finished run with a param, the validation RMSE of
    the model it logged as ``rmse``, and that model, and return the run's id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from helpers.core import features
    from helpers.ml import training

    train = df_train.sample(min(len(df_train), _LOG_RUN_TRAIN_ROWS), random_state=1)
    val = df_val.sample(min(len(df_val), _LOG_RUN_VAL_ROWS), random_state=1)
    with isolated_tracking():
        try:
            run_id = log_run(train, val)
        except Exception as error:  # noqa: BLE001
            if "untrusted types" in str(error):
                return wrong(
                    "MLflow refused to save the course's pipeline without trusting its feature "
                    "step: pass skops_trusted_types=tracking.SKOPS_TRUSTED_TYPES to log_model."
                )
            return raised(error)
        if not isinstance(run_id, str):
            return wrong(f"return the run's id (run.info.run_id), not {run_id!r}.")
        try:
            run = mlflow.MlflowClient().get_run(run_id)
        except MlflowException:
            return wrong(
                f"no run {run_id!r} in the store the check gave your function: did it call "
                "mlflow.set_tracking_uri itself? Leave that to the top of the notebook."
            )
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
        return wrong(
            "the logged model cannot predict from rides: log the whole pipeline, DictVectorizer and regressor together."
        )
    measured = training.rmse(features.target(val), predicted)
    if not np.isclose(run.data.metrics["rmse"], measured, rtol=1e-4):
        return wrong(
            f"the run's rmse is {run.data.metrics['rmse']:.4f}, but the model it logged scores "
            f"{measured:.4f} on df_val: log the RMSE of that model on the validation rides."
        )
    return right()


EXERCISES: dict[str, Exercise] = {
    "03.log_run": Exercise(
        question="Write log_run(df_train, df_val): in one MLflow run, train a pipeline, log at least one "
        "param, its validation RMSE as the metric `rmse` and the model with mlflow.sklearn.log_model; "
        "return the run's id.",
        hint="with mlflow.start_run() as run: fit, log_param, log_metric('rmse', ...), "
        "mlflow.sklearn.log_model(...); then return run.info.run_id.",
        solution="def log_run(df_train, df_val):\n"
        "    with mlflow.start_run() as run:\n"
        "        pipeline = make_pipeline(features.RideFeatures(), DictVectorizer(), Ridge(alpha=10.0))\n"
        '        pipeline.fit(df_train, df_train["duration"])\n'
        '        mlflow.log_param("alpha", 10.0)\n'
        '        mlflow.log_metric("rmse", root_mean_squared_error(df_val["duration"], pipeline.predict(df_val)))\n'
        '        mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=tracking.pip_requirements(),\n'
        "                                 skops_trusted_types=tracking.SKOPS_TRUSTED_TYPES)\n"
        "    return run.info.run_id",
        verify=verify_log_run,
    ),
    "03.near_best": Exercise(
        question="How many of the search's trials reached a validation RMSE within 1% of the best trial's "
        "(at most 1.01 times it, the best included)?",
        expected_from=lambda trial_runs, best_rmse: int((trial_runs["metrics.rmse"] <= 1.01 * best_rmse).sum()),
        hint="trial_runs holds one row per trial with its metrics.rmse, and search.best_rmse is the best: "
        "count the rows whose RMSE is at most 1.01 * search.best_rmse.",
        solution='answer = int((trial_runs["metrics.rmse"] <= 1.01 * search.best_rmse).sum())',
        hints=((lambda a: a is not None and float(a) < 1, "count trials: the best one counts, so at least 1."),),
    ),
}
