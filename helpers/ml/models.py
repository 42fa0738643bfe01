"""Load the trip-duration model from wherever it lives, and say which version it is.

Batch scoring, the web service and the stream all accept a ``MODEL_URI``: a registry URI
(``models:/nyc-taxi-duration@champion`` or ``models:/nyc-taxi-duration/3``), a run's model
(``runs:/<id>/model``), or a pickled pipeline file such as chapter 02's ``models/pipeline.bin``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from helpers.core import config
from helpers.ml import training

# The champion of the registry; MODEL_URI names another (helpers.core.config.model_uri).
DEFAULT_MODEL_URI = config.DEFAULT_MODEL_URI


@dataclass(frozen=True)
class LoadedModel:
    """A fitted course pipeline with where it came from."""

    uri: str
    version: str
    pipeline: Pipeline

    def predict(self, rides: pd.DataFrame | Sequence[Mapping]) -> np.ndarray:
        """Durations in minutes for rides (a frame or mappings) with PULocationID, DOLocationID, trip_distance."""
        return self.pipeline.predict(rides)


def follows_alias(uri: str) -> bool:
    """True for ``models:/<name>@<alias>``: the version behind it can change while a server runs."""
    return uri.startswith("models:/") and "@" in uri


def current_version(uri: str) -> str:
    """The registry version a ``models:/`` URI points at now (one registry call, no model download)."""
    return _registry_version(uri)


def _registry_version(uri: str) -> str:
    from mlflow.tracking import (
        MlflowClient,  # see load(): only registry URIs need MLflow
    )

    name_and_ref = uri.removeprefix("models:/")
    if "@" in name_and_ref:
        name, alias = name_and_ref.split("@", 1)
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = name_and_ref.partition("/")
    if not version.isdigit():
        raise ValueError(f"cannot tell the version of {uri!r}; use models:/<name>@<alias> or models:/<name>/<version>")
    return version


def pinned(uri: str) -> str:
    """``models:/<name>@<alias>`` as ``models:/<name>/<version>``, the version the alias names now; any
    other URI as it is. A long job loads and labels one version even if the alias moves meanwhile."""
    if not follows_alias(uri):
        return uri
    name = uri.removeprefix("models:/").split("@", 1)[0]
    return f"models:/{name}/{_registry_version(uri)}"


def version_of(uri: str) -> str:
    """Which version a model URI names: the registry version (an alias resolved now), the run id, or
    the file name; what batch scoring writes as ``model_version``.

    Raises:
        mlflow.exceptions.MlflowException: an unknown registered model or alias.
    """
    if uri.startswith("models:/"):
        return _registry_version(uri)
    if uri.startswith("runs:/"):
        return uri.split("/")[1]
    return Path(uri.removeprefix("file://")).name


def load(uri: str) -> LoadedModel:
    """Load a model by registry/run URI or file path.

    Args:
        uri: ``models:/name@alias``, ``models:/name/N``, ``runs:/<run_id>/model``, or a file path.

    Returns:
        The pipeline and its version: the registry version, the run id, or the file name.

    Raises:
        FileNotFoundError: a path that does not exist.
        mlflow.exceptions.MlflowException: an unknown registered model, alias or run.
    """
    if uri.startswith(("models:/", "runs:/")):
        # Imported here: serving a pickled file should not pay MLflow's seconds of import time.
        import mlflow

        return LoadedModel(uri, version_of(uri), mlflow.sklearn.load_model(uri))
    return LoadedModel(uri, version_of(uri), training.load_model(Path(uri.removeprefix("file://"))))
