"""Run the web service the way production does: gunicorn, as a real process, on loopback.

``start_service`` launches gunicorn with the same command line as the Dockerfile's ``CMD``
(:func:`gunicorn_args`), waits until ``/ping`` answers and returns a handle that stops the whole
process group; ``python -m helpers.serve.service_process`` (``make serve``) runs it in the foreground.
``start_command`` does the same for an app a chapter wrote itself (``python ping.py``, ``gunicorn
predict:app``), started as a learner would type it in a terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from helpers.core import config
from helpers.servers.processes import (
    LoopbackServer,
    claimed_port,
    ensure_ready,
    http_answers,
    start_in_group,
)

logger = logging.getLogger(__name__)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

APP = "helpers.serve.serving:create_app()"
DEFAULT_PORT = 9696
# Sized for two cores: one worker per core, so predictions (CPU work under the GIL) run in
# parallel; gthread workers keep client connections alive (sync workers close each one). Two
# threads let a slow client or a /metrics scrape not block the rest; four made the threads fight
# over the GIL (measured with wrk at 8 connections: p99 27 ms with 4 threads, 7-18 ms with 2).
THREADS = 2
_POLL_SECONDS = 0.05


def gunicorn_args(bind: str | None, workers: int) -> list[str]:
    """The gunicorn command line; the Dockerfile's ``CMD`` is ``gunicorn_args(None, 2)``.

    Args:
        bind: ``address:port``; None leaves it to gunicorn: ``0.0.0.0:$PORT``, as in the image.
        workers: gunicorn worker processes.
    """
    address = ["--bind", bind] if bind else []
    # gunicorn 25.1+ opens a control socket at one path per user (~/.gunicorn/gunicorn.ctl), which
    # services started side by side would take from each other; nobody runs gunicornc on them.
    return ["gunicorn", *address, "--workers", str(workers), "--threads", str(THREADS), "--no-control-socket", APP]


@dataclass
class ServiceProcess(LoopbackServer):
    """A running gunicorn serving a model: the leader of its own process group."""

    model_uri: str
    metrics_dir: Path

    # gunicorn's quick shutdown: SIGTERM waits for idle keep-alive connections (seen: 10 s).
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def stop(self, timeout: float = 10) -> None:
        """Stop gunicorn and all its workers (SIGINT, then SIGKILL); calling it again does nothing.

        Args:
            timeout: Seconds to wait after SIGINT before sending SIGKILL.
        """
        super().stop(timeout)
        # After the workers: they write their metric files there until they exit.
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def start_service(
    model_uri: str,
    port: int = DEFAULT_PORT,
    workers: int = 2,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    python: Path | None = None,
) -> ServiceProcess:
    """Start gunicorn serving ``model_uri`` on loopback and wait until ``/ping`` answers.

    Args:
        model_uri: What to serve: a registry URI, a run URI or a pickled pipeline file (relative to this
            process's folder).
        port: Port to listen on; a busy port (or 0) is replaced by a free one.
        workers: gunicorn worker processes.
        timeout: Seconds to wait for ``/ping`` before giving up.
        env: Extra environment variables for the server.
        python: The interpreter whose gunicorn serves, e.g. a service environment's
            (:mod:`helpers.serve.service_env`); None runs this one's.

    Returns:
        The running service; stop it with ``stop()`` or use it as a context manager.

    Raises:
        RuntimeError: gunicorn exited or did not answer in time; the message quotes its log.
    """
    if not model_uri.startswith(("models:/", "runs:/", "file://")):
        # gunicorn runs from the repository's root: a relative file is the caller's, from its folder.
        model_uri = str(Path(model_uri).absolute())
    host = "127.0.0.1"
    with claimed_port(host, port) as chosen:
        if port and chosen != port:
            logger.warning("Port %d is busy; starting the service on port %d instead.", port, chosen)
        # A fresh, empty folder per start: the workers' metric files of an earlier run must not count.
        metrics_dir = Path(tempfile.mkdtemp(prefix=f"service-{chosen}-metrics-"))
        server_env = config.child_environ(
            {
                "MODEL_URI": model_uri,
                "MLFLOW_TRACKING_URI": config.tracking_uri(),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                **(env or {}),
            }
        )
        # absolute, not resolved: a venv's python is a symlink, and the server runs from the repository root
        interpreter = str(Path(python).absolute()) if python else sys.executable
        command = [interpreter, "-m", *gunicorn_args(f"{host}:{chosen}", workers)]
        log_path = config.build_dir() / f"service-{chosen}.log"
        process = start_in_group(command, server_env, log_path, cwd=config.REPO_ROOT)
        service = ServiceProcess(
            process=process, log_path=log_path, port=chosen, model_uri=model_uri, metrics_dir=metrics_dir
        )
        ensure_ready(
            service,
            command,
            lambda: http_answers(f"{service.url}/ping", "PONG"),
            label="The web service",
            what=f"{service.url}/ping",
            timeout=timeout,
            poll=_POLL_SECONDS,
        )
    logger.info("Web service ready at %s (log: %s)", service.url, log_path)
    return service


@dataclass
class CommandProcess(LoopbackServer):
    """A web app started by :func:`start_command`: the leader of its own process group."""

    # Ctrl-C, as in a terminal: Flask's development server and gunicorn both stop at once.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def log(self) -> str:
        """What the app printed so far (its banner, the requests it answered), without the terminal
        colours Flask's development server writes even into a file."""
        return _ANSI_ESCAPE.sub("", self.log_path.read_text(errors="replace"))


def _in_this_environment(program: str) -> str:
    """``python`` as this interpreter and ``gunicorn`` as the one beside it: the ``.venv``'s, not the system's."""
    if program == "python":
        return sys.executable
    beside = Path(sys.executable).parent / program
    return str(beside) if beside.exists() else program


def start_command(
    args: Sequence[str], cwd: Path | None = None, port: int = DEFAULT_PORT, timeout: float = 60
) -> CommandProcess:
    """Run a command that serves HTTP on 127.0.0.1 in the background and wait until it answers.

    Args:
        args: The command as typed in a terminal, e.g. ``["python", "ping.py"]``; ``python`` and
            ``gunicorn`` are this environment's. ``{port}`` in an argument becomes the chosen port,
            which the process also finds in the ``PORT`` variable.
        cwd: Working directory; None keeps this one's.
        port: Port to listen on; a busy port (or 0) is replaced by a free one, as tests run in parallel.
        timeout: Seconds to wait for an HTTP answer before giving up.

    Returns:
        The running app; ``stop()`` stops its whole process group, ``log()`` shows what it printed.

    Raises:
        RuntimeError: the command exited or did not answer in time; the message quotes its log.
    """
    host = "127.0.0.1"
    with claimed_port(host, port) as chosen:
        command = [_in_this_environment(args[0]), *(arg.replace("{port}", str(chosen)) for arg in args[1:])]
        log_path = config.build_dir() / f"{Path(args[0]).name}-{chosen}.log"
        extra = {"PORT": str(chosen)}
        if Path(args[0]).name == "gunicorn":
            # As in gunicorn_args: no control socket in the home folder (this environment's gunicorn knows the flag).
            extra["GUNICORN_CMD_ARGS"] = "--no-control-socket"
        process = start_in_group(command, config.child_environ(extra), log_path, cwd=cwd)
        app = CommandProcess(process=process, log_path=log_path, port=chosen)
        ensure_ready(
            app,
            command,
            lambda: http_answers(app.url, any_status=True),
            label=f"`{' '.join(args)}`",
            what=app.url,
            timeout=timeout,
            poll=_POLL_SECONDS,
        )
    return app


def main(argv: list[str] | None = None) -> None:
    """Become gunicorn serving ``MODEL_URI`` in the foreground until Ctrl-C (``make serve``)."""
    parser = argparse.ArgumentParser(description="Serve the trip-duration model with gunicorn until Ctrl-C.")
    parser.add_argument(
        "--bind",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help=f"address:port (default 127.0.0.1:{DEFAULT_PORT}; 0.0.0.0:PORT for every interface)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    args = parser.parse_args(argv)
    model_uri = config.model_uri()
    # Wiped at each start, so the metrics of an earlier run never add to this one's.
    metrics_dir = config.build_dir() / "service-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = config.child_environ(
        {
            "MODEL_URI": model_uri,
            "MLFLOW_TRACKING_URI": config.tracking_uri(),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    )
    port = args.bind.rpartition(":")[2]
    print(
        f"Serving {model_uri} on {args.bind} ({config.forwarded_url(int(port))}); Ctrl-C stops it.\n"
        "No champion yet? Run notebook 04, or helpers.ml.registry.ensure_champion().",
        flush=True,
    )
    command = [sys.executable, "-m", *gunicorn_args(args.bind, args.workers)]
    os.execve(sys.executable, command, env)  # gunicorn itself then handles Ctrl-C and SIGTERM


if __name__ == "__main__":
    main()
