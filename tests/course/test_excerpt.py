"""Excerpts of helpers shown in chapters come from the module itself."""

import inspect

import pytest

from helpers.course import excerpt
from helpers.ml import registry


def test_an_excerpt_is_the_functions_own_source():
    assert excerpt.source(registry.rollback).data == inspect.getsource(registry.rollback).rstrip("\n")


def test_an_excerpt_runs_from_its_start_line_to_its_end_line():
    shown = excerpt.source(registry.promote_if_better, start="def promote_if_better", end=")").data.splitlines()
    assert shown[0].startswith("def promote_if_better") and shown[-1].count(")") >= 1


def test_an_excerpt_whose_marker_moved_away_says_so():
    with pytest.raises(ValueError, match="not in the source"):
        excerpt.source(registry.rollback, start="no such line")


def test_an_end_line_that_opens_a_folded_expression_is_shown_to_its_close():
    from helpers.monitor import drift

    shown = excerpt.source(drift.batch_metrics, "snapshot = run_report", "for t in results").data.splitlines()
    assert shown[-1].strip() == "}"
    assert any('endswith(":ValueDrift")' in line for line in shown)
