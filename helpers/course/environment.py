"""Chapter 01's checks of the set-up: which Python and libraries, and where the course runs."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pandas as pd

from helpers.core import config, distributions

COURSE_LIBRARIES = (
    "mlflow",
    "scikit-learn",
    "xgboost",
    "pandas",
    "pyarrow",
    "seaborn",
    "flask",
    "jupyterlab",
    "papermill",
    "nbval",
)
MIN_PYTHON = (3, 11)

_EC2_MARKERS = (Path("/sys/devices/virtual/dmi/id/board_vendor"), Path("/sys/hypervisor/uuid"))


def where_am_i(ec2_markers: tuple[Path, ...] = _EC2_MARKERS) -> str:
    """Say where the course runs: ``"codespaces"``, ``"ec2"`` or ``"local"``.

    Codespaces sets ``CODESPACES=true``; an EC2 instance names Amazon in its DMI board vendor
    (Nitro) or starts its hypervisor UUID with ``ec2`` (Xen).
    """
    if config.codespaces():
        return "codespaces"
    for marker in ec2_markers:
        try:
            text = marker.read_text().strip().lower()
        except OSError:
            continue
        if text.startswith("ec2") or "amazon" in text:
            return "ec2"
    return "local"


def library_versions(names: tuple[str, ...] = COURSE_LIBRARIES) -> pd.DataFrame:
    """Installed version of each course library (``"missing"`` when not installed)."""
    rows = []
    for name in names:
        found = distributions.installed(*distributions.PROVIDERS.get(name, (name,)))
        rows.append({"library": name, "version": found[1] if found else "missing"})
    return pd.DataFrame(rows).set_index("library")


def check_setup() -> pd.DataFrame:
    """One row per check of the set-up, with ``ok`` and a detail to act on when it fails."""
    python_ok = sys.version_info[:2] >= MIN_PYTHON
    missing = [name for name, row in library_versions().iterrows() if row["version"] == "missing"]
    data_dir = config.data_dir()
    rows = [
        ("python >= 3.11", python_ok, platform.python_version()),
        ("course libraries installed", not missing, ", ".join(missing) or "all present"),
        ("isolated environment (venv or conda)", _isolated(), config.shown(Path(sys.prefix))),
        ("data folder writable", _writable(data_dir), config.shown(data_dir)),
    ]
    return pd.DataFrame(rows, columns=["check", "ok", "detail"]).set_index("check")


def _isolated() -> bool:
    return sys.prefix != sys.base_prefix or config.conda_active()


def _writable(folder: Path) -> bool:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    return os.access(existing, os.W_OK)
