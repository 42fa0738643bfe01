"""helpers.core.distributions: the distribution that provides a library, whatever its name here."""

from importlib import metadata

import pytest

from helpers.core import distributions


def test_xgboost_is_found_under_the_distribution_installed_here():
    name, version = distributions.provider("xgboost")
    assert name in {"xgboost-cpu", "xgboost"}
    assert version == metadata.version(name)


def test_the_first_installed_name_wins():
    assert distributions.installed("no-such-distribution", "pytest") == ("pytest", metadata.version("pytest"))
    assert distributions.installed("no-such-distribution") is None


def test_a_library_with_no_distribution_says_what_was_looked_for():
    with pytest.raises(metadata.PackageNotFoundError, match="no-such-library"):
        distributions.provider("no-such-library")
