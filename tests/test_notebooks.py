"""Every chapter executed for real with papermill (offline, quick), asserting on what it produced.

nbval (`pytest --nbval-lax notebooks`, part of `make test`) separately re-runs the committed
notebooks and compares the outputs of the cells marked NBVAL_CHECK_OUTPUT.
"""

import re

import nbformat
import pytest

from helpers import config
from helpers.course import find_chapters, notebooks_dir, run_chapter
from helpers.notebook_form import problems

CHAPTERS = find_chapters(notebooks_dir())


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run each chapter once, in order, as `make course` does; later tests read the results."""
    out = tmp_path_factory.mktemp("executed")
    return {path.stem[:2]: run_chapter(path, out) for path in CHAPTERS}


@pytest.mark.parametrize("chapter", [path.stem[:2] for path in CHAPTERS])
def test_chapter_runs_top_to_bottom(executed, chapter):
    result = executed[chapter]
    assert result.ok, result.error


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_committed_notebook_is_in_canonical_form(path):
    assert problems(nbformat.read(path, as_version=4)) == []


def test_chapter_01_uses_the_twin_offline_with_the_real_row_count(executed):
    assert executed["01"].key_result == "green 2021-01: 76,518 trips (twin data)"


def test_chapter_02_validation_rmse_is_in_the_real_data_region(executed):
    match = re.search(r"validation RMSE (\d+\.\d+) min", executed["02"].key_result)
    assert match, executed["02"].key_result
    assert 6.0 <= float(match.group(1)) <= 10.0


def test_chapter_02_saves_a_model_that_loads(executed):
    from helpers.training import load_model, predict

    model = load_model(config.models_dir() / "lin_reg.bin")
    assert 1 <= predict(model, [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 2.5}])[0] <= 60


def test_exercises_start_not_attempted(executed):
    notebook = nbformat.read(executed["02"].output_path, as_version=4)
    feedback = [
        output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith("check(")
        for output in cell.outputs
    ]
    assert len(feedback) >= 2
    assert all("Not attempted yet" in text for text in feedback)
