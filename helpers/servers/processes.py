"""Servers run as real child processes, each the leader of its own process group.

The MLflow server, the gunicorn service and the local Kinesis all start the same way
(:func:`start_in_group`), wait for their own readiness check (:func:`wait_until_ready`) and stop
the same way (:meth:`GroupProcess.stop`), which reaches every worker they forked.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import psutil
import requests

from helpers.core import config
from helpers.core.polling import WaitTimeout, wait_for


def free_port(host: str, port: int) -> int:
    """``port`` when it can be bound on ``host``, else (or for 0) a free port the kernel picks.

    Raises:
        RuntimeError: Not even the kernel found a free port.
    """
    for candidate in (port, 0) if port else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As uvicorn does, so a port left in TIME_WAIT by a stopped server counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"No free port on {host}.")


# One lock for every course process on the machine (each checkout, each test worker).
PORT_LOCK = Path(tempfile.gettempdir()) / "mlops-workbook-ports.lock"


@contextmanager
def claimed_port(host: str, port: int) -> Iterator[int]:
    """:func:`free_port`, kept from every other course process until the block ends.

    Between ``free_port``'s check and a server's bind lie seconds. Two processes asking for the
    same default port at once (a learner's clone and the tests, both starting MLflow on 5000) both
    got it, and one of them then talked to the other's server. Start the server and wait until it
    answers inside the block; other processes then find the port taken and pick another.
    """
    with PORT_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield free_port(host, port)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# States of a process that has exited: psutil reports them, but the process runs no more.
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def group_alive(pgid: int) -> bool:
    """True while any live process belongs to process group ``pgid``; zombies do not count.

    A zombie has exited and only waits to be reaped (by a parent that may never do so, such as a
    container's PID 1), so a group of zombies is gone, on Linux and macOS alike.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False  # no member at all, not even a zombie
    except PermissionError:
        pass  # members exist, owned by another account; look at them below
    for member in psutil.process_iter(["status"]):
        try:
            in_group = os.getpgid(member.pid) == pgid
        except OSError:
            continue  # it ended while we looked
        if in_group and member.info["status"] not in _GONE:
            return True
    return False


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, or ``(no log)`` when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_logged(
    command: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Run ``command`` to its end with its output in ``log_path``, for a step too long to print.

    Raises:
        RuntimeError: it failed; the message has the command, its exit code and the log's last lines.
    """
    with log_path.open("wb") as log:
        code = subprocess.run(
            list(command), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        ).returncode
    if code:
        raise RuntimeError(
            f"`{' '.join(map(str, command))}` failed with code {code}"
            f"{f' in {cwd}' if cwd else ''}:\n{log_tail(log_path, 15)}\n(whole log: {log_path})"
        )


def start_in_group(
    args: Sequence[str],
    env: Mapping[str, str] | None,
    log_path: Path,
    cwd: Path | None = None,
    account: pwd.struct_passwd | None = None,
) -> subprocess.Popen:
    """Start ``args`` in a new session, its stdout and stderr going to ``log_path``.

    Args:
        args: The command line.
        env: The whole environment of the process; None inherits this one's.
        log_path: Log file, created (with its folder) or truncated.
        cwd: Working directory; None keeps this one's.
        account: Run as this user (needs root); None runs as this process's user.

    Returns:
        The process, leader of its own process group (the group id is its PID).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A log file rather than a PIPE: nobody reads a pipe, and a full one blocks the server.
    as_account = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            # Own session = own process group, so stop() reaches the workers it forks too.
            start_new_session=True,
            **as_account,
        )


def wait_until_ready(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    timeout: float,
    poll: float = 0.2,
    *,
    what: str = "the readiness check",
) -> str | None:
    """Call ``ready()`` every ``poll`` seconds until it returns True.

    Args:
        process: The server; its exit ends the wait early.
        ready: The readiness check; it returns False (rather than raising) while the server is not up.
        timeout: Seconds to wait in all.
        poll: Seconds between checks.
        what: What ``ready()`` asks, for the timeout's reason (e.g. the URL it polls).

    Returns:
        None once ready, else why not: the process exited, or the timeout passed.
    """
    try:
        # An exit ends the wait too; returncode is set only once poll() has seen it.
        wait_for(lambda: process.poll() is not None or ready(), timeout=timeout, poll=poll)
    except WaitTimeout:
        return f"did not answer {what} within {timeout:g} s"
    if process.returncode is not None:
        return f"exited with code {process.returncode} before it was ready"
    return None


@dataclass
class GroupProcess:
    """A running process started by :func:`start_in_group`: the leader of its own process group."""

    process: subprocess.Popen
    log_path: Path
    # The signal that asks the group to shut down; a subclass may know a quicker one.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __post_init__(self) -> None:
        # A notebook that fails before its stop() cell must not leave a server holding its port:
        # the kernel's normal shutdown runs atexit, and stop() is a no-op once stopped.
        atexit.register(self.stop)

    @property
    def pgid(self) -> int:
        """The process group id, which is the leader's PID because it started a new session."""
        return self.process.pid

    def stop(self, timeout: float = 10) -> None:
        """Stop the process and every process of its group; calling it again does nothing.

        Args:
            timeout: Seconds to wait after ``stop_signal`` before sending SIGKILL.
        """
        pgid = self.pgid
        if self.process.poll() is not None and not group_alive(pgid):
            return  # already stopped; the id may since name someone else's group
        _signal_group(pgid, self.stop_signal)
        if not _wait_group_gone(self.process, pgid, timeout):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(self.process, pgid, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _wait_group_gone(process: subprocess.Popen, pgid: int, timeout: float) -> bool:
    try:
        # poll() also reaps the leader, which would otherwise linger as a zombie.
        wait_for(lambda: process.poll() is not None and not group_alive(pgid), timeout=timeout, poll=0.05)
    except WaitTimeout:
        return False
    return True


@dataclass
class LoopbackServer(GroupProcess):
    """A server run as its own process group, listening on 127.0.0.1."""

    port: int

    @property
    def url(self) -> str:
        """Loopback URL, for clients on this machine."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_url(self) -> str:
        """URL a learner opens in a browser (the forwarded one in Codespaces)."""
        return config.forwarded_url(self.port)


def http_answers(url: str, text: str | None = None, *, any_status: bool = False) -> bool:
    """True when ``url`` answers a success status (with exactly ``text`` as body, when given).

    With ``any_status``, any HTTP answer counts (a 404 or 405 too): enough to know that an app whose
    routes this caller does not know has started. A refused connection is ``False``, not an error:
    it is how a server that is still starting looks.
    """
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return (any_status or response.ok) and (text is None or response.text.strip() == text)


def ensure_ready(
    group: GroupProcess,
    command: Sequence[str],
    ready: Callable[[], bool],
    *,
    label: str,
    what: str,
    timeout: float,
    poll: float = 0.2,
) -> None:
    """Wait until ``ready()``; otherwise stop the whole group and raise with the command and log.

    Raises:
        RuntimeError: ``"<label> exited with code N before it was ready"`` or ``"... did not answer
            <what> within T s"``, followed by the command line and the last lines of its log.
    """
    problem = wait_until_ready(group.process, ready, timeout, poll, what=what)
    if problem:
        group.stop()
        raise RuntimeError(
            f"{label} {problem}.\nCommand: {' '.join(command)}\n"
            f"Last lines of {group.log_path}:\n{log_tail(group.log_path)}"
        )


def run_until_interrupted(
    label: str, start: Callable[[], GroupProcess], banner: Callable[[GroupProcess], str], expected: str
) -> None:
    """Start a server and keep it in the foreground until Ctrl-C (``make mlflow``, ``make mage``).

    Args:
        label: What the messages call it, e.g. "the MLflow server".
        start: Starts it and waits until it is ready.
        banner: What to print once it is ready (its URLs).
        expected: How long starting usually takes, e.g. "15-60 s".
    """
    # The server runs in its own session, so a closed terminal or `kill` would orphan it:
    # treat those like Ctrl-C, which stops it on the way out. SIGINT too: a shell that starts us
    # in the background (`make mlflow &`) leaves it ignored, and Python then never raises Ctrl-C.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    print(f"Starting {label} ({expected})...", flush=True)
    with start() as server:
        # The banner inside the try: a Ctrl-C the moment it appears is a stop, not a traceback.
        try:
            print(f"{banner(server)}\nLog: {server.log_path}\nPress Ctrl-C to stop.", flush=True)
            code = server.process.wait()
            print(f"{label[0].upper()}{label[1:]} exited (code {code}); see {server.log_path}")
        except KeyboardInterrupt:
            print(f"\nStopping {label}...")
