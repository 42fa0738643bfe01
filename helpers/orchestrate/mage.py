"""Drive chapter 05's Mage project (``orchestration/``) from the course environment.

Mage lives in its own environment, ``.venv-mage`` (``make mage-setup``), because mage-ai pins
packages the course needs newer. The notebook never switches kernels: it runs pipelines with
``mage run`` in that environment (:func:`run_pipeline`), reads what blocks produced
(:func:`block_output`), and starts Mage's server (:func:`start_server`) to fire triggers over its
REST API, as any client would. Block outputs, logs and Mage's database go to ``MAGE_DATA_DIR``,
``<build dir>/mage``, so the project folder itself stays as committed. A learner's blocks go into a
fresh copy of the project under ``build/`` (:func:`copy_project`), run the same way. Without Mage,
:func:`run_blocks` runs a pipeline's block files in this process, as Mage runs them.

Run ``python -m helpers.orchestrate.mage`` (``make mage``) for the Mage UI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import re
import runpy
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import requests
import yaml

from helpers.core import config
from helpers.core.polling import WaitTimeout, wait_for
from helpers.servers.processes import (
    LoopbackServer,
    claimed_port,
    ensure_ready,
    http_answers,
    run_until_interrupted,
    start_in_group,
)

logger = logging.getLogger(__name__)

PROJECT_DIR = config.REPO_ROOT / "orchestration"
MAGE_VENV = config.REPO_ROOT / ".venv-mage"
DEFAULT_PORT = 6789
FINISHED = ("completed", "failed", "cancelled")
_READY_POLL_SECONDS = 0.5
_POOL_EXIT_SECONDS = 3


class MageNotInstalledError(RuntimeError):
    """``.venv-mage`` is missing: the chapter's orchestrator has not been set up yet."""


class PipelineFailedError(RuntimeError):
    """A ``mage run`` ended with an error; the message ends with the last lines Mage printed."""


def mage_executable() -> Path:
    """The ``mage`` command of ``.venv-mage``.

    Raises:
        MageNotInstalledError: saying how to install it.
    """
    mage = MAGE_VENV / "bin" / "mage"
    if not mage.exists():
        raise MageNotInstalledError(
            f"Mage is not installed ({mage} is missing). Run `make mage-setup` in {config.REPO_ROOT} "
            "(about a minute): chapter 05's orchestrator has an environment of its own."
        )
    return mage


def data_dir() -> Path:
    """``MAGE_DATA_DIR``: block outputs, logs and Mage's SQLite database (``<build dir>/mage``)."""
    return config.build_dir() / "mage"


def mage_env(**extra: str) -> dict[str, str]:
    """This process's environment (data, MLflow store, offline and quick settings) plus Mage's own."""
    # The course kernel's virtualenv must not leak into Mage's interpreter, nor its forced colours
    # (a Jupyter kernel sets FORCE_COLOR) into Mage's output, which is read as text.
    return config.child_environ(
        {"MAGE_DATA_DIR": str(data_dir()), **extra}, drop=("VIRTUAL_ENV", "FORCE_COLOR", "CLICOLOR_FORCE")
    )


# --- The project ---------------------------------------------------------------------------------


def pipeline_names(project: Path = PROJECT_DIR) -> list[str]:
    """The project's pipelines, in the order the chapter presents them."""
    order = ["data_preparation", "sklearn_training", "xgboost_training", "deploying", "batch_inference", "retraining"]
    found = sorted(path.parent.name for path in (project / "pipelines").glob("*/metadata.yaml"))
    return [name for name in order if name in found] + [name for name in found if name not in order]


def pipeline_metadata(pipeline: str, project: Path = PROJECT_DIR) -> dict[str, Any]:
    """A pipeline's ``metadata.yaml``: its blocks, their types and order, its variables."""
    path = project / "pipelines" / pipeline / "metadata.yaml"
    if not path.exists():
        raise ValueError(f"no pipeline {pipeline!r} in {project}; there are {pipeline_names(project)}")
    return yaml.safe_load(path.read_text())


def block_file(block: dict[str, Any]) -> str:
    """Where a block of ``metadata.yaml`` keeps its code, relative to the project: ``custom/x.py``, ``sensors/x.py``."""
    folder = "custom" if block["type"] == "custom" else f"{block['type']}s"
    return f"{folder}/{block['uuid']}.py"


def describe() -> pd.DataFrame:
    """One row per block of every pipeline: its type, the file holding its code and what feeds it."""
    rows = []
    for pipeline in pipeline_names():
        for block in pipeline_metadata(pipeline)["blocks"]:
            rows.append(
                {
                    "pipeline": pipeline,
                    "block": block["uuid"],
                    "type": block["type"],
                    "file": block_file(block),
                    "upstream": ", ".join(block["upstream_blocks"]) or "-",
                }
            )
    return pd.DataFrame(rows)


def copy_project(target: Path) -> Path:
    """A fresh copy of the project at ``target`` (under ``build/``), for blocks a learner writes.

    Whatever an earlier copy held, its files and the outputs Mage kept of its runs, is removed first,
    so a re-run starts from the committed project. Returns ``target``.
    """
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(data_dir() / target.name, ignore_errors=True)
    shutil.copytree(PROJECT_DIR, target, ignore=shutil.ignore_patterns("__pycache__", ".variables", ".logs"))
    return target


# --- Blocks without Mage -------------------------------------------------------------------------

BLOCK_TYPES = ("data_loader", "transformer", "custom", "data_exporter", "sensor")


@dataclass(frozen=True)
class BlockCode:
    """What a block file defines: its decorated function, by decorator, and its ``@test`` functions."""

    path: Path
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    tests: list[Callable[..., Any]] = field(default_factory=list)

    def function(self) -> Callable[..., Any]:
        """The block's function (the one decorated ``@data_loader``, ``@transformer``, ...).

        Raises:
            LookupError: the file decorates none.
        """
        if not self.functions:
            raise LookupError(f"no function decorated with one of {', '.join('@' + t for t in BLOCK_TYPES)}")
        return next(iter(self.functions.values()))


def load_block(path: Path) -> BlockCode:
    """Run a block file as Mage does, with its decorators already defined, and collect what they decorate.

    Raises:
        Exception: whatever the file raises as it runs (a SyntaxError, an ImportError, ...).
    """
    found = BlockCode(Path(path))

    def decorator(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def mark(function: Callable[..., Any]) -> Callable[..., Any]:
            if name == "test":
                found.tests.append(function)
            else:
                found.functions[name] = function
            return function

        return mark

    runpy.run_path(str(path), init_globals={name: decorator(name) for name in (*BLOCK_TYPES, "test")})
    return found


def run_blocks(
    pipeline: str, variables: dict[str, Any] | None = None, *, skip: Iterable[str] = (), project: Path = PROJECT_DIR
) -> dict[str, Any]:
    """Run a pipeline's blocks in this process, in order, as ``mage run --test`` does: each block gets its
    upstream blocks' outputs and the run's variables, then its ``@test`` functions get its output.

    Args:
        pipeline: A name from :func:`pipeline_names`.
        variables: Runtime variables, over the pipeline's own.
        skip: Block types not to run, e.g. ``("sensor",)`` when the data is known to be there.

    Returns:
        Each block's output, by block name.

    Raises:
        Exception: whatever a block or its test raised (an AssertionError for a failed test).
    """
    metadata = pipeline_metadata(pipeline, project)
    run_variables = {**(metadata.get("variables") or {}), **(variables or {})}
    outputs: dict[str, Any] = {}
    for block in metadata["blocks"]:
        if block["type"] in skip:
            continue
        code = load_block(project / block_file(block))
        upstream = [outputs[name] for name in block["upstream_blocks"] if name in outputs]
        output = code.function()(*upstream, **run_variables)
        for test in code.tests:
            test(output)
        outputs[block["uuid"]] = output
    return outputs


# --- mage run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineRun:
    """One ``mage run``: its exit code, duration and what it printed (block prints and test results)."""

    pipeline: str
    returncode: int
    seconds: float
    output: str
    project: Path = PROJECT_DIR
    # Wall-clock time the run started: a block file changed after it is not the code that ran.
    started_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and "Pipeline run completed." in self.output

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def tests_passed(self) -> list[tuple[int, int]]:
        """``(passed, run)`` for each block whose ``@test`` functions Mage ran, in the order it ran them."""
        counts = re.findall(r"^(\d+)/(\d+) tests passed\.$", self.output, re.M)
        return [(int(passed), int(run)) for passed, run in counts]

    def failed_tests(self) -> dict[str, str]:
        """Each ``@test`` that failed, as Mage reported it: ``{"build_sets.test_sets": "AssertionError: ..."}``."""
        failed = {}
        lines = self.output.splitlines()
        for index, line in enumerate(lines):
            if match := re.match(r"FAIL: (\w+) \(block: (\w+)\)", line):
                # Mage prints the test's traceback up to a line of dashes; its last error line is the test's.
                report = itertools.takewhile(lambda text: not text.startswith("---"), lines[index + 2 :])
                errors = [text for text in report if _ERROR_LINE.match(text)]
                failed[f"{match[2]}.{match[1]}"] = errors[-1] if errors else "failed"
        return failed

    def error(self) -> str | None:
        """The last error Mage printed (the one that ended the run), or None."""
        errors = [line for line in self.output.splitlines() if _ERROR_LINE.match(line)]
        return errors[-1] if errors else None

    def raise_for_status(self) -> PipelineRun:
        """Return self when the run succeeded.

        Raises:
            PipelineFailedError: with the pipeline, exit code and the end of Mage's output.
        """
        if not self.ok:
            raise PipelineFailedError(f"pipeline {self.pipeline} failed (exit code {self.returncode}):\n{self.tail()}")
        return self


# Lines Mage prints on every run that say nothing about the pipeline.
_NOISE = (
    "DBT library not installed",
    "No running loop, using asyncio.run",
    "protected namespace",
    "protected_namespaces",
    "warnings.warn(",
    "UserWarning",
    "FutureWarning",
    "DeprecationWarning",
    "Message signing is disabled",
)


# An exception's line in a traceback: "AssertionError: ...", "mlflow.exceptions.MlflowException: ...".
_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b")


def _readable(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.strip() and not any(n in line for n in _NOISE))


def run_pipeline(
    pipeline: str,
    variables: dict[str, Any] | None = None,
    *,
    tests: bool = True,
    timeout: float = 1800,
    project: Path = PROJECT_DIR,
) -> PipelineRun:
    """``mage run orchestration <pipeline>`` in ``.venv-mage``, with ``@test`` blocks on by default.

    Args:
        pipeline: A name from :func:`pipeline_names`.
        variables: Runtime variables; they override the pipeline's own (e.g. ``{"train_month": "2021-02"}``).
        tests: Run the blocks' ``@test`` functions; a failing test fails the run.
        timeout: Seconds before the run is killed.
        project: The project to run it from: the course's, or a copy (:func:`copy_project`).

    Returns:
        The run; call ``.raise_for_status()`` to raise when it failed.
    """
    pipeline_metadata(pipeline, project)  # a clear error for a misspelt name, before Mage's own
    # Absolute: Mage runs in the repository's root, and a notebook may pass a path relative to its own folder.
    command = [
        str(mage_executable()),
        "run",
        str(Path(project).resolve()),
        pipeline,
        "--test" if tests else "--no-test",
    ]
    if variables:
        command += ["--runtime-vars", json.dumps(variables)]
    started, started_at = time.monotonic(), time.time()
    try:
        # Mage prints tracebacks with rich, which wraps at 80 columns when not on a terminal.
        done = subprocess.run(
            command, env=mage_env(COLUMNS="160"), capture_output=True, text=True, timeout=timeout, cwd=config.REPO_ROOT
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        returncode, output = -1, f"{expired.stdout or ''}{expired.stderr or ''}\nkilled after {timeout:g} s"
    seconds = round(time.monotonic() - started, 1)
    return PipelineRun(pipeline, returncode, seconds, _readable(output), project, started_at)


def block_output(pipeline: str, block: str, index: int = 0, *, project: Path = PROJECT_DIR) -> pd.DataFrame | Any:
    """What ``block`` returned in the latest ``mage run`` of ``pipeline`` in ``project``: a frame, or JSON data.

    Raises:
        FileNotFoundError: the block has not run yet (with ``mage run``) under this ``MAGE_DATA_DIR``.
    """
    # Mage keeps a project's outputs in a folder named after the project's folder.
    folder = data_dir() / project.name / "pipelines" / pipeline / ".variables" / block / f"output_{index}"
    if (folder / "data.parquet").exists():
        return pd.read_parquet(folder / "data.parquet")
    if (folder / "data.json").exists():
        return json.loads((folder / "data.json").read_text())
    raise FileNotFoundError(f"no output of block {block!r} in {folder}: run the pipeline {pipeline!r} first")


# --- The server ----------------------------------------------------------------------------------


class MageApi:
    """The few calls of Mage's REST API the course makes (triggers and runs), on ``self.url``."""

    url: str

    def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = requests.request(method, f"{self.url}/api/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        body = response.json()
        if "error" in body:
            raise RuntimeError(f"Mage API {method} /api/{path}: {body['error']}")
        return body

    def triggers_loaded(self) -> bool:
        """True once the API lists triggers: ``/api/status`` answers while Mage is still migrating its
        database, and a call in that window fails with "no such column"."""
        if not http_answers(f"{self.url}/api/status"):
            return False
        try:
            return bool(self.schedules())
        except (requests.RequestException, RuntimeError, ValueError):
            return False

    def schedules(self) -> list[dict[str, Any]]:
        """Every trigger Mage loaded from the project's ``triggers.yaml`` files."""
        return self.api("GET", "pipeline_schedules")["pipeline_schedules"]

    def schedule(self, name: str) -> dict[str, Any]:
        for found in self.schedules():
            if found["name"] == name:
                return found
        raise LookupError(f"no trigger named {name!r}; Mage has {[s['name'] for s in self.schedules()]}")

    def trigger(self, name: str, variables: dict[str, Any] | None = None) -> int:
        """Fire the API trigger ``name`` as an outside client does, and return the new run's id."""
        found = self.schedule(name)
        if found["schedule_type"] != "api":
            raise ValueError(f"trigger {name!r} is a {found['schedule_type']} trigger, not an API one")
        self._let_idle_workers_exit()
        body = self.api(
            "POST",
            f"pipeline_schedules/{found['id']}/pipeline_runs/{found['token']}",
            json={"pipeline_run": {"variables": variables or {}}},
        )
        return body["pipeline_run"]["id"]

    def _let_idle_workers_exit(self) -> None:
        # Mage 0.9.80's process queue exits its worker pool about a second after the last job
        # ends; a job enqueued in that second is never picked up and its run waits forever. So a
        # new run waits until the pool of a run that has just finished is gone.
        recent = self.api("GET", "pipeline_runs", params={"_limit": 5}).get("pipeline_runs", [])
        finished = [run["completed_at"] or run["updated_at"] for run in recent if run["status"] in FINISHED]
        if finished:
            since = (dt.datetime.now() - dt.datetime.fromisoformat(max(finished))).total_seconds()
            if 0 <= since < _POOL_EXIT_SECONDS:
                time.sleep(_POOL_EXIT_SECONDS - since)

    def run(self, run_id: int) -> dict[str, Any]:
        """A pipeline run as Mage reports it, with ``block_runs``."""
        return self.api("GET", f"pipeline_runs/{run_id}")["pipeline_run"]

    def block_statuses(self, run_id: int) -> dict[str, str]:
        """Each block of the run and its status (``completed``, ``running``, ``failed``, ...)."""
        return {block["block_uuid"]: block["status"] for block in self.run(run_id).get("block_runs", [])}

    def wait(
        self, run_id: int, timeout: float = 300, poll: float = 0.5, until: tuple[str, ...] = FINISHED
    ) -> dict[str, Any]:
        """Poll the run until its status is one of ``until``; return it.

        Raises:
            TimeoutError: with the run's and its blocks' last statuses.
        """
        try:
            return wait_for(
                lambda: self.run(run_id), done=lambda run: run["status"] in until, timeout=timeout, poll=poll
            )
        except WaitTimeout as waited:
            run = waited.last
            blocks = {block["block_uuid"]: block["status"] for block in run.get("block_runs", [])}
            raise TimeoutError(
                f"run {run_id} of {run['pipeline_uuid']} is still {run['status']} after {timeout:g} s; blocks: {blocks}"
            ) from None


@dataclass
class MageClient(MageApi):
    """A Mage server started elsewhere (e.g. ``make mage`` in a terminal), reached at ``url``."""

    url: str = f"http://127.0.0.1:{DEFAULT_PORT}"

    def answers(self) -> bool:
        """True when a Mage server answers at ``url`` and serves this checkout's project.

        A Mage server of another checkout (another clone, a test run) on the same port would run
        the pipeline on its own code and stores, so it counts as no server.
        """
        try:
            response = requests.get(f"{self.url}/api/status", timeout=2)
            response.raise_for_status()
            served = {Path(status["repo_path"]).resolve() for status in response.json()["statuses"]}
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return False
        if PROJECT_DIR.resolve() in served:
            return True
        logger.warning(
            "The Mage server at %s serves %s, not this checkout's %s; not using it.",
            self.url,
            ", ".join(map(str, sorted(served))),
            PROJECT_DIR,
        )
        return False


@dataclass
class MageServer(LoopbackServer, MageApi):
    """``mage start`` on loopback, started and stopped by this process."""

    # The server's temporary folder (TMPDIR), removed once it has stopped.
    scratch: Path | None = None

    def stop(self, timeout: float = 10) -> None:
        """Stop the server and its workers, then remove its temporary folder; calling it again does nothing."""
        super().stop(timeout)
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def start_server(port: int = DEFAULT_PORT, *, alert_webhook: str | None = None, timeout: float = 120) -> MageServer:
    """Start ``mage start`` on 127.0.0.1 for the project and wait until its API answers.

    Args:
        port: Port to listen on; a busy one is replaced by a free one.
        alert_webhook: Where failed triggered runs post their alert (``WORKBOOK_ALERT_WEBHOOK_URL``).
        timeout: Seconds to wait for the API.

    Raises:
        MageNotInstalledError: no ``.venv-mage``.
        RuntimeError: the server exited or did not answer in time; the message quotes its log.
    """
    host = "127.0.0.1"
    extra = {
        "REQUIRE_USER_AUTHENTICATION": "0",  # loopback only; the REST calls need no login
        # Mage's scheduler looks for work every 10 s by default, so each block of a triggered run
        # waited up to 10 s to start; every second costs little for one learner's server.
        "SCHEDULER_TRIGGER_INTERVAL": "1",
    }
    if alert_webhook:
        extra["WORKBOOK_ALERT_WEBHOOK_URL"] = alert_webhook
    with claimed_port(host, port) as chosen:
        if port and chosen != port:
            logger.warning("Port %d is busy; starting Mage on port %d instead.", port, chosen)
        command = [str(mage_executable()), "start", str(PROJECT_DIR), "--host", host, "--port", str(chosen)]
        log_path = config.build_dir() / f"mage-server-{chosen}.log"
        # Stopped, Mage leaves its kernel's connection file and a multiprocessing folder in the temp folder:
        # give it one of its own to remove. Not under build/: a socket path there could pass 107 bytes.
        scratch = Path(tempfile.mkdtemp(prefix="mage-"))
        process = start_in_group(command, mage_env(**extra, TMPDIR=str(scratch)), log_path, cwd=config.REPO_ROOT)
        server = MageServer(process=process, log_path=log_path, port=chosen, scratch=scratch)
        ensure_ready(
            server,
            command,
            server.triggers_loaded,
            label="Mage server",
            what=f"{server.url}/api/pipeline_schedules",
            timeout=timeout,
            poll=_READY_POLL_SECONDS,
        )
    logger.info("Mage ready at %s (log: %s)", server.url, log_path)
    return server


def main(argv: list[str] | None = None) -> None:
    """Run the Mage UI in the foreground until Ctrl-C (``make mage``)."""
    parser = argparse.ArgumentParser(description="Open the Mage UI on the course's pipelines.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_until_interrupted(
        "Mage", lambda: start_server(port=args.port), lambda server: f"Mage UI: {server.public_url}", expected="10-30 s"
    )


if __name__ == "__main__":
    main()
