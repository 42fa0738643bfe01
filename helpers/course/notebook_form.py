"""The committed form of the chapter notebooks, and how to refresh it.

Committed notebooks carry what ``make course`` leaves when it runs every chapter in order, offline,
with the default parameters, on one fresh set of stores: what a learner sees going through the
chapters in order, and what the learner's-path test compares a fresh clone's ``make course`` with
(the cells nbval would compare), so those outputs must be reproducible. Execution metadata
(papermill's timings, timestamps) is stripped so a refresh only changes what changed.

``python -m helpers.course.notebook_form check`` lists what is off; ``refresh`` re-executes and rewrites.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat

from helpers.core import config
from helpers.course.runner import find_chapters, notebooks_dir, run_chapter

KERNEL_NAME = "python3"
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"tags"}


@contextmanager
def isolated_stores(quick: bool = False) -> Iterator[Path]:
    """Point every setting at a fresh temporary folder for the duration of the block; offline, and
    with the default parameters unless ``quick``."""
    base = Path(tempfile.mkdtemp(prefix="workbook-"))
    try:
        with config.temporary_environ({**config.isolated_env(base), "WORKBOOK_QUICK": "1" if quick else None}):
            yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def canonical(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without execution metadata: only kernelspec/language_info and cell tags stay."""
    notebook.metadata = {k: v for k, v in notebook.metadata.items() if k in ALLOWED_NOTEBOOK_METADATA}
    notebook.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    for cell in notebook.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ALLOWED_CELL_METADATA}
    return notebook


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What keeps a committed notebook from the agreed form; empty when it is fine."""
    found = []
    if notebook.metadata.get("kernelspec", {}).get("name") != KERNEL_NAME:
        found.append(f"kernelspec is not {KERNEL_NAME!r}")
    stray = set(notebook.metadata) - ALLOWED_NOTEBOOK_METADATA
    if stray:
        found.append(f"stray notebook metadata {sorted(stray)}")
    for number, cell in enumerate(notebook.cells):
        stray = set(cell.metadata) - ALLOWED_CELL_METADATA
        if stray:
            found.append(f"cell {number}: stray metadata {sorted(stray)}")
        if cell.cell_type != "code":
            continue
        if cell.source.strip() and cell.execution_count is None:
            found.append(f"cell {number}: not executed")
        if any(output.output_type == "error" for output in cell.outputs):
            found.append(f"cell {number}: error output")
    if not any("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells):
        found.append("no cell tagged 'parameters'")
    return found


def refresh(chapters: Sequence[Path], only: Sequence[Path] | None = None) -> None:
    """Re-execute ``chapters`` in order on one fresh set of isolated stores, as ``make course`` runs
    them, and rewrite them in canonical form.

    Args:
        chapters: every chapter, in order.
        only: the chapters to rewrite (default all). The chapters before the last of them run too,
            since each chapter's outputs depend on what the earlier ones left in the stores.

    Raises:
        RuntimeError: naming the first chapter that failed; nothing of it is written back.
    """
    wanted = list(chapters if only is None else only)
    last = max(chapters.index(path) for path in wanted)
    with isolated_stores() as base:
        for chapter in chapters[: last + 1]:
            result = run_chapter(chapter, base / "executed")
            if not result.ok:
                raise RuntimeError(f"{chapter.name} failed: {result.error}; its committed copy is unchanged")
            if chapter in wanted:
                executed = nbformat.read(result.output_path, as_version=4)
                nbformat.write(canonical(executed), chapter)
                print(f"refreshed {chapter.name} in {result.seconds:.1f} s")
            else:
                print(f"ran {chapter.name} in {result.seconds:.1f} s (the chapters after it depend on it)")


def main(argv: Sequence[str] | None = None) -> int:
    """``check`` (exit 1 when a notebook is off) or ``refresh`` the chapter notebooks."""
    parser = argparse.ArgumentParser(prog="python -m helpers.course.notebook_form", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["check", "refresh"])
    parser.add_argument("--only", nargs="+", default=[], metavar="NN", help="chapters, e.g. --only 01 02")
    args = parser.parse_args(argv)
    chapters = find_chapters(notebooks_dir(), args.only)
    if args.action == "refresh":
        refresh(find_chapters(notebooks_dir()), only=chapters)
        return 0
    bad = {path.name: problems(nbformat.read(path, as_version=4)) for path in chapters}
    for name, found in bad.items():
        for problem in found:
            print(f"{name}: {problem}")
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
