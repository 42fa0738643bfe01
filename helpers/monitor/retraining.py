"""Retraining on newer data, started by monitoring (chapter 08): through Mage when it runs, else here.

When a Mage server for this checkout's project answers at ``WORKBOOK_MAGE_URL`` (by default where
``make mage`` listens), :func:`retrain` fires its ``retrain_api`` trigger and follows the run, so the
retraining is recorded with every other run of the orchestrator. Otherwise it runs the same
``helpers.orchestrate.pipelines`` steps in this process. Either way it trains the champion's recipe
(its model family and parameters) on the newer month, and the result is a new registered version
with the ``challenger`` alias, which :func:`helpers.orchestrate.pipelines.promote_challenger` then
compares with the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from helpers.core import config
from helpers.ml import registry
from helpers.orchestrate import mage, pipelines

logger = logging.getLogger(__name__)


class RetrainingFailedError(RuntimeError):
    """The Mage retraining run did not complete."""


@dataclass(frozen=True)
class Retrained:
    """What a retraining produced, how it ran (``"mage"`` or ``"helpers"``) and whose recipe it
    copied (``recipe_version``, the champion then); a Mage run also leaves its id and each block's
    status, so the caller can show the run the orchestrator recorded."""

    version: str
    via: str
    train_month: str
    validation_month: str
    detail: str
    recipe_version: str | None = None
    run_id: int | None = None
    blocks: dict[str, str] = field(default_factory=dict)


def retrain(
    train_month: str,
    validation_month: str | None = None,
    *,
    color: str = "green",
    mage_url: str | None = None,
    timeout: float = 900,
) -> Retrained:
    """Train on ``train_month`` (validated on ``validation_month``, default the month after) and
    register the best model as challenger.

    Args:
        mage_url: A Mage server to run the ``retraining`` pipeline on; default
            :func:`helpers.core.config.mage_url`. When none is set or answers for this checkout's project,
            the steps run in this process.
        timeout: Seconds to wait for the Mage run.

    Raises:
        RetrainingFailedError: the Mage run failed or was cancelled (its block statuses say where).
        ValueError: malformed months.
    """
    settings = pipelines.RunSettings.from_variables(
        {"color": color, "train_month": train_month, "validation_month": validation_month}
    )
    months = {
        "train_month": pipelines.month_label(settings.train),
        "validation_month": pipelines.month_label(settings.validation),
    }
    url = mage_url or config.mage_url()
    client = mage.MageClient(url) if url else None
    if client is not None and client.answers():
        run_id = client.trigger("retrain_api", {"color": color, **months})
        logger.info("retraining on Mage at %s: run %s", client.url, run_id)
        run = client.wait(run_id, timeout=timeout)
        if run["status"] != "completed":
            raise RetrainingFailedError(
                f"Mage retraining run {run_id} {run['status']}: {client.block_statuses(run_id)}"
            )
        version = registry.version_by_alias(registry.CHALLENGER)
        return Retrained(
            str(version.version),
            "mage",
            **months,
            detail=f"Mage run {run_id} at {client.url}",
            recipe_version=version.tags.get(registry.RECIPE_VERSION_TAG),
            run_id=run_id,
            blocks=client.block_statuses(run_id),
        )
    registered = pipelines.retrain(settings)
    return Retrained(
        registered["version"],
        "helpers",
        **months,
        detail=f"{registered['model']} with v{registered['recipe_version']}'s recipe, "
        f"validation RMSE {registered['rmse']:.3f}",
        recipe_version=registered["recipe_version"],
    )
