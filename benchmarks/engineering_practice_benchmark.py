"""What chapter 10's checks cost, each as the chapter runs it: the figures behind its 30 s budget.

Builds the chapter's project in a temporary folder from the notebook's ``%%writefile`` cells, then
times each tool as a whole process, ``--runs`` times (median, min, max):
- the unit tests with pytest's plugin autoload (the course's environment brings nbval and xdist)
  and without it, as the chapter runs them;
- the behavioural tests on the champion pickled into a file, and on the registry's champion;
- ruff's check and format check, the workflow's schema check, and ``pre-commit run`` of the local
  hooks in a scratch git repository;
- moto's Kinesis server and the Lambda's consumer process, started until ready.
The champion is the course store's (``make course``), or a quick one registered on first use.
Nothing runs in parallel with the steps it times; a loaded machine slows every figure.

Run: .venv/bin/python benchmarks/engineering_practice_benchmark.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat

from helpers.core import config
from helpers.course.runner import find_chapters, notebooks_dir
from helpers.ml import models, registry, training
from helpers.serve import streaming
from helpers.servers import kinesis_local

TOOLS = Path(sys.executable).parent


def write_project(folder: Path) -> None:
    """Every file chapter 10 writes with ``%%writefile {work}/<path>``, under ``folder``."""
    chapter = find_chapters(notebooks_dir(), ["10"])[0]
    for cell in nbformat.read(chapter, as_version=4).cells:
        first, _, body = cell.source.partition("\n")
        if cell.cell_type == "code" and first.startswith("%%writefile {work}/"):
            path = folder / first.removeprefix("%%writefile {work}/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body + "\n")


def timed(label: str, runs: int, action: Callable[[], object]) -> None:
    seconds = []
    for _ in range(runs):
        started = time.monotonic()
        action()
        seconds.append(time.monotonic() - started)
    print(
        f"{label:<58} median {statistics.median(seconds):5.2f} s  (min {min(seconds):.2f}, max {max(seconds):.2f})",
        flush=True,
    )


def command(args: list[str], cwd: Path, **env: str) -> Callable[[], None]:
    """Run ``args`` in ``cwd`` to its end; a failure stops the benchmark with its output."""

    def run() -> None:
        done = subprocess.run(args, cwd=cwd, env=config.child_environ({"NO_COLOR": "1", **env}), capture_output=True)
        if done.returncode:
            sys.exit(f"`{' '.join(args)}` failed:\n{done.stdout.decode()[-2000:]}{done.stderr.decode()[-2000:]}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    config.apply_process_defaults()
    champion = registry.ensure_champion()
    print(f"champion: version {champion.version}; {runs} runs each")
    python = sys.executable
    no_plugins = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with tempfile.TemporaryDirectory(prefix="practice-bench-") as folder:
        work = Path(folder)
        write_project(work)
        pickled = training.save_model(models.load(registry.champion_uri()).pipeline, work / "champion.bin")

        pytest = [python, "-m", "pytest", "-q"]
        timed("pytest tests/unit, plugins autoloaded", runs, command([*pytest, "tests/unit"], work))
        timed(
            "pytest tests/unit, no plugin autoload (the chapter)",
            runs,
            command([*pytest, "tests/unit"], work, **no_plugins),
        )
        timed(
            "pytest tests/model, champion pickled in a file",
            runs,
            command([*pytest, "tests/model"], work, MODEL_URI=str(pickled), **no_plugins),
        )
        timed(
            "pytest tests/model, champion from the registry",
            runs,
            command([*pytest, "tests/model"], work, MODEL_URI=registry.champion_uri(), **no_plugins),
        )
        timed(
            "ruff check . && ruff format --check .",
            runs,
            lambda: (
                command([python, "-m", "ruff", "check", "."], work)(),
                command([python, "-m", "ruff", "format", "--check", "."], work)(),
            ),
        )
        schema = ["--builtin-schema", "vendor.github-workflows"]
        workflows = [str(work / ".github/workflows/ci-cd.yml"), str(config.REPO_ROOT / ".github/workflows/ci.yml")]
        timed(
            "check-jsonschema, both workflows",
            runs,
            command([str(TOOLS / "check-jsonschema"), *schema, *workflows], work),
        )

        subprocess.run(["git", "init", "--quiet", str(work)], check=True)
        hooks = {"PATH": f"{TOOLS}:{os.environ['PATH']}", "PRE_COMMIT_HOME": str(work / ".pre-commit-cache")}
        subprocess.run(["git", "add", "--all"], cwd=work, check=True)
        timed(
            "pre-commit run --all-files (ruff's two local hooks)",
            runs,
            command([python, "-m", "pre_commit", "run", "--all-files"], work, **hooks),
        )

        def kinesis_and_consumer() -> None:
            with kinesis_local.start_kinesis() as kinesis:
                kinesis.create_stream("ride_events")
                environ = {**kinesis.env(), "MODEL_URI": str(pickled)}
                streaming.start_consumer("ride_events", environ, work / "consumer.log").stop()

        timed("moto's Kinesis and the Lambda's consumer, until ready", runs, kinesis_and_consumer)


if __name__ == "__main__":
    main()
