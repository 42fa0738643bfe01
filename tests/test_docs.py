"""README.md and the pages under docs/: their links resolve, README's chapter table is true, and
README stays a front page a newcomer reads in two minutes.

The chapter table is checked against the notebooks themselves: one row per chapter, in order,
naming every ``helpers`` module the chapter's code cells import, and the test file of each module
it names.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from helpers.core import config
from helpers.course.runner import find_chapters, notebooks_dir
from tests.support import helpers_modules, imported_modules

REPO = config.REPO_ROOT
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

# Two minutes at about 250 words a minute is 500 words of prose; tables are skimmed a row at a time,
# and 120 lines hold that prose, the screenshots, the command table and the chapter table.
MAX_README_LINES = 120
MAX_README_PROSE_WORDS = 500

LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)\)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def links(text: str) -> list[tuple[str, str]]:
    """Every ``[text](target)`` and ``![alt](target)`` outside code, as (text, target): in a code
    block or a code span a link is not a link."""
    return LINK.findall(CODE_SPAN.sub("", CODE_BLOCK.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = CODE_SPAN.sub(lambda span: span.group(0).strip("`"), heading.strip().lower())
    text = LINK.sub(r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+)$", CODE_BLOCK.sub("", page.read_text()), re.MULTILINE)
    return {slug(heading) for heading in headings}


def link_problems(page: Path, text: str | None = None) -> list[str]:
    """What is wrong with the relative links of ``page`` (its own text unless ``text`` is given)."""
    problems = []
    for _, target in links(page.read_text() if text is None else text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file of the repository
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.is_relative_to(REPO):
            problems.append(f"{page.name}: {target} is outside the repository")
        elif subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO, check=False).returncode == 0:
            problems.append(f"{page.name}: {target} is git-ignored, so a clone does not have it")
        elif not path.exists():
            problems.append(f"{page.name}: {target} does not exist")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{page.name}: {target} names no heading of {path.name}")
    return problems


# --- Links ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_of_the_repository(page):
    assert link_problems(page) == []


def test_readme_links_every_page_under_docs():
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README.read_text())}
    assert [page.name for page in PAGES[1:] if page.resolve() not in linked] == []


def test_the_link_check_sees_a_missing_file_a_missing_heading_and_an_ignored_one_but_not_code():
    text = (
        "[gone](docs/no-such-page.md) [heading](docs/settings.md#no-such-heading) "
        "[fine](docs/settings.md#how-the-tests-use-them) [built](build/notebooks/) [up](../README.md) "
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
    )
    assert link_problems(README, text) == [
        "README.md: docs/no-such-page.md does not exist",
        "README.md: docs/settings.md#no-such-heading names no heading of settings.md",
        "README.md: build/notebooks/ is git-ignored, so a clone does not have it",
        "README.md: ../README.md is outside the repository",
    ]


# --- The chapter table ---------------------------------------------------------------------------


def table_rows(text: str, header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header row starts with ``header``, by column name."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(header))
    names = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(names, (cell.strip() for cell in line.strip().strip("|").split("|")), strict=True)))
    return rows


def chapter_rows(text: str | None = None) -> list[dict[str, str]]:
    return table_rows(README.read_text() if text is None else text, "| # | what you learn |")


def cell_links(cell: str) -> list[tuple[str, str]]:
    return [(name.strip("`"), target) for name, target in LINK.findall(cell)]


def module_name(target: str) -> str:
    """``helpers/serve/batch.py`` -> ``serve.batch``."""
    return ".".join(Path(target).relative_to("helpers").with_suffix("").parts)


def module_test(module: str) -> Path:
    """The test file of a module by the tests' layout: ``serve.batch`` -> tests/serve/test_batch.py."""
    subpackage, name = module.split(".")[:2]
    return Path("tests") / subpackage / f"test_{name}.py"


def notebook_imports(path: Path) -> set[str]:
    """The ``helpers`` modules a notebook's code cells import (``serve.batch``), files a cell writes
    with ``%%writefile`` included; IPython's ``%`` and ``!`` lines are left out."""
    modules = helpers_modules()
    found = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        if lines and lines[0].startswith("%%"):
            if not (lines[0].startswith("%%writefile") and lines[0].rstrip().endswith(".py")):
                continue
            lines = lines[1:]
        source = "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in lines)
        found |= imported_modules(source, modules)
    return found


def table_problems(text: str | None = None) -> list[str]:
    """How README's chapter table (or ``text``'s) differs from the notebooks, helpers/ and tests/."""
    rows = chapter_rows(text)
    chapters = find_chapters(notebooks_dir())
    listed = [target for row in rows for _, target in cell_links(row["notebook"])]
    problems = []
    if listed != [str(path.relative_to(REPO)) for path in chapters]:
        problems.append(f"the table's notebooks {listed} are not the chapters, in order, one a row")
    modules = helpers_modules()
    for row in rows:
        notebooks = [REPO / target for _, target in cell_links(row["notebook"])]
        named = []
        for name, target in cell_links(row["modules"]):
            if not target.startswith("helpers/") or not (REPO / target).is_file():
                problems.append(f"{row['#']}: module {target} does not exist")
                continue
            if name != module_name(target) or module_name(target) not in modules:
                problems.append(f"{row['#']}: {name} links to {target}")
            named.append(module_name(target))
        for path in (path for path in notebooks if path.is_file()):
            if missing := notebook_imports(path) - set(named):
                problems.append(f"{row['#']}: {path.name} imports {sorted(missing)}, which the row does not name")
        tests = [target for _, target in cell_links(row["tests"])]
        problems += [f"{row['#']}: test {target} does not exist" for target in tests if not (REPO / target).is_file()]
        expected = {str(module_test(module)) for module in named if (REPO / module_test(module)).is_file()}
        if set(tests) != expected:
            problems.append(f"{row['#']}: tests {sorted(set(tests))}, but its modules' tests are {sorted(expected)}")
    return problems


def test_readme_chapter_table_matches_the_notebooks_modules_and_tests():
    assert table_problems() == []


def test_the_table_check_sees_a_missing_row_a_module_left_out_and_a_test_that_does_not_exist():
    text = README.read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| 0\d \|", line)]
    without_row = text.replace(rows[1] + "\n", "")
    assert any("are not the chapters" in problem for problem in table_problems(without_row))
    row_01 = rows[0]
    without_module = text.replace(row_01, row_01.replace("[`core.data`](helpers/core/data.py), ", ""))
    assert table_problems(without_module) == [
        "01: 01_environment.ipynb imports ['core.data'], which the row does not name",
        (
            "01: tests ['tests/core/test_config.py', 'tests/core/test_data.py', 'tests/course/test_checks.py', "
            "'tests/course/test_environment.py'], but its modules' tests are ['tests/core/test_config.py', "
            "'tests/course/test_checks.py', 'tests/course/test_environment.py']"
        ),
    ]
    wrong_test = text.replace(row_01, row_01.replace("tests/core/test_data.py", "tests/test_data.py"))
    assert "01: test tests/test_data.py does not exist" in table_problems(wrong_test)


def test_notebook_imports_name_modules_by_the_module_a_name_comes_from():
    imports = notebook_imports(find_chapters(notebooks_dir())[6])  # 07: %%writefile cells, ! and % lines
    assert {"core.config", "ml.models", "serve.service_process", "serve.serving", "serve.streaming"} <= imports
    assert {"core", "ml"}.isdisjoint(imports)


# --- Short --------------------------------------------------------------------------------------


def prose_words(text: str) -> int:
    """Words a reader reads line by line: outside code blocks and tables, link targets left out."""
    prose = [line for line in CODE_BLOCK.sub("", text).splitlines() if not line.startswith("|")]
    return len(LINK.sub(r"\1", "\n".join(prose)).split())


def test_readme_is_read_in_two_minutes():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, "move the long reads to a page under docs/"
    assert prose_words(text) <= MAX_README_PROSE_WORDS, "move the long reads to a page under docs/"


def test_readme_keeps_the_commands_and_their_measured_times():
    text = README.read_text()
    for command in ("make course", "make test", "make unit"):
        assert re.search(rf"^- `{command}`: .*\d", text, re.MULTILINE), f"README gives no measured time for {command}"
