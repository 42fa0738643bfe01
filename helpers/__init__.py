"""Tested code behind the MLOps Workbook notebooks: one module per stage of the model's life."""

import os

from helpers import config

# Before any MLflow call: a kernel, a Mage block, the service and the CLIs all import helpers
# first, and none of them may fall back to MLflow's store in the working directory.
config.export_tracking_uri()

# OpenMP threads (XGBoost, scikit-learn) that spin while they wait make a fit ten times slower when
# the other processes keep the cores busy (a depth-4 XGBoost fit on 2 busy cores: 62 s spinning,
# 5 s sleeping), and sleeping costs nothing on an idle machine. libgomp reads this when it loads,
# so it is set before anything imports XGBoost or scikit-learn.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
