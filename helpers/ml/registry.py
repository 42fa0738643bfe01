"""The model registry with ``MlflowClient``: register, compare, promote, roll back, trace back.

The course works with aliases: ``champion`` is what serves, ``challenger`` is what wants to.
A challenger becomes champion only when it is better on the test month; the champion it
replaces keeps the alias ``previous-champion`` so one call rolls back. A version's run also holds
its *recipe* (model family and parameters), which retraining copies onto newer data.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.base import RegressorMixin, clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline

from helpers.core import data, features
from helpers.core.tlc import trip_filename
from helpers.ml import boosting
from helpers.ml.tracking import (
    EXPERIMENT_NAME,
    MODEL_URI_TAG,
    VALIDATION_TAG,
    model_input,
    train_and_log,
    use_experiment,
)
from helpers.ml.training import LINEAR_MODELS, rmse

MODEL_NAME = "nyc-taxi-duration"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
TEST_MONTH = ("green", 2021, 3)
# Chapters 03-05 validate on February 2021; candidates are compared on it.
VALIDATION_DATA = trip_filename("green", 2021, 2)
PROVISIONED_MODELS = (LinearRegression(), Ridge(alpha=1.0))
# The hyperparameters that tell the course's models apart, for :func:`lineage`.
KEY_PARAMS = ("estimator", "alpha", "fit_intercept", "n_estimators", *boosting.SEARCHED_PARAMS)
# Tags a retrained run and its version carry: the version and run whose recipe it copied.
RECIPE_VERSION_TAG = "recipe_version"
RECIPE_RUN_TAG = "recipe_run_id"


def champion_uri(name: str = MODEL_NAME) -> str:
    """``models:/<name>@champion``: what a server loads."""
    return f"models:/{name}@{CHAMPION}"


def candidate_runs(
    experiment_name: str = EXPERIMENT_NAME,
    max_rmse: float | None = None,
    top: int = 3,
    validated_on: str = VALIDATION_DATA,
) -> list[Run]:
    """The best runs that logged a servable model, lowest validation RMSE first.

    Args:
        experiment_name: Experiment to search.
        max_rmse: Keep only runs below this RMSE.
        top: How many runs at most.
        validated_on: The validation file whose RMSE ranks them; runs validated on another month
            (a retrained model's) are not comparable and left out.
    """
    experiment = MlflowClient().get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    query = (
        f"tags.{MODEL_URI_TAG} LIKE 'models:/%' and attributes.status = 'FINISHED' "
        f"and tags.{VALIDATION_TAG} = '{validated_on}'"
    )
    if max_rmse is not None:
        query += f" and metrics.rmse < {max_rmse}"
    return MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=query, order_by=["metrics.rmse ASC"], max_results=top
    )


def register_run(run: Run, name: str = MODEL_NAME) -> ModelVersion:
    """Register a run's model, or return the version that already holds it (re-runs add none)."""
    client = MlflowClient()
    existing = _versions_of_run(client, name, run.info.run_id)
    if existing:
        return existing[0]
    version = mlflow.register_model(run.data.tags[MODEL_URI_TAG], name)
    estimator = run.data.params.get("estimator", "model")
    client.update_model_version(
        name, version.version, description=f"{estimator}, validation RMSE {run.data.metrics['rmse']:.3f} min"
    )
    client.set_model_version_tag(name, version.version, "estimator", estimator)
    client.set_model_version_tag(name, version.version, "val_rmse", f"{run.data.metrics['rmse']:.4f}")
    for tag in (RECIPE_VERSION_TAG, RECIPE_RUN_TAG):
        if tag in run.data.tags:  # a retrained run: its version says whose recipe it copied
            client.set_model_version_tag(name, version.version, tag, run.data.tags[tag])
    return client.get_model_version(name, version.version)


def _versions_of_run(client: MlflowClient, name: str, run_id: str) -> list[ModelVersion]:
    try:
        return client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return []


def version_by_alias(alias: str, name: str = MODEL_NAME) -> ModelVersion | None:
    """The version an alias points at, or ``None`` when the alias (or the model) does not exist."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def version_rmse(version: str | int, df_test: pd.DataFrame, name: str = MODEL_NAME) -> float:
    """RMSE of a registered version on a prepared test month, loaded as a pyfunc like a server does."""
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return rmse(features.target(df_test), model.predict(model_input(df_test)))


@dataclass(frozen=True)
class Decision:
    """What :func:`promote_if_better` decided, and on which numbers."""

    promoted: bool
    champion: str
    challenger: str
    champion_rmse: float | None
    challenger_rmse: float
    reason: str


def promote_if_better(df_test: pd.DataFrame, name: str = MODEL_NAME) -> Decision:
    """Compare ``challenger`` with ``champion`` on the test month; promote only a better one.

    With no champion yet the challenger is promoted. On promotion the old champion is tagged
    ``status=archived`` and keeps the alias ``previous-champion``; a rejected challenger is
    tagged ``status=rejected``. Either way the ``challenger`` alias is removed: it is decided.

    Raises:
        LookupError: when no version holds the ``challenger`` alias.
    """
    client = MlflowClient()
    challenger = version_by_alias(CHALLENGER, name)
    if challenger is None:
        raise LookupError(
            f"no version of {name!r} has the alias {CHALLENGER!r}; set it with set_registered_model_alias"
        )
    champion = version_by_alias(CHAMPION, name)
    challenger_rmse = version_rmse(challenger.version, df_test, name)
    client.set_model_version_tag(name, challenger.version, "test_rmse", f"{challenger_rmse:.4f}")
    champion_rmse = version_rmse(champion.version, df_test, name) if champion else None
    if champion is not None and champion.version == challenger.version:
        promoted, reason = False, "the challenger already is the champion"
    elif champion is None:
        promoted, reason = True, "there was no champion yet"
    elif challenger_rmse < champion_rmse:
        promoted, reason = True, f"test RMSE {challenger_rmse:.3f} < {champion_rmse:.3f}"
    else:
        promoted, reason = False, f"test RMSE {challenger_rmse:.3f} is not below the champion's {champion_rmse:.3f}"
    if promoted:
        if champion is not None:
            client.set_model_version_tag(name, champion.version, "status", "archived")
            client.set_registered_model_alias(name, PREVIOUS_CHAMPION, champion.version)
        client.set_registered_model_alias(name, CHAMPION, challenger.version)
        client.set_model_version_tag(name, challenger.version, "status", "champion")
    elif champion is None or champion.version != challenger.version:
        client.set_model_version_tag(name, challenger.version, "status", "rejected")
    client.delete_registered_model_alias(name, CHALLENGER)
    return Decision(
        promoted,
        str(champion.version) if champion else "-",
        str(challenger.version),
        champion_rmse,
        challenger_rmse,
        reason,
    )


def rollback(name: str = MODEL_NAME) -> ModelVersion:
    """Point ``champion`` back at ``previous-champion`` and mark the replaced version rolled back.

    Raises:
        LookupError: when there is no previous champion to go back to.
    """
    client = MlflowClient()
    previous = version_by_alias(PREVIOUS_CHAMPION, name)
    if previous is None:
        raise LookupError(f"{name!r} has no {PREVIOUS_CHAMPION!r} alias: nothing to roll back to")
    current = version_by_alias(CHAMPION, name)
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.set_model_version_tag(name, previous.version, "status", "champion")
    if current is not None:
        client.set_model_version_tag(name, current.version, "status", "rolled_back")
    client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    return client.get_model_version(name, previous.version)


def lineage(version: ModelVersion, params: tuple[str, ...] = KEY_PARAMS) -> dict[str, object]:
    """From a registered version back to what made it: run, logged model, key parameters, data and code.

    Args:
        version: The registered version to trace.
        params: The parameters to show, those a run has; a run logs every constructor argument
            of its estimator (dozens for XGBoost), and a reader compares only a few.
    """
    run = MlflowClient().get_run(version.run_id)
    return {
        "version": f"{version.name} v{version.version}",
        "run": f"{run.info.run_name} ({run.info.run_id})",
        "model": version.source,
        "params": {key: run.data.params[key] for key in params if key in run.data.params},
        "val_rmse": round(run.data.metrics["rmse"], 3) if "rmse" in run.data.metrics else None,
        "data": {_context(item): item.dataset.name for item in run.inputs.dataset_inputs},
        "data_source": run.data.tags.get("data_source"),
        "git_commit": run.data.tags.get("git_commit"),
    }


@dataclass(frozen=True)
class Recipe:
    """How a registered version's model was made, read back from its run: the model family and
    the parameters its training logged, so the same model can be trained on other data."""

    version: str
    run_id: str
    estimator: str
    params: dict[str, Any]

    def model(self) -> RegressorMixin | Pipeline:
        """A fresh, unfitted model of the same family with the same parameters, for
        :func:`helpers.ml.tracking.train_and_log`.

        XGBoost is the zone-categorical pipeline of :mod:`helpers.ml.boosting` with the searched
        parameters and its number of rounds; a linear model gets every parameter its run logged.
        """
        if self.estimator == "XGBRegressor":
            return boosting.make_pipeline(self.params, int(self.params["n_estimators"]))
        return clone(LINEAR_MODELS[self.estimator]).set_params(**self.params)

    def tags(self) -> dict[str, str]:
        """What a run trained from this recipe is tagged with (and its version, by :func:`register_run`)."""
        return {RECIPE_VERSION_TAG: self.version, RECIPE_RUN_TAG: self.run_id}


def _logged_value(text: str) -> Any:
    # MLflow keeps parameters as text: "0.064" -> 0.064, "True" -> True, "None" -> None, "auto" stays.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def recipe(version: ModelVersion) -> Recipe:
    """The recipe of a registered version, from the parameters its run logged.

    Raises:
        ValueError: the run names no model family, or one retraining cannot rebuild.
    """
    run = MlflowClient().get_run(version.run_id)
    estimator = run.data.params.get("estimator")
    families = ("XGBRegressor", *LINEAR_MODELS)
    if estimator not in families:
        raise ValueError(
            f"{version.name} v{version.version}'s run {version.run_id} logged the estimator {estimator!r}; "
            f"retraining can rebuild only {', '.join(families)}"
        )
    if estimator == "XGBRegressor":
        wanted = ("n_estimators", *boosting.SEARCHED_PARAMS)
    else:
        wanted = tuple(LINEAR_MODELS[estimator].get_params())
    params = {key: _logged_value(run.data.params[key]) for key in wanted if key in run.data.params}
    return Recipe(str(version.version), version.run_id, estimator, params)


def champion_recipe(name: str = MODEL_NAME) -> Recipe:
    """The champion's recipe: what retraining trains on newer data.

    Raises:
        LookupError: when no version holds the ``champion`` alias.
    """
    champion = version_by_alias(CHAMPION, name)
    if champion is None:
        raise LookupError(
            f"no version of {name!r} has the alias {CHAMPION!r}, so there is no recipe to retrain; "
            "register one first (registry.ensure_champion)"
        )
    return recipe(champion)


def _context(dataset_input) -> str:
    return next((tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"), "?")


def ensure_candidates(count: int = 2) -> list[Run]:
    """At least ``count`` candidate runs in the course experiment, training quick ones if needed.

    A chapter opened on its own (04, 06-08) calls this, so it never depends on an earlier one
    having run: linear models on Jan/Feb 2021 take seconds.
    """
    use_experiment()
    runs = candidate_runs(top=count)
    if len(runs) >= count:
        return runs
    train, val = data.fetch_month("green", 2021, 1), data.fetch_month("green", 2021, 2)
    df_train, df_val = features.read_prepared(train.path), features.read_prepared(val.path)
    for estimator in PROVISIONED_MODELS[: count - len(runs)]:
        train_and_log(
            clone(estimator),
            df_train,
            df_val,
            train_source=train.path,
            val_source=val.path,
            data_source=train.source,
            run_name=f"provisioned-{type(estimator).__name__}",
        )
    return candidate_runs(top=count)


def ensure_champion(name: str = MODEL_NAME) -> ModelVersion:
    """Return the champion, first registering the best candidate (see :func:`ensure_candidates`)."""
    use_experiment()
    champion = version_by_alias(CHAMPION, name)
    if champion is not None:
        return champion
    version = register_run(ensure_candidates(1)[0], name)
    MlflowClient().set_registered_model_alias(name, CHAMPION, version.version)
    MlflowClient().set_model_version_tag(name, version.version, "status", "champion")
    return MlflowClient().get_model_version(name, version.version)


def load_test_month() -> pd.DataFrame:
    """The prepared test month the registry compares models on (green March 2021)."""
    return features.read_prepared(data.fetch_month(*TEST_MONTH).path)
