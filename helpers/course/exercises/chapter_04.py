"""Chapter 04, registry: register and promote, the served alias."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from helpers.course.exercise import Exercise, number
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import isolated_tracking, raised

_CHECK_MODEL = "check-model"


def _logged_model_uri(seed: int) -> str:
    """A small real model, logged in the check's store; its URI is what the learner registers."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    from helpers.ml import tracking, training

    rng = np.random.default_rng(seed)
    rides = pd.DataFrame(
        {
            "PULocationID": rng.integers(1, 20, 50).astype(str),
            "DOLocationID": rng.integers(1, 20, 50).astype(str),
            "trip_distance": rng.uniform(0.5, 10, 50),
        }
    )
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
                return raised(error)
            versions = client.search_model_versions(f"name = '{_CHECK_MODEL}'")
            if len(versions) != int(expected_version):
                return wrong(
                    f"after {expected_version} call(s) the model has {len(versions)} version(s): "
                    "register each model_uri once, with mlflow.register_model(model_uri, name)."
                )
            try:
                champion = client.get_model_version_by_alias(_CHECK_MODEL, "champion")
            except MlflowException:
                staged = [v.version for v in versions if v.current_stage != "None"]
                if staged:
                    return wrong(
                        "that moved a stage, the legacy way; point the alias instead: "
                        "client.set_registered_model_alias(name, 'champion', version.version)."
                    )
                return wrong(
                    "no version has the alias 'champion': "
                    "client.set_registered_model_alias(name, 'champion', version.version)."
                )
            if str(champion.version) != expected_version:
                return wrong(
                    f"after registering version {expected_version}, 'champion' still points at "
                    f"version {champion.version}: point it at the version you just registered."
                )
            if str(getattr(returned, "version", None)) != expected_version:
                return wrong(f"return the new ModelVersion (version {expected_version}), not {returned!r}.")
    return right()


EXERCISES: dict[str, Exercise] = {
    "04.register": Exercise(
        question="Write register_champion(model_uri, name): register the model as a new version of `name`, "
        "point the alias `champion` at that version and return it.",
        hint="version = mlflow.register_model(model_uri, name), then "
        "MlflowClient().set_registered_model_alias(name, 'champion', version.version).",
        solution="def register_champion(model_uri, name):\n"
        "    version = mlflow.register_model(model_uri, name)\n"
        '    MlflowClient().set_registered_model_alias(name, "champion", version.version)\n'
        "    return version",
        verify=verify_register_champion,
    ),
    "04.version_served": Exercise(
        question="Version 3 of nyc-taxi-duration is the champion. You register version 4, which beats it "
        "on the test month, and set the alias challenger on it. Which version does "
        "models:/nyc-taxi-duration@champion load now?",
        expected=3,
        hint="An alias names one version until someone moves it; registering and tagging a challenger moves nothing.",
        solution="answer = 3",
        hints=(
            (
                lambda a: number(a) == 4,
                "Winning on the test month is the case for promoting version 4, not the promotion itself: "
                "the champion alias moves only when it is set on 4.",
            ),
        ),
    ),
}
