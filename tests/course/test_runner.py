"""helpers.course: running the chapters in order, their key results and the summary table."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers.course import runner as course


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=list(cells))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def _key_cell(source: str, outputs: list[nbformat.NotebookNode] | None = None) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": ["key-result"]}, outputs=outputs or [])


def _write(folder: Path, name: str, notebook: nbformat.NotebookNode) -> Path:
    path = folder / name
    nbformat.write(notebook, path)
    return path


# --- key results, read from notebooks built by hand (no kernel) --------------------------------


def test_key_result_is_the_text_plain_output_of_the_tagged_cell() -> None:
    notebook = _notebook(
        new_code_cell("1 + 1", outputs=[new_output("execute_result", data={"text/plain": "2"})]),
        _key_cell("rmse", [new_output("execute_result", data={"text/plain": "5.63"})]),
    )
    assert course.key_result(notebook) == "5.63"


def test_key_result_prefers_text_plain_over_what_the_cell_printed() -> None:
    notebook = _notebook(
        _key_cell(
            "print('fitting'); rmse",
            [
                new_output("stream", name="stdout", text="fitting\n"),
                new_output("execute_result", data={"text/plain": "5.63", "text/html": "<b>5.63</b>"}),
            ],
        )
    )
    assert course.key_result(notebook) == "5.63"


def test_key_result_falls_back_to_stdout_and_joins_lines() -> None:
    notebook = _notebook(
        _key_cell(
            "print(...)",
            [
                new_output("stream", name="stdout", text="rows: 100\nrmse: 5.63\n"),
                new_output("stream", name="stderr", text="a warning\n"),
            ],
        )
    )
    assert course.key_result(notebook) == "rows: 100; rmse: 5.63"


def test_key_result_is_none_without_a_tagged_cell() -> None:
    notebook = _notebook(
        new_markdown_cell("# Chapter"),
        new_code_cell("x", outputs=[new_output("execute_result", data={"text/plain": "1"})]),
    )
    assert course.key_result(notebook) is None


# --- the summary table -------------------------------------------------------------------------


def test_table_has_one_row_per_chapter_and_a_dash_for_no_key_result(tmp_path: Path) -> None:
    results = [
        course.ChapterResult("01_environment", True, 3.21, "python 3.11", tmp_path / "01.ipynb"),
        course.ChapterResult("02_training", False, 12.0, None, tmp_path / "02.ipynb", "boom"),
    ]
    lines = course.format_table(results).splitlines()
    assert lines[0].split() == ["chapter", "status", "seconds", "key", "result"]
    assert lines[1].split() == ["01_environment", "ok", "3.2", "python", "3.11"]
    assert lines[2].split() == ["02_training", "FAILED", "12.0", "-"]


def test_table_cuts_long_key_results(tmp_path: Path) -> None:
    result = course.ChapterResult("01_x", True, 1.0, "x" * 100, tmp_path / "01_x.ipynb")
    assert course.format_table([result], width=20).splitlines()[1].endswith("x" * 19 + "…")


def test_find_chapters_sorts_and_filters_by_number(tmp_path: Path) -> None:
    for name in ["02_training.ipynb", "01_environment.ipynb", "scratch.ipynb", "10_extra.ipynb"]:
        _write(tmp_path, name, _notebook())
    assert [p.name for p in course.find_chapters(tmp_path)] == [
        "01_environment.ipynb",
        "02_training.ipynb",
        "10_extra.ipynb",
    ]
    assert [p.name for p in course.find_chapters(tmp_path, ["2", "10"])] == [
        "02_training.ipynb",
        "10_extra.ipynb",
    ]


def test_main_says_what_is_available_when_no_chapter_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "01_environment.ipynb", _notebook())
    assert course.main(["--notebooks-dir", str(tmp_path), "--only", "07"]) == 2
    assert "available: 01_environment" in capsys.readouterr().err


# --- a real run: three tiny chapters, the middle one fails ---------------------------------------


class CourseRun(NamedTuple):
    status: int
    stdout: str
    notebooks: Path
    output_dir: Path


@pytest.fixture(scope="module")
def course_run(tmp_path_factory: pytest.TempPathFactory) -> CourseRun:
    """Run `python -m helpers.course --quick` on three 2-cell chapters; the second one fails."""
    notebooks = tmp_path_factory.mktemp("notebooks")
    output_dir = tmp_path_factory.mktemp("build")
    _write(
        notebooks,
        "01_first.ipynb",
        _notebook(
            new_code_cell("import os\nfrom pathlib import Path"),
            _key_cell("os.environ.get('WORKBOOK_QUICK'), Path.cwd().name"),
        ),
    )
    _write(notebooks, "02_broken.ipynb", _notebook(new_code_cell("x = 1"), new_code_cell("1 / 0")))
    _write(notebooks, "03_after.ipynb", _notebook(new_code_cell("x = 2"), new_code_cell("x")))
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out):
        env.delenv("WORKBOOK_QUICK", raising=False)  # restored on exit, whatever main() sets
        status = course.main(["--quick", "--notebooks-dir", str(notebooks), "--output-dir", str(output_dir)])
    return CourseRun(status, out.getvalue(), notebooks, output_dir)


def _rows(run: CourseRun) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in run.stdout.splitlines()[1:4]}


@pytest.mark.notebooks
def test_a_failing_chapter_fails_the_run_and_the_later_ones_still_run(course_run: CourseRun) -> None:
    rows = _rows(course_run)
    assert course_run.status == 1
    assert rows["02_broken"][1] == "FAILED"
    assert rows["03_after"][1] == "ok"
    assert sorted(p.name for p in course_run.output_dir.iterdir()) == [
        "01_first.ipynb",
        "02_broken.ipynb",
        "03_after.ipynb",
    ]


@pytest.mark.notebooks
def test_the_failure_is_explained_after_the_table(course_run: CourseRun) -> None:
    assert "02_broken failed: cell 2 raised ZeroDivisionError: division by zero" in course_run.stdout
    assert str(course_run.output_dir / "02_broken.ipynb") in course_run.stdout


@pytest.mark.notebooks
def test_the_kernel_sees_quick_mode_and_runs_in_the_notebooks_folder(course_run: CourseRun) -> None:
    first = course_run.stdout.splitlines()[1]
    assert first.split()[:2] == ["01_first", "ok"]
    assert first.endswith(f"('1', '{course_run.notebooks.name}')")


@pytest.mark.notebooks
def test_a_chapter_without_a_key_result_shows_a_dash(course_run: CourseRun) -> None:
    assert _rows(course_run)["03_after"][-1] == "-"
