"""helpers.ml.boosting: XGBoost on the zones as categories, a pipeline that takes rides."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers.core import config
from helpers.core.features import target
from helpers.ml import boosting
from helpers.orchestrate import mage
from tests.support import synthetic_month

PARAMS = {"max_depth": 4, "learning_rate": 0.3, "min_child_weight": 1.0, "reg_alpha": 0.01, "reg_lambda": 1.0}
RIDES = [
    {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.5},
    {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 7.25},
]


@pytest.fixture(scope="module")
def df_train():
    return synthetic_month(2_000, seed=1)


@pytest.fixture(scope="module")
def fitted(df_train):
    return boosting.make_pipeline(PARAMS, rounds=30).fit(df_train, target(df_train))


def test_ride_frame_reads_prepared_frames_raw_frames_and_ride_dicts_alike(df_train):
    prepared = df_train.head(5)
    raw = prepared.assign(
        PULocationID=prepared["PULocationID"].astype(int), DOLocationID=prepared["DOLocationID"].astype(int)
    )
    dicts = raw[["PULocationID", "DOLocationID", "trip_distance"]].to_dict("records")
    expected = boosting.ride_frame(prepared)
    pd.testing.assert_frame_equal(boosting.ride_frame(raw), expected)
    pd.testing.assert_frame_equal(boosting.ride_frame(dicts), expected)
    assert list(expected["PULocationID"].cat.categories) == list(range(1, 266))


def test_the_pipeline_predicts_the_same_from_ride_dicts_and_from_a_frame(fitted):
    from_dicts = fitted.predict(RIDES)
    from_frame = fitted.predict(pd.DataFrame(RIDES))
    np.testing.assert_allclose(from_dicts, from_frame)
    assert all(1 <= minutes <= 60 for minutes in from_dicts)


def test_a_zone_never_seen_in_training_gets_a_defined_prediction(df_train, fitted):
    seen = set(df_train["PULocationID"].astype(int)) | set(df_train["DOLocationID"].astype(int))
    unseen = next(zone for zone in range(1, 266) if zone not in seen)
    ride = {"PULocationID": unseen, "DOLocationID": unseen, "trip_distance": 2.0}
    assert math.isfinite(fitted.predict([ride])[0])


def test_a_zone_outside_the_tlc_range_is_missing_not_an_error(fitted):
    frame = boosting.ride_frame([{"PULocationID": 300, "DOLocationID": 10, "trip_distance": 1.0}])
    assert frame["PULocationID"].isna().all()
    assert math.isfinite(fitted.predict(frame)[0])


def test_a_fit_is_deterministic(df_train):
    train = boosting.matrix(df_train)
    val = boosting.matrix(synthetic_month(600, seed=2))
    first, second = (boosting.fit(PARAMS, train, val, num_boost_round=50) for _ in range(2))
    assert (first.rmse, first.rounds) == (second.rmse, second.rounds)


@pytest.mark.mage
def test_a_model_trained_here_predicts_identically_in_the_mage_environment(fitted, tmp_path):
    import mlflow

    from helpers.ml import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.use_experiment("cross-environment", tracking_uri=uri)
    with mlflow.start_run():
        info = tracking.log_pipeline(fitted, pd.DataFrame(RIDES))
    script = (
        "import json, sys, mlflow, pandas; model = mlflow.pyfunc.load_model(sys.argv[1]); "
        "print(json.dumps(model.predict(pandas.DataFrame(json.loads(sys.argv[2]))).tolist()))"
    )
    other = subprocess.run(
        [str(mage.MAGE_VENV / "bin" / "python"), "-c", script, info.model_uri, json.dumps(RIDES)],
        env={**config.isolated_env(tmp_path), "MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 0, other.stderr[-3000:]
    here = mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame(RIDES))
    np.testing.assert_array_equal(np.array(json.loads(other.stdout.strip().splitlines()[-1])), here)


def test_importing_the_module_needs_no_hyperopt():
    # The service's environment (Pipfile) has no hyperopt, and unpickling a model imports this module.
    probe = "import sys, helpers.ml.boosting; print('hyperopt' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert imported.stdout.strip() == "False"


def test_the_searched_parameters_are_the_search_spaces():
    assert tuple(boosting.SEARCH_SPACE) == boosting.SEARCHED_PARAMS
