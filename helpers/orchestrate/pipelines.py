"""What chapter 05's Mage blocks do, as plain functions the earlier chapters already taught.

Each block in ``orchestration/`` is a few lines that call one function here, so the steps are
unit-tested without Mage, and the same code runs in the course's ``.venv`` and in ``.venv-mage``.
Blocks pass Mage's keyword arguments (pipeline variables, ``execution_date``) to
:func:`RunSettings.from_variables`, which decides the months a run works on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, Ridge

from helpers.core import config, data, features
from helpers.core.features import RIDE_FIELDS, TARGET
from helpers.core.polling import WaitTimeout, wait_for
from helpers.core.tlc import COLORS, parse_month, trip_filename, trip_url
from helpers.ml import registry, tracking
from helpers.serve import batch

logger = logging.getLogger(__name__)

Month = tuple[int, int]
SPLITS = ("train", "validation")
# A month given as "auto" is counted back from the run's execution date: a monthly schedule that
# fires on 1 June trains on April and validates on May, the newest month that can be complete.
AUTO = "auto"


def month_label(month: Month) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


def shift_month(month: Month, by: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + by
    return index // 12, index % 12 + 1


@dataclass(frozen=True)
class RunSettings:
    """Which data one pipeline run uses: the color and the training and validation months."""

    color: str
    train: Month
    validation: Month

    @classmethod
    def from_variables(cls, variables: Mapping[str, Any]) -> RunSettings:
        """Read ``color``, ``train_month`` and ``validation_month`` from a run's variables.

        ``validation_month`` defaults to the month after ``train_month``; ``train_month: auto``
        counts back from ``execution_date`` (see ``AUTO``).

        Raises:
            ValueError: an unknown color, a malformed month, or validation not after training.
        """
        color = str(variables.get("color") or "green")
        if color not in COLORS:
            raise ValueError(f"color {color!r} is not one of {COLORS}")
        train_text = str(variables.get("train_month") or "2021-01")
        if train_text == AUTO:
            executed = variables.get("execution_date") or dt.datetime.now(dt.UTC)
            if isinstance(executed, str):
                executed = dt.datetime.fromisoformat(executed)
            newest = shift_month((executed.year, executed.month), -1)
            return cls(color, shift_month(newest, -1), newest)
        train = parse_month(train_text)
        validation_text = variables.get("validation_month")
        validation = parse_month(validation_text) if validation_text else shift_month(train, 1)
        if validation <= train:
            raise ValueError(
                f"validation month {month_label(validation)} must come after training month "
                f"{month_label(train)}: a model is validated on data newer than it learnt from"
            )
        return cls(color, train, validation)

    def fetch(self) -> dict[str, data.MonthData]:
        """The two months, real or twin (cached after the first call)."""
        return {
            "train": data.fetch_month(self.color, *self.train),
            "validation": data.fetch_month(self.color, *self.validation),
        }

    def describe(self) -> str:
        return f"{self.color}: train {month_label(self.train)}, validate {month_label(self.validation)}"


# --- data_preparation ----------------------------------------------------------------------------


def ingest_months(settings: RunSettings) -> pd.DataFrame:
    """Both raw months in one frame, with ``split`` saying which file each ride came from."""
    frames = []
    for split, month in settings.fetch().items():
        logger.info(month.message)
        frames.append(pd.read_parquet(month.path).assign(split=split))
    return pd.concat(frames, ignore_index=True)


def prepare_rides(raw: pd.DataFrame) -> pd.DataFrame:
    """Chapter 02's preparation (duration, 1-60 minutes, categorical zones), split by split."""
    if "split" not in raw.columns:
        raise ValueError("expected the ingested frame with a 'split' column (see ingest_months)")
    return features.prepare(raw)


def build_sets(prepared: pd.DataFrame) -> pd.DataFrame:
    """The training and validation sets: the ride fields the model reads, the target and ``split``."""
    missing = [column for column in (*RIDE_FIELDS, "PU_DO", TARGET, "split") if column not in prepared.columns]
    if missing:
        raise ValueError(f"prepared frame lacks {missing}; run prepare_rides first")
    return prepared[[*RIDE_FIELDS, "PU_DO", TARGET, "split"]].reset_index(drop=True)


def split_sets(sets: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, validation)`` frames from :func:`build_sets`' output."""
    return sets[sets["split"] == "train"], sets[sets["split"] == "validation"]


def check_sets(sets: pd.DataFrame, min_rows: int = 100) -> None:
    """What the data_preparation pipeline's ``@test`` blocks assert, with messages that say what broke.

    Raises:
        AssertionError: a split is missing or too small, a duration is outside 1-60 minutes, a
            feature is missing, or a distance is negative.
    """
    counts = sets["split"].value_counts()
    for split in SPLITS:
        assert counts.get(split, 0) >= min_rows, f"{split} set has {counts.get(split, 0)} rides, fewer than {min_rows}"
    assert sets[TARGET].between(1, 60).all(), "a duration is outside 1-60 minutes"
    nulls = sets[list(RIDE_FIELDS)].isna().sum()
    assert not nulls.any(), f"missing values in {nulls[nulls > 0].to_dict()}"
    assert (sets["trip_distance"] >= 0).all(), "negative trip_distance"


# --- training ------------------------------------------------------------------------------------

SKLEARN_MODELS = (LinearRegression(), Ridge(alpha=1.0))


@dataclass(frozen=True)
class Trained:
    """A training block's result; blocks return it as a dict, which Mage stores as JSON."""

    run_id: str
    rmse: float
    model_uri: str
    model: str
    candidates: dict[str, float]
    # A retrained model's origin (registry.Recipe.tags): the champion version and run it copied.
    recipe: dict[str, str] = field(default_factory=dict)


def train_sklearn(sets: pd.DataFrame, settings: RunSettings) -> dict[str, Any]:
    """Chapter 03's linear models, one tracked run each; returns the best by validation RMSE."""
    tracking.use_experiment()
    months = settings.fetch()
    df_train, df_val = split_sets(sets)
    results = {}
    for estimator in SKLEARN_MODELS:
        name = type(estimator).__name__
        results[name] = tracking.train_and_log(
            clone(estimator),
            df_train,
            df_val,
            train_source=months["train"].path,
            val_source=months["validation"].path,
            data_source=months["train"].source,
            run_name=f"mage-{name}",
        )
    best_name = min(results, key=lambda name: results[name].rmse)
    best = results[best_name]
    return asdict(
        Trained(
            best.run_id,
            best.rmse,
            best.model_uri,
            best_name,
            {name: round(result.rmse, 4) for name, result in results.items()},
        )
    )


def train_xgboost(sets: pd.DataFrame, settings: RunSettings, *, max_evals: int | None = None) -> dict[str, Any]:
    """Chapter 03's hyperopt search, then the best XGBoost refitted as the course pipeline.

    Quick mode (``WORKBOOK_QUICK``) searches 2 trials of 10 rounds on 5,000 rides, as chapter 03 does.
    """
    tracking.use_experiment()
    months = settings.fetch()
    df_train, df_val = split_sets(sets)
    quick = config.quick()
    evals = max_evals or (2 if quick else 5)
    df_search = df_train.sample(min(5_000, len(df_train)), random_state=1) if quick else df_train
    search = tracking.search_xgboost(
        df_search, df_val, max_evals=evals, num_boost_round=10 if quick else 1000, data_source=months["train"].source
    )
    best = tracking.train_best_xgboost(
        search,
        df_train,
        df_val,
        train_source=months["train"].path,
        val_source=months["validation"].path,
        data_source=months["train"].source,
    )
    return asdict(
        Trained(best.run_id, best.rmse, best.model_uri, "XGBRegressor", {"XGBRegressor": round(best.rmse, 4)})
    )


def train_champion_recipe(sets: pd.DataFrame, settings: RunSettings) -> dict[str, Any]:
    """Retraining's training step: the champion's recipe (its model family and parameters, read
    from its run) trained on the run's months, in one tracked run tagged with the recipe's origin.

    Retraining another family would compare two changes at once: the data and the model. The
    same recipe on newer data asks only whether the newer data helps.

    Raises:
        LookupError: there is no champion to copy.
    """
    from mlflow.tracking import MlflowClient

    tracking.use_experiment()
    recipe = registry.champion_recipe()
    months = settings.fetch()
    df_train, df_val = split_sets(sets)
    result = tracking.train_and_log(
        recipe.model(),
        df_train,
        df_val,
        train_source=months["train"].path,
        val_source=months["validation"].path,
        data_source=months["train"].source,
        run_name=f"retrain-{recipe.estimator}",
    )
    for key, value in recipe.tags().items():
        MlflowClient().set_tag(result.run_id, key, value)
    return asdict(
        Trained(
            result.run_id,
            result.rmse,
            result.model_uri,
            recipe.estimator,
            {recipe.estimator: round(result.rmse, 4)},
            recipe.tags(),
        )
    )


def register_challenger(trained: Mapping[str, Any]) -> dict[str, Any]:
    """Register a training run's model and give it the ``challenger`` alias.

    Registering the same run twice returns its existing version (a re-run pipeline adds nothing).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    version = registry.register_run(client.get_run(trained["run_id"]))
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CHALLENGER, version.version)
    client.set_model_version_tag(registry.MODEL_NAME, version.version, "status", "challenger")
    return {
        "version": str(version.version),
        "run_id": trained["run_id"],
        "rmse": trained["rmse"],
        "model": trained["model"],
        "recipe_version": version.tags.get(registry.RECIPE_VERSION_TAG),
    }


# --- deploying -----------------------------------------------------------------------------------


def promote_challenger(test_month: str | None = None, color: str = "green") -> dict[str, Any]:
    """Compare challenger and champion on the test month; move ``champion`` only if better."""
    if test_month:
        df_test = features.read_prepared(data.fetch_month(color, *parse_month(test_month)).path)
    else:
        df_test = registry.load_test_month()
    return asdict(registry.promote_if_better(df_test))


def wait_for_serving(service_url: str, version: str, timeout: float = 60, poll: float = 0.5) -> dict[str, Any]:
    """Wait until the web service at ``service_url`` says (``GET /health``) it serves ``version``.

    Raises:
        TimeoutError: it still serves another version (or does not answer) after ``timeout`` seconds.
    """

    def health() -> Any:
        try:
            return requests.get(f"{service_url.rstrip('/')}/health", timeout=5).json()
        except (requests.RequestException, ValueError) as error:
            return repr(error)

    def serves_version(seen: Any) -> bool:
        return isinstance(seen, dict) and str(seen.get("model_version")) == str(version)

    try:
        return wait_for(health, done=serves_version, timeout=timeout, poll=poll)
    except WaitTimeout as waited:
        raise TimeoutError(
            f"{service_url} still answers {waited.last} after {timeout:.0f} s, not model version {version}"
        ) from None


# --- triggers ------------------------------------------------------------------------------------


def month_published(color: str, month: Month, timeout: float = 10) -> bool:
    """True when the month's trip file is in the cache, or (online) the TLC site has it."""
    if (config.data_dir() / trip_filename(color, *month)).exists():
        return True
    if config.offline():
        return False
    try:
        return requests.head(trip_url(color, *month), timeout=timeout, allow_redirects=True).ok
    except requests.RequestException:
        return False


def wait_for_month(color: str, month: Month, window: float, poll: float = 1) -> bool:
    """Check for the month's file every ``poll`` seconds for up to ``window`` seconds.

    Mage calls a sensor again only a minute after it says False; polling inside the call lets
    the retraining start within seconds of the file landing.
    """
    try:
        return wait_for(lambda: month_published(color, month), timeout=window, poll=poll)
    except WaitTimeout:
        return False


def score_month(color: str, month: str, model_uri: str, output_dir: str | Path | None = None) -> dict[str, Any]:
    """Chapter 06's batch scoring for one month; a summary fit to be a block's output."""
    year, number = parse_month(month)
    path = batch.run(color, year, number, model_uri, Path(output_dir) if output_dir else None, progress=False)
    scored = pd.read_parquet(path, columns=["predicted_duration", "model_version"])
    return {
        "path": str(path),
        "rides": len(scored),
        "model_version": str(scored["model_version"].iloc[0]),
        "mean_predicted_duration": round(float(scored["predicted_duration"].mean()), 3),
    }


def retrain(settings: RunSettings) -> dict[str, Any]:
    """The ``retraining`` pipeline's blocks after its sensor, run in this process: ingest, prepare,
    build the sets, train the champion's recipe, register it as challenger."""
    sets = build_sets(prepare_rides(ingest_months(settings)))
    check_sets(sets)
    return register_challenger(train_champion_recipe(sets, settings))
