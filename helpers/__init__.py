"""Tested code behind the MLOps Workbook notebooks, in layers: ``core`` at the bottom, then
``servers``, ``ml``, ``serve``, ``orchestrate``, ``monitor`` and ``course``; a module imports only
from its own layer or the ones below it."""

from helpers.core import config

# Before any MLflow call or any import of XGBoost: a kernel, a Mage block, the service and the CLIs
# all import helpers first, and none of them may fall back to MLflow's store in the working directory.
config.apply_process_defaults()
