"""Running a learner's function in isolation: a fresh MLflow store, and MLflow's state put back after.

The checks of the exercises where the learner writes MLflow code run it inside :func:`isolated_tracking`,
so the learner's experiment keeps only their real runs, and afterwards the kernel's tracking URI,
experiment, active run and model are exactly as they were.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core import config
from helpers.course.feedback import Feedback, wrong

_MLFLOW_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_ACTIVE_MODEL_ID",
    "_MLFLOW_ACTIVE_MODEL_ID",
)


@dataclass(frozen=True)
class _FluentState:
    """Everything MLflow's fluent API remembers between calls. MLflow has no public way to save and
    restore it, so this reads the module globals its own setters write."""

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

        return cls(
            _tracking_service.utils._tracking_uri,
            _model_registry.utils._registry_uri,
            fluent._active_experiment_id,
            list(fluent._active_run_stack.get()),
            fluent._last_active_run_id.get(),
            fluent._last_logged_model_id.get(),
            fluent._ACTIVE_MODEL_CONTEXT.get(),
        )

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
    with (
        tempfile.TemporaryDirectory(prefix="workbook-check-") as folder,
        config.temporary_environ(dict.fromkeys(_MLFLOW_VARIABLES)),
    ):
        try:
            os.chdir(folder)
            fluent._active_run_stack.set([])
            uri = f"sqlite:///{Path(folder, 'mlflow.db')}"
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            experiment_id = mlflow.MlflowClient().create_experiment(
                "check", artifact_location=Path(folder, "artifacts").as_uri()
            )
            mlflow.set_experiment(experiment_id=experiment_id)
            yield uri
        finally:
            saved.restore()
            os.chdir(cwd)


def raised(error: Exception) -> Feedback:
    return wrong(f"your function raised {type(error).__name__}: {str(error)[:300]}")


@contextmanager
def logged_in(username: str, password: str) -> Iterator[None]:
    """MLflow's clients log in through these variables; the learner's own login comes back after."""
    with config.temporary_environ(MLFLOW_TRACKING_USERNAME=username, MLFLOW_TRACKING_PASSWORD=password):
        yield
