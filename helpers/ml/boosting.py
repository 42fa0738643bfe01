"""XGBoost on the taxi zones as categories: the course's fast way to its best model.

The zoomcamp's recipe one-hot encodes the pickup/dropoff pair (``PU_DO``, about 14,000 columns
on a green month) and grows trees up to 100 levels deep over them: 20-60 s a trial on 2 cores.
XGBoost can split on a categorical column itself. Here the pickup and dropoff zones are two
pandas categoricals over the 265 TLC zones, beside the distance, and trees a few levels deep
learn the zone pairs from them in seconds. Chapter 03 shows both ways on the same data, with
their times and RMSE.

The model stays one scikit-learn pipeline that takes rides (a frame, or ride mappings as a client
sends them), so the web service, the stream, batch scoring, Mage and monitoring use it unchanged.
The categories are the 265 zones whatever the training month held: a zone that training never
saw still has its category, which every split sends down one side, so its prediction is defined.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from helpers.core.features import CATEGORICAL, ZONE_IDS, target
from helpers.ml.training import rmse

ZONES = pd.Index(ZONE_IDS, name="zone")

# What every trial shares. `max_cat_to_onehot=1` asks for partition splits (a set of zones on each
# side) instead of one zone against the rest; `max_cat_threshold` lets a split use all 265 zones.
FIXED_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "max_cat_to_onehot": 1,
    "max_cat_threshold": 265,
    "seed": 42,
}

# The parameters the search tunes. Their space needs hyperopt, which the service's environment
# (Pipfile, the Docker image) lacks, yet loading a pickled model there imports this module.
SEARCHED_PARAMS = ("max_depth", "learning_rate", "min_child_weight", "reg_alpha", "reg_lambda")


@cache
def search_space() -> dict[str, Any]:
    """The search's hyperopt space over :data:`SEARCHED_PARAMS`, also ``boosting.SEARCH_SPACE``."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    # Shallow trees do best here; past depth 8 they only overfit the zone pairs, and learning rates
    # below 0.05 need more rounds than they repay (benchmarks/xgboost_benchmark.py frontier).
    return {
        "max_depth": scope.int(hp.quniform("max_depth", 3, 8, 1)),
        "learning_rate": hp.loguniform("learning_rate", math.log(0.05), math.log(0.3)),
        "min_child_weight": hp.loguniform("min_child_weight", 0, math.log(100)),
        "reg_alpha": hp.loguniform("reg_alpha", -5, 0),
        "reg_lambda": hp.loguniform("reg_lambda", math.log(0.1), math.log(30)),
    }


def __getattr__(name: str) -> Any:
    # SEARCH_SPACE is built on first use, so that importing the module needs no hyperopt.
    if name == "SEARCH_SPACE":
        return search_space()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def threads() -> int:
    """XGBoost threads: every core, but never more than the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ride_frame(rides: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    """Rides as the model reads them: the two zones as categoricals over the 265 TLC zones and
    ``trip_distance`` as a float.

    Accepts a prepared frame (zone IDs as strings), a frame of raw rides (integers) or ride
    mappings. A zone ID outside 1-265 becomes a missing value, which XGBoost also handles.
    """
    frame = rides if isinstance(rides, pd.DataFrame) else pd.DataFrame(list(rides))
    out = pd.DataFrame(index=range(len(frame)))
    for column in CATEGORICAL:
        ids = pd.to_numeric(frame[column], errors="coerce").to_numpy()
        out[column] = pd.Categorical(ids, categories=ZONES)
    out["trip_distance"] = frame["trip_distance"].to_numpy(dtype=float)
    return out


class RideCategories(TransformerMixin, BaseEstimator):
    """First step of the categorical pipeline: rides in, :func:`ride_frame` out."""

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's argument names
        return self

    def transform(self, X):  # noqa: N803
        return ride_frame(X)


def regressor(params: Mapping[str, Any], rounds: int, n_jobs: int | None = None) -> xgb.XGBRegressor:
    """An ``XGBRegressor`` for zone categoricals, with a search's parameters and the rounds early
    stopping chose."""
    chosen = {name: params[name] for name in SEARCHED_PARAMS if name in params}
    chosen["max_depth"] = int(chosen.get("max_depth", 6))
    return xgb.XGBRegressor(
        n_estimators=rounds, enable_categorical=True, n_jobs=n_jobs or threads(), **{**FIXED_PARAMS, **chosen}
    )


def make_pipeline(params: Mapping[str, Any], rounds: int) -> Pipeline:
    """The unfitted ``RideCategories -> XGBRegressor`` pipeline."""
    return Pipeline([("features", RideCategories()), ("model", regressor(params, rounds))])


def matrix(df: pd.DataFrame) -> xgb.DMatrix:
    """A prepared month as an XGBoost matrix with its durations as labels."""
    return xgb.DMatrix(ride_frame(df), label=target(df), enable_categorical=True)


@dataclass(frozen=True)
class Fit:
    """One booster trained with early stopping, and how it did on the validation month."""

    booster: xgb.Booster
    rmse: float
    rounds: int


def fit(
    params: Mapping[str, Any],
    train: xgb.DMatrix,
    val: xgb.DMatrix,
    *,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 20,
) -> Fit:
    """Train on ``train`` until the validation RMSE stops improving: one trial of the search.

    ``hist`` training is deterministic, so with the same parameters a trial gives the same booster.
    """
    booster = xgb.train(
        {**FIXED_PARAMS, "nthread": threads(), **params},
        train,
        num_boost_round=num_boost_round,
        evals=[(val, "validation")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    rounds = booster.best_iteration + 1
    score = rmse(val.get_label(), booster.predict(val, iteration_range=(0, rounds)))
    return Fit(booster, score, rounds)
