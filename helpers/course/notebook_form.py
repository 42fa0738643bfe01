"""The committed form of the chapter notebooks, and how to refresh it.

Committed notebooks carry what ``make course`` leaves when it runs every chapter in order, offline,
with the default parameters, in a fresh clone at its default locations: what a learner sees going
through the chapters in order, with no path of the machine that made them, and what the
learner's-path test compares a fresh clone's ``make course`` with (the cells nbval would compare),
so those outputs must be reproducible. Execution metadata (papermill's timings, timestamps) is
stripped so a refresh only changes what changed; each code cell keeps the digest of the source its
outputs came from, so an edit without a refresh shows.

``python -m helpers.course.notebook_form check`` lists what is off; ``refresh`` re-executes and rewrites.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat

from helpers.core import config
from helpers.course.runner import find_chapters, notebooks_dir

KERNEL_NAME = "python3"
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
# ``executed_source``: the digest of the source the cell's outputs came from (see ``source_digest``).
ALLOWED_CELL_METADATA = {"tags", "executed_source"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Absolute paths of a machine: temporary folders, homes, the checkout itself.
_MACHINE_PATH = re.compile(
    r"(?<![\w.~<>/-])/(?:tmp|var/folders|private|root|home|Users|work|opt|srv|mnt|usr)/[^\s'\"`<>)\]]*"
)
_ANSI = re.compile(r"\x1b\[")
_WARNING = re.compile(r"\b[A-Z]\w*Warning\b|\bWARNING\b|\bwarnings\.warn\b")
_TRACEBACK = "Traceback (most recent call last)"


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


def package_caches() -> dict[str, str]:
    """Where this machine's uv and pip keep their caches, so a clone's set-up reuses them even when
    its environment (or its HOME) is a learner's."""
    uv = shutil.which("uv") or str(config.REPO_ROOT / ".tools" / "bin" / "uv")
    uv_cache = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    pip_cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    caches = {"UV_CACHE_DIR": uv_cache}
    if pip_cache.returncode == 0:
        caches["PIP_CACHE_DIR"] = pip_cache.stdout.strip()
    return caches


@contextmanager
def working_copy() -> Iterator[Path]:
    """A clone of this repository in a temporary folder, with the working tree's uncommitted changes
    (edited, new and deleted files) applied, so a run there sees what is about to be committed."""
    base = Path(tempfile.mkdtemp(prefix="workbook-refresh-"))
    clone = base / config.REPO_ROOT.name
    try:
        subprocess.run(["git", "clone", "--quiet", str(config.REPO_ROOT), str(clone)], check=True)

        def tree(*flags: str) -> list[str]:
            listed = subprocess.run(
                ["git", "ls-files", "-z", *flags], cwd=config.REPO_ROOT, capture_output=True, check=True
            ).stdout
            return [name for name in listed.decode().split("\0") if name]

        deleted = set(tree("--deleted"))
        for name in deleted:
            (clone / name).unlink(missing_ok=True)
        for name in tree("--modified", "--others", "--exclude-standard"):
            if name not in deleted:
                (clone / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(config.REPO_ROOT / name, clone / name)
        yield clone
    finally:
        shutil.rmtree(base, ignore_errors=True)


def source_digest(source: str) -> str:
    """The short digest of a code cell's source that its committed outputs were made from."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


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
        if cell.cell_type == "code":
            cell.metadata["executed_source"] = source_digest(cell.source)
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
        if cell.source.strip() and cell.metadata.get("executed_source") != source_digest(cell.source):
            found.append(f"cell {number}: its source changed after its outputs were made (run `make notebooks`)")
    found += output_problems(notebook)
    if not any("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells):
        found.append("no cell tagged 'parameters'")
    return found


def _output_texts(output: nbformat.NotebookNode) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return ["\n".join(output.traceback)]
    data = output.get("data", {})
    return [value for kind, value in data.items() if kind.startswith("text/") and isinstance(value, str)]


def _image_paths() -> set[str]:
    """Absolute paths the service's Dockerfile names: they are the image's, not a machine's."""
    dockerfile = config.REPO_ROOT / "Dockerfile"
    return set(_MACHINE_PATH.findall(dockerfile.read_text())) if dockerfile.exists() else set()


def _announced(notebook: nbformat.NotebookNode, number: int) -> bool:
    """Whether the prose around a code cell (the nearest markdown cell before it and after it) speaks
    of a warning, so a learner who meets it has been told."""
    cells = notebook.cells
    before = next((cell for cell in reversed(cells[:number]) if cell.cell_type == "markdown"), None)
    after = next((cell for cell in cells[number + 1 :] if cell.cell_type == "markdown"), None)
    return any(cell is not None and "warn" in cell.source.lower() for cell in (before, after))


def output_problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What in a notebook's outputs shows a machine or its tooling rather than a learner's run:
    absolute paths, terminal escapes, tracebacks, widgets (a saved notebook keeps no widget state, so
    they show dead), and warnings the prose around them does not announce."""
    found = []
    allowed_paths = _image_paths()
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if WIDGET_VIEW in output.get("data", {}):
                found.append(f"cell {number}: a widget, which the saved notebook shows without its state")
            for text in _output_texts(output):
                paths = sorted(set(_MACHINE_PATH.findall(text)) - allowed_paths)
                paths = [str(config.REPO_ROOT)] if str(config.REPO_ROOT) in text else paths
                if paths:
                    found.append(f"cell {number}: a machine path in its output: {paths[0]}")
                if _ANSI.search(text):
                    found.append(f"cell {number}: terminal escape codes in its output")
                if _TRACEBACK in text:
                    found.append(f"cell {number}: a traceback in its output")
                warning = _WARNING.search(text)
                if warning and not _announced(notebook, number):
                    found.append(f"cell {number}: a warning the prose does not announce: {warning.group(0)}")
    return found


def refresh(chapters: Sequence[Path], only: Sequence[Path] | None = None) -> None:
    """Run the course as a learner does, ``make course`` in a fresh clone at its default locations
    (offline, with the default parameters), and write the chapters' executed copies back in
    canonical form. The clone carries the working tree's changes; its environments come from the
    package managers' caches.

    Args:
        chapters: every chapter, in order.
        only: the chapters to rewrite (default all). The chapters before the last of them run too,
            since each chapter's outputs depend on what the earlier ones left in the stores.

    Raises:
        RuntimeError: the course failed; no notebook is written back.
    """
    wanted = list(chapters if only is None else only)
    last = max(chapters.index(path) for path in wanted)
    numbers = ",".join(path.name[:2] for path in chapters[: last + 1])
    with working_copy() as clone:
        course = subprocess.run(
            ["make", "--no-print-directory", "course", f"COURSE_ARGS=--offline --only {numbers}"],
            cwd=clone,
            env=config.learner_environ(package_caches()),
            capture_output=True,
            text=True,
        )
        print(course.stdout[course.stdout.find("chapter ") :].rstrip())
        if course.returncode != 0:
            raise RuntimeError(f"make course failed in the clone; no notebook changed:\n{course.stderr[-3000:]}")
        for chapter in wanted:
            executed = nbformat.read(clone / "build" / "notebooks" / chapter.name, as_version=4)
            nbformat.write(canonical(executed), chapter)
            print(f"refreshed {chapter.name}")


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
