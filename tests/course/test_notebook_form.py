"""helpers.course.notebook_form: the committed form's checks, on notebooks built by hand (no kernel)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers.core import config
from helpers.course import notebook_form
from helpers.course.runner import find_chapters, notebooks_dir

CHAPTERS = find_chapters(notebooks_dir())


def _committed(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook as a refresh leaves it: a parameters cell, executed cells, canonical metadata."""
    parameters = new_code_cell("month = 1", metadata={"tags": ["parameters"]}, execution_count=1)
    notebook = new_notebook(cells=[parameters, *cells])
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code":
            cell.execution_count = number
    return notebook_form.canonical(notebook)


def _printed(text: str, name: str = "stdout") -> nbformat.NotebookNode:
    return new_code_cell("print(x)", outputs=[new_output("stream", name=name, text=text)])


def test_a_notebook_as_a_refresh_leaves_it_has_no_problem() -> None:
    assert notebook_form.problems(_committed(_printed("green 2021-01: data/twin/v3/x.parquet\n"))) == []


def test_a_cell_edited_after_its_outputs_were_made_is_reported() -> None:
    notebook = _committed(_printed("6.5\n"))
    notebook.cells[1].source = "print(y)"
    assert notebook_form.problems(notebook) == [
        "cell 1: its source changed after its outputs were made (run `make notebooks`)"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Writing /tmp/workbook-abc/build/ping.py\n", "a machine path in its output: /tmp/workbook-abc/build/ping.py"),
        ("Using /root/.pyenv/versions/3.11.7/bin/python3\n", "a machine path in its output: /root/.pyenv"),
        ("\x1b[31mWARNING: development server\x1b[0m\n", "terminal escape codes in its output"),
        ("Traceback (most recent call last):\n  File x\n", "a traceback in its output"),
        ("utils.py:440: UserWarning: Hint: integer columns\n", "a warning the prose does not announce: UserWarning"),
    ],
)
def test_what_shows_a_machine_or_its_tooling_is_reported(text: str, problem: str) -> None:
    found = notebook_form.output_problems(_committed(_printed(text, "stderr")))
    assert any(line.startswith(f"cell 1: {problem}") for line in found), found


def test_the_repository_itself_is_a_machine_path() -> None:
    text = f"tracking URI: sqlite:///{config.REPO_ROOT}/mlflow.db\n"
    assert notebook_form.output_problems(_committed(_printed(text))) == [
        f"cell 1: a machine path in its output: {config.REPO_ROOT}"
    ]


def test_a_warning_the_prose_announces_is_allowed() -> None:
    warned = _printed("WARNING mlflow.pyfunc: env_manager='local' does not recreate the environment\n", "stderr")
    announced = _committed(new_markdown_cell("MLflow warns that `local` reuses this environment."), warned)
    assert notebook_form.output_problems(announced) == []


def test_a_widget_is_reported_since_the_saved_notebook_keeps_no_state() -> None:
    widget = new_code_cell(
        "load()",
        outputs=[
            new_output(
                "display_data",
                data={notebook_form.WIDGET_VIEW: {"model_id": "1"}, "text/plain": "Downloading artifacts: 0%"},
            )
        ],
    )
    assert notebook_form.output_problems(_committed(widget)) == [
        "cell 1: a widget, which the saved notebook shows without its state"
    ]


def test_the_paths_the_dockerfile_names_are_the_images_not_the_machines() -> None:
    dockerfile = _printed("ENV PROMETHEUS_MULTIPROC_DIR=/tmp/service-metrics\n")
    assert "/tmp/service-metrics" in (config.REPO_ROOT / "Dockerfile").read_text()
    assert notebook_form.output_problems(_committed(dockerfile)) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_no_tooling_comment_sits_in_a_learners_cell(path) -> None:
    notebook = nbformat.read(path, as_version=4)
    marked = [number for number, cell in enumerate(notebook.cells) if "# NBVAL_" in cell.source]
    assert marked == [], f"nbval markers belong in the cells' tags (nbval-check-output, ...): cells {marked}"


def test_the_learners_environment_has_none_of_the_course_variables(monkeypatch) -> None:
    monkeypatch.setenv("WORKBOOK_OFFLINE", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    environ = config.learner_environ({"HOME": "/home/learner"})
    assert not any(name.startswith(config.COURSE_PREFIXES) for name in environ)
    assert environ["HOME"] == "/home/learner" and environ["PATH"]


def test_shown_paths_read_the_same_on_every_machine() -> None:
    assert config.shown(config.REPO_ROOT / "data" / "twin") == "data/twin"
    assert config.shown(f"sqlite:///{config.REPO_ROOT}/mlflow.db") == "sqlite:///<repo>/mlflow.db"
    assert config.shown(Path.home() / ".cache" / "uv") == "~/.cache/uv"


def _markdown(path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_every_chapter_opens_with_what_the_learner_will_be_able_to_do(path) -> None:
    opening = _markdown(path)[0]
    assert "In this chapter you will:" in opening, opening[:300]
    listed = opening.split("In this chapter you will:", 1)[1].lstrip().splitlines()
    assert len([line for line in listed if line.startswith("- ")]) >= 2, opening[:600]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_every_chapter_ends_with_what_the_learner_has_now_and_the_next_step(path) -> None:
    markdown = _markdown(path)
    closings = [number for number, source in enumerate(markdown) if "## What you have now" in source]
    exercises = [number for number, source in enumerate(markdown) if source.startswith("### Exercise")]
    assert closings and closings[-1] > max(exercises, default=-1), "no 'What you have now' after the exercises"
    closing = "\n".join(markdown[closings[-1] :])
    if path == CHAPTERS[-1]:
        assert "## The course, end to end" in closing and "Where to go next" in closing, closing[-600:]
    else:
        following = CHAPTERS[CHAPTERS.index(path) + 1].name[:2]
        assert f"chapter {following}" in closing.lower(), f"the closing does not point to chapter {following}"
