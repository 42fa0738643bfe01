"""Which installed distribution provides a library: some platforms install one under another name.

XGBoost comes as ``xgboost-cpu`` where PyPI has that build (Linux, Windows: no CUDA libraries) and
as ``xgboost`` on macOS; MLflow as ``mlflow`` or, in the Mage environment, ``mlflow-skinny``. The
module is the same either way; a model's pins and chapter 01's version table name what is there.
"""

from __future__ import annotations

from importlib import metadata

PROVIDERS = {"xgboost": ("xgboost-cpu", "xgboost"), "mlflow": ("mlflow", "mlflow-skinny")}


def installed(*names: str) -> tuple[str, str] | None:
    """``(name, version)`` of the first of the distributions ``names`` that is installed, else ``None``."""
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def provider(library: str) -> tuple[str, str]:
    """``(distribution, version)`` that provides ``library`` here.

    Raises:
        metadata.PackageNotFoundError: none of its distributions is installed.
    """
    names = PROVIDERS.get(library, (library,))
    found = installed(*names)
    if found is None:
        raise metadata.PackageNotFoundError(f"{library} is not installed (looked for {', '.join(names)})")
    return found
