"""Tested code behind the MLOps Workbook notebooks: one module per stage of the model's life."""

from helpers import config

# Before any MLflow call: a kernel, a Mage block, the service and the CLIs all import helpers
# first, and none of them may fall back to MLflow's store in the working directory.
config.export_tracking_uri()
