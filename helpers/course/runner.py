"""Run the whole course: execute every chapter notebook in order and summarise the results.

``python -m helpers.course`` (or ``make course``) executes ``notebooks/NN_*.ipynb`` with papermill
into ``build/notebooks/``, one kernel per chapter, and prints one row per chapter: its status, how
long it took and its key result (the output of the cell tagged ``key-result``). A failing chapter
does not stop the others; the exit status is non-zero if any chapter failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError
from traitlets.config import Config

from helpers.core import config

KEY_RESULT_TAG = "key-result"
KERNEL_NAME = "python3"
CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
# The kernel and papermill talk over loopback TCP; with CurveZMQ keys (the python3 kernelspec
# supports them) that traffic is encrypted, and the kernel no longer warns a learner that it is not.
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})


@dataclass(frozen=True)
class ChapterResult:
    """The outcome of executing one chapter notebook."""

    chapter: str
    ok: bool
    seconds: float
    key_result: str | None
    output_path: Path
    error: str | None = None

    @property
    def status(self) -> str:
        """``ok`` or ``FAILED``, as printed in the summary."""
        return "ok" if self.ok else "FAILED"


def notebooks_dir() -> Path:
    """Folder of the chapter notebooks (``<repo>/notebooks``)."""
    return config.REPO_ROOT / "notebooks"


def find_chapters(folder: Path, only: Iterable[str] = ()) -> list[Path]:
    """List the chapter notebooks in ``folder``, in chapter order.

    Args:
        folder: where the ``NN_topic.ipynb`` notebooks are.
        only: chapter numbers to keep (``"02"`` or ``"2"``); empty keeps them all.

    Returns:
        The notebook paths sorted by name, which is chapter order.
    """
    chapters = sorted(folder.glob(CHAPTER_GLOB))
    wanted = {number.zfill(2) for number in only}
    if wanted:
        chapters = [path for path in chapters if path.name[:2] in wanted]
    return chapters


def _output_text(output: nbformat.NotebookNode) -> str | None:
    if output.get("output_type") in {"execute_result", "display_data"}:
        return output.get("data", {}).get("text/plain")
    if output.get("output_type") == "stream" and output.get("name") == "stdout":
        return output.get("text")
    return None


def key_result(notebook: nbformat.NotebookNode) -> str | None:
    """The key result of an executed notebook, on one line.

    It is the ``text/plain`` output of the code cell tagged ``key-result`` or, when that cell
    only printed, what it printed to stdout. Lines are joined with ``"; "``.

    Args:
        notebook: an executed notebook.

    Returns:
        The text, or ``None`` when no cell is tagged or the tagged cell has no text output.
    """
    for cell in notebook.cells:
        if cell.cell_type != "code" or KEY_RESULT_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        outputs = cell.get("outputs", [])
        rich = [out for out in outputs if out.get("output_type") in {"execute_result", "display_data"}]
        texts = [text for text in map(_output_text, rich) if text]
        texts = texts or [text for text in map(_output_text, outputs) if text]
        text = "\n".join(texts)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return "; ".join(lines) or None
    return None


def run_chapter(notebook: Path, output_dir: Path) -> ChapterResult:
    """Execute one chapter notebook with papermill and read its key result.

    The kernel is ``python3`` resolved from this interpreter's environment and runs with the
    notebook's folder as working directory. An error in the notebook is recorded, not raised.

    Args:
        notebook: the chapter notebook.
        output_dir: where the executed copy is written (same file name).

    Returns:
        The chapter's result, with its error message when it failed.
    """
    notebook = notebook.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    output_path = output_dir.resolve() / notebook.name
    output_path.unlink(missing_ok=True)  # never report a key result from an earlier run
    start = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output_path),
            kernel_name=KERNEL_NAME,
            cwd=str(notebook.parent),
            progress_bar=False,
            config=KERNEL_CONFIG,
        )
    except PapermillExecutionError as exc:
        error = f"cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"
    # Whatever else breaks a chapter (a kernel that dies or never starts) must not stop the others.
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    result = key_result(nbformat.read(output_path, as_version=4)) if output_path.exists() else None
    return ChapterResult(notebook.stem, error is None, seconds, result, output_path, error)


def run_course(chapters: Sequence[Path], output_dir: Path) -> list[ChapterResult]:
    """Execute the chapters in order, reporting progress on stderr.

    Args:
        chapters: notebooks to run, in order.
        output_dir: where the executed notebooks are written.

    Returns:
        One result per chapter, failed ones included.
    """
    results = []
    for notebook in chapters:
        print(f"running {notebook.stem} ...", file=sys.stderr, flush=True)
        results.append(run_chapter(notebook, output_dir))
    return results


def format_table(results: Sequence[ChapterResult], width: int = 60) -> str:
    """Summary table: chapter, status, seconds and key result (``-`` when there is none).

    Args:
        results: chapter results in order.
        width: key results longer than this are cut with an ellipsis.

    Returns:
        The table as text, with a header row.
    """
    rows = [("chapter", "status", "seconds", "key result")]
    for result in results:
        text = result.key_result or "-"
        if len(text) > width:
            text = text[: width - 1] + "…"
        rows.append((result.chapter, result.status, f"{result.seconds:.1f}", text))
    name_width = max(len(row[0]) for row in rows)
    return "\n".join(
        f"{chapter:<{name_width}}  {status:<6}  {seconds:>7}  {text}".rstrip()
        for chapter, status, seconds, text in rows
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.course",
        description="Execute the chapter notebooks in order into build/notebooks/ and summarise them.",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NN",
        help="run only these chapters, e.g. --only 01 02 (commas work too)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small parameters in every chapter (sets WORKBOOK_QUICK=1)"
    )
    parser.add_argument("--offline", action="store_true", help="never touch the network (sets WORKBOOK_OFFLINE=1)")
    parser.add_argument("--notebooks-dir", type=Path, default=notebooks_dir(), help="folder of the chapter notebooks")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="where executed notebooks go (default build/notebooks)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (1 if any chapter failed)."""
    args = _parse_args(argv)
    only = [number for item in args.only for number in item.split(",") if number]
    chapters = find_chapters(args.notebooks_dir, only)
    if not chapters:
        available = ", ".join(path.stem for path in find_chapters(args.notebooks_dir)) or "none"
        print(
            f"No chapter notebooks to run in {args.notebooks_dir} (--only {' '.join(only) or '-'}); "
            f"available: {available}.",
            file=sys.stderr,
        )
        return 2
    # The kernels inherit this process's environment, which is how the switches reach them.
    switches = {"WORKBOOK_QUICK": "1" if args.quick else None, "WORKBOOK_OFFLINE": "1" if args.offline else None}
    with config.temporary_environ({name: value for name, value in switches.items() if value}):
        results = run_course(chapters, args.output_dir or config.build_dir() / "notebooks")
    print(format_table(results))
    for result in results:
        if not result.ok:
            print(f"\n{result.chapter} failed: {result.error}\n  see {result.output_path}")
    return 0 if all(result.ok for result in results) else 1
