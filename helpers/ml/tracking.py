"""Experiment tracking with MLflow: where runs go, what a run records, and the XGBoost search.

Chapter 03 calls these; chapters 04-07 reuse them, so every run in the course records the same
things: parameters, the RMSE on the validation month, the data it saw (and whether that was the
real TLC file or its twin), the git commit, and the model as a pickle and as an MLflow model.
"""

from __future__ import annotations

import pickle
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from hyperopt import STATUS_OK, Trials, fmin, tpe
from mlflow.entities import Experiment
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.base import RegressorMixin
from sklearn.pipeline import Pipeline

from helpers.core import config, distributions
from helpers.core.features import RIDE_FIELDS, target
from helpers.ml import boosting
from helpers.ml.training import evaluate, train_pipeline

EXPERIMENT_NAME = "nyc-taxi-experiment"
MODEL_URI_TAG = "model_uri"
# The file a run's RMSE was measured on: only runs validated on the same month compare.
VALIDATION_TAG = "validation_data"


def pip_requirements() -> list[str]:
    """The pins logged with every model: they spare ``log_model`` ~12 s of inferring requirements
    and record exactly which versions trained it.

    MLflow is pinned by its version whichever distribution provides it: an orchestrator's
    environment may only have ``mlflow-skinny``, while the model still needs ``mlflow`` to serve.
    XGBoost is pinned as the distribution installed: ``xgboost-cpu`` on Linux and Windows (no CUDA
    libraries), ``xgboost`` on macOS; both are the same ``xgboost`` module.
    """
    pins = [f"{name}=={metadata.version(name)}" for name in ("scikit-learn", "pandas")]
    xgboost_name, xgboost_version = distributions.provider("xgboost")
    _, mlflow_version = distributions.provider("mlflow")
    return [*pins, f"{xgboost_name}=={xgboost_version}", f"mlflow=={mlflow_version}"]


# MLflow saves scikit-learn models with skops, which loads only types it was told to trust.
SKOPS_TRUSTED_TYPES = [
    "helpers.core.features.RideFeatures",
    "helpers.ml.boosting.RideCategories",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.core.Booster",
]


def artifact_root(tracking_uri: str) -> str | None:
    """Artifact location for new experiments: ``mlartifacts/`` beside a SQLite store.

    Without it MLflow would write ``./mlruns`` under whatever the working directory is. A
    tracking server (http) decides for itself, so this returns ``None`` there.
    """
    if urlparse(tracking_uri).scheme != "sqlite":
        return None
    return config.artifacts_dir(tracking_uri).as_uri()


def use_experiment(name: str = EXPERIMENT_NAME, tracking_uri: str | None = None) -> Experiment:
    """Point MLflow at the course's store and make ``name`` the active experiment.

    Safe to call again and again: an existing experiment is reused, a deleted one restored, so
    re-running a chapter never duplicates experiments.
    """
    uri = tracking_uri or config.tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        client.create_experiment(name, artifact_location=artifact_root(uri))
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return mlflow.set_experiment(name)


def git_commit() -> str:
    """The repository's current commit, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def run_tags(data_source: str) -> dict[str, str]:
    """Tags every course run carries: where its data came from and which code made it."""
    return {"data_source": data_source, "git_commit": git_commit(), "mlflow.source.git.commit": git_commit()}


def log_dataset(df: pd.DataFrame, source: str | Path, context: str) -> None:
    """Record the rows a run used (``training``/``validation``) with their source file."""
    columns = [*RIDE_FIELDS, "duration"]
    with warnings.catch_warnings():
        # MLflow 3 registers its local-file source twice and warns that a path is ambiguous.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = mlflow.data.from_pandas(df[columns], source=str(source), targets="duration", name=Path(source).stem)
    mlflow.log_input(dataset, context=context)


def model_input(df: pd.DataFrame) -> pd.DataFrame:
    """Rides as a client sends them to a logged model: zone IDs as integers, distance in miles.

    A prepared frame holds the IDs as strings; the model's signature asks for integers.
    """
    rides = df[RIDE_FIELDS].copy()
    rides[["PULocationID", "DOLocationID"]] = rides[["PULocationID", "DOLocationID"]].astype("int64")
    return rides.reset_index(drop=True)


def input_example(df: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few rides for a logged model's input example."""
    return model_input(df.head(rows))


def log_pipeline(pipeline: Pipeline, df_example: pd.DataFrame, name: str = "model") -> mlflow.models.model.ModelInfo:
    """Log a fitted course pipeline as an MLflow model, with its signature and an input example."""
    example = input_example(df_example)
    with warnings.catch_warnings():
        # Zone IDs are never missing in a request, so the hint about integer columns does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(example, pipeline.predict(example))
    return mlflow.sklearn.log_model(
        pipeline,
        name=name,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )


def log_pickle(obj: object, artifact_path: str, filename: str) -> None:
    """Log any object as a plain pickle artifact (the course's first way to keep a model)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / filename
        path.write_bytes(pickle.dumps(obj))
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


@dataclass(frozen=True)
class RunResult:
    """What a tracked training run produced."""

    run_id: str
    rmse: float
    model_uri: str
    pipeline: Pipeline = field(repr=False, compare=False)


def _simple_params(estimator: RegressorMixin) -> dict[str, object]:
    return {k: v for k, v in estimator.get_params().items() if isinstance(v, int | float | str | bool) or v is None}


def train_and_log(
    model: RegressorMixin | Pipeline,
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    *,
    train_source: str | Path,
    val_source: str | Path,
    data_source: str,
    run_name: str | None = None,
) -> RunResult:
    """Train a model in a new run that records everything.

    Args:
        model: An unfitted regressor, trained inside the course pipeline (DictVectorizer over
            ``PU_DO``), or an unfitted pipeline of its own that takes rides (``helpers.ml.boosting``).
        df_train: Prepared training month.
        df_val: Prepared validation month.
        train_source: The training file (recorded with the dataset).
        val_source: The validation file.
        data_source: ``"real"`` or ``"twin"``, tagged on the run.
        run_name: Optional run name.

    Returns:
        The run id, validation RMSE and the logged model's URI.
    """
    estimator = model[-1] if isinstance(model, Pipeline) else model
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({**run_tags(data_source), VALIDATION_TAG: Path(val_source).name})
        mlflow.log_params({"estimator": type(estimator).__name__, **_simple_params(estimator)})
        log_dataset(df_train, train_source, "training")
        log_dataset(df_val, val_source, "validation")
        if isinstance(model, Pipeline):
            pipeline = model.fit(df_train, target(df_train))
        else:
            pipeline = train_pipeline(model, df_train)
        val_rmse = evaluate(pipeline, df_val)
        mlflow.log_metric("rmse", val_rmse)
        log_pickle(pipeline, "models_pickle", "pipeline.bin")
        info = log_pipeline(pipeline, df_val)
        # Lets the registry find runs that carry a servable model, and register exactly it.
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return RunResult(run.info.run_id, val_rmse, info.model_uri, pipeline)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a hyperparameter search: the parent run and the best trial."""

    parent_run_id: str
    best_params: dict
    best_rmse: float
    best_rounds: int


def xgboost_objective(
    train: xgb.DMatrix,
    val: xgb.DMatrix,
    *,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 20,
    data_source: str = "unknown",
) -> Callable[[dict], dict]:
    """The search's objective: one nested run per trial, its loss the validation RMSE.

    Chapter 03 writes the same objective in a cell; this one also tags each trial with the data
    source and git commit and returns the trial's parameters and rounds, which the refit needs.
    """

    def objective(params: dict) -> dict:
        with mlflow.start_run(nested=True):
            mlflow.set_tags({**run_tags(data_source), "model": "xgboost"})
            mlflow.log_params(params)
            trial = boosting.fit(
                params, train, val, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds
            )
            mlflow.log_metrics({"rmse": trial.rmse, "best_iteration": trial.rounds - 1})
        return {"loss": trial.rmse, "status": STATUS_OK, "rounds": trial.rounds, "params": params}

    return objective


def search_xgboost(
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    *,
    max_evals: int,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 20,
    seed: int = 42,
    data_source: str = "unknown",
) -> SearchResult:
    """Search XGBoost hyperparameters with hyperopt's TPE, one nested MLflow run per trial.

    The model reads the zones as categoricals (``helpers.ml.boosting``), over
    :data:`helpers.ml.boosting.SEARCH_SPACE`.

    Args:
        df_train: Prepared training month.
        df_val: Prepared validation month (early stopping watches it).
        max_evals: Number of trials.
        num_boost_round: Most boosting rounds a trial may use.
        early_stopping_rounds: Stop a trial when validation RMSE has not improved for this many rounds.
        seed: Seeds TPE so the same search picks the same trials.
        data_source: ``"real"`` or ``"twin"``, tagged on every run.

    Returns:
        The parent run id, the best trial's parameters, RMSE and number of rounds.
    """
    objective = xgboost_objective(
        boosting.matrix(df_train),
        boosting.matrix(df_val),
        num_boost_round=num_boost_round,
        early_stopping_rounds=early_stopping_rounds,
        data_source=data_source,
    )
    with mlflow.start_run(run_name="xgboost-search") as parent:
        mlflow.set_tags(run_tags(data_source))
        mlflow.log_params({"max_evals": max_evals, "num_boost_round": num_boost_round, "seed": seed})
        trials = Trials()
        fmin(
            objective,
            boosting.SEARCH_SPACE,
            algo=tpe.suggest,
            max_evals=max_evals,
            trials=trials,
            rstate=np.random.default_rng(seed),
            show_progressbar=True,
        )
        best = trials.best_trial["result"]
        mlflow.log_metric("best_rmse", best["loss"])
    return SearchResult(parent.info.run_id, best["params"], best["loss"], best["rounds"])


def train_best_xgboost(
    search: SearchResult,
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    *,
    train_source: str | Path,
    val_source: str | Path,
    data_source: str,
) -> RunResult:
    """Refit the search's best XGBoost as a ride pipeline and log it both ways.

    The whole pipeline goes in as ``model`` (scikit-learn flavour: it predicts from raw rides);
    the regressor alone as ``xgboost_model`` (XGBoost flavour) with the step that makes its input
    frame as a plain ``preprocessor`` artifact, which is how the original course logs it.
    """
    result = train_and_log(
        boosting.make_pipeline(search.best_params, search.best_rounds),
        df_train,
        df_val,
        train_source=train_source,
        val_source=val_source,
        data_source=data_source,
        run_name="xgboost-best",
    )
    with mlflow.start_run(run_id=result.run_id):
        mlflow.set_tag("search_run_id", search.parent_run_id)
        mlflow.xgboost.log_model(result.pipeline["model"], name="xgboost_model", pip_requirements=pip_requirements())
        log_pickle(result.pipeline["features"], "preprocessor", "ride_categories.bin")
    return result


def runs_frame(experiment_name: str = EXPERIMENT_NAME, filter_string: str = "") -> pd.DataFrame:
    """The experiment's finished runs with an RMSE, best first, as a DataFrame."""
    query = "metrics.rmse > 0" + (f" and {filter_string}" if filter_string else "")
    return mlflow.search_runs(experiment_names=[experiment_name], filter_string=query, order_by=["metrics.rmse ASC"])
