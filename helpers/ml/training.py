"""Fit, evaluate, save and load the trip-duration model.

The model is always one scikit-learn ``Pipeline``: ``RideFeatures`` turns rides into feature
dicts, a ``DictVectorizer`` one-hot encodes ``PU_DO`` and passes ``trip_distance`` through, then a
regressor. Saving the whole pipeline keeps all three together, so the model file is all a server
needs: it predicts from raw rides.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin, clone
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import Lasso, LinearRegression, Ridge
from sklearn.metrics import root_mean_squared_error
from sklearn.pipeline import Pipeline

from helpers.core import config
from helpers.core.features import RideFeatures, target

LINEAR_MODELS: dict[str, RegressorMixin] = {
    "LinearRegression": LinearRegression(),
    "Lasso": Lasso(alpha=0.01),
    "Ridge": Ridge(alpha=1.0),
}


def make_pipeline(estimator: RegressorMixin) -> Pipeline:
    """A fresh, unfitted ``RideFeatures -> DictVectorizer -> estimator`` pipeline."""
    return Pipeline([("features", RideFeatures()), ("vectorizer", DictVectorizer()), ("model", estimator)])


def train_pipeline(estimator: RegressorMixin, df_train: pd.DataFrame) -> Pipeline:
    """Fit the course's pipeline around ``estimator`` on a prepared training frame.

    Args:
        estimator: An unfitted scikit-learn regressor; it is fitted in place.
        df_train: A frame from :func:`helpers.core.features.prepare`.

    Returns:
        The fitted pipeline.
    """
    pipeline = make_pipeline(estimator)
    pipeline.fit(df_train, target(df_train))
    return pipeline


def predict(pipeline: Pipeline, rides: pd.DataFrame | Sequence[Mapping]) -> np.ndarray:
    """Predicted durations in minutes for a prepared frame or a list of raw rides."""
    return pipeline.predict(rides)


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error, with scikit-learn's current API (``squared=False`` is gone)."""
    return float(root_mean_squared_error(y_true, y_pred))


def evaluate(pipeline: Pipeline, df: pd.DataFrame) -> float:
    """Validation RMSE of a fitted pipeline on a prepared frame."""
    return rmse(target(df), predict(pipeline, df))


def compare_linear_models(
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    models: Mapping[str, RegressorMixin] | None = None,
) -> tuple[pd.DataFrame, dict[str, Pipeline]]:
    """Fit each linear model and tabulate train and validation RMSE, best first.

    Args:
        df_train: Prepared training month.
        df_val: Prepared validation month.
        models: Name to unfitted estimator; defaults to :data:`LINEAR_MODELS`.

    Returns:
        The RMSE table (index: model name) and the fitted pipelines by name.
    """
    fitted: dict[str, Pipeline] = {}
    rows = []
    for name, estimator in (models or LINEAR_MODELS).items():
        pipeline = train_pipeline(clone(estimator), df_train)
        fitted[name] = pipeline
        rows.append(
            {
                "model": name,
                "train_rmse": evaluate(pipeline, df_train),
                "val_rmse": evaluate(pipeline, df_val),
            }
        )
    table = pd.DataFrame(rows).set_index("model").sort_values("val_rmse")
    return table, fitted


def default_model_path() -> Path:
    """``<models dir>/pipeline.bin``, where the course keeps its first pipeline.

    Not ``lin_reg.bin``: chapter 02 writes that one by hand, holding the bare ``(dv, lr)`` pair.
    """
    return config.models_dir() / "pipeline.bin"


def save_model(pipeline: Pipeline, path: str | Path | None = None) -> Path:
    """Pickle a fitted pipeline atomically, creating the folder; returns the path written."""
    path = Path(path) if path is not None else default_model_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as f_out:
        pickle.dump(pipeline, f_out)
    partial.replace(path)
    return path


def load_model(path: str | Path | None = None) -> Pipeline:
    """Load a pipeline saved by :func:`save_model`.

    Raises:
        FileNotFoundError: with what to run to create it, when the file is missing.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.exists():
        raise FileNotFoundError(
            f"no model at {path}; run notebooks/02_training.ipynb (or helpers.ml.training.save_model) first"
        )
    with path.open("rb") as f_in:
        return pickle.load(f_in)
