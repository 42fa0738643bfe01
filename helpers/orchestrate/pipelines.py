"""What chapter 05's Mage blocks share with each other and with chapter 08: the months a run works on.

Each block in ``orchestration/`` holds its own step's code (the pandas, the MLflow calls). What is
here is what several blocks or chapters need: :class:`RunSettings`, which reads the months from a
run's variables (Mage's keyword arguments: pipeline variables, ``execution_date``), whether a month
is published (the retraining sensor, chapter 08), the promotion on a test month (chapter 08), and
the retraining pipeline's blocks run in this process when no Mage server is there (chapter 08).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import requests

from helpers.core import config, data, features
from helpers.core.tlc import COLORS, parse_month, trip_filename, trip_url
from helpers.ml import registry

Month = tuple[int, int]
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
        """The two months, real or twin (cached after the first call), by split."""
        return {
            "train": data.fetch_month(self.color, *self.train),
            "validation": data.fetch_month(self.color, *self.validation),
        }

    def describe(self) -> str:
        return f"{self.color}: train {month_label(self.train)}, validate {month_label(self.validation)}"

    def variables(self) -> dict[str, str]:
        """The run variables that select these months, as a pipeline run takes them."""
        return {
            "color": self.color,
            "train_month": month_label(self.train),
            "validation_month": month_label(self.validation),
        }


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


def promote_challenger(test_month: str | None = None, color: str = "green") -> dict[str, Any]:
    """Compare challenger and champion on the test month; move ``champion`` only if better (chapter 08
    judges a retrained challenger so; the deploying pipeline's block does the same on its test month)."""
    if test_month:
        df_test = features.read_prepared(data.fetch_month(color, *parse_month(test_month)).path)
    else:
        df_test = registry.load_test_month()
    return asdict(registry.promote_if_better(df_test))


def retrain(settings: RunSettings) -> dict[str, Any]:
    """The ``retraining`` pipeline's blocks after its sensor, run in this process: ingest, prepare,
    build the sets, train the champion's recipe, register it as challenger. Returns what
    ``register_challenger`` returned."""
    # Imported here: the blocks import this module, and they run without the code that drives Mage.
    from helpers.orchestrate import mage

    return mage.run_blocks("retraining", settings.variables(), skip=("sensor",))["register_challenger"]
