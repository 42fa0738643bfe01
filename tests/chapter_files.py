"""The files a chapter writes with ``%%writefile``, read from its committed notebook, so a test runs
the very code a learner reads (never a copy kept beside the tests)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from helpers.course import find_chapters, notebooks_dir


def written_file(chapter: str, filename: str) -> str:
    """The body of the ``%%writefile .../<filename>`` cell of chapter ``chapter`` (e.g. ``"06"``).

    Raises:
        LookupError: the chapter has no such cell.
    """
    path = find_chapters(notebooks_dir(), [chapter])[0]
    for cell in nbformat.read(path, as_version=4).cells:
        first, _, body = cell.source.partition("\n")
        if cell.cell_type == "code" and first.startswith("%%writefile") and first.endswith(f"/{filename}"):
            return body
    raise LookupError(f"{path.name} has no `%%writefile .../{filename}` cell")


def write_chapter_file(chapter: str, filename: str, folder: Path) -> Path:
    """Write the chapter's ``filename`` into ``folder`` as the notebook does, and return its path."""
    path = folder / filename
    path.write_text(written_file(chapter, filename) + "\n")
    return path
