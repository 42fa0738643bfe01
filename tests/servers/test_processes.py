"""helpers.servers.processes on trivial real processes: a Python parent that forks a child into its group."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers.core import config
from helpers.core.polling import wait_for
from helpers.servers.processes import (
    GroupProcess,
    claimed_port,
    free_port,
    group_alive,
    http_answers,
    log_tail,
    run_logged,
    start_in_group,
    wait_until_ready,
)

# Prints once its child (same process group) runs, then both sleep far longer than any test.
PARENT_WITH_CHILD = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('child started', flush=True)\n"
    "time.sleep(60)\n"
)
# The same, but the parent ignores SIGTERM, so only SIGKILL ends it.
STUBBORN_PARENT = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + PARENT_WITH_CHILD


def start_family(log_path: Path, code: str = PARENT_WITH_CHILD) -> GroupProcess:
    """A parent and its child in a new process group, returned once the child runs."""
    family = GroupProcess(start_in_group([sys.executable, "-c", code], None, log_path), log_path)
    problem = wait_until_ready(family.process, lambda: "child started" in log_tail(log_path), timeout=10, poll=0.02)
    if problem:
        family.stop()
        pytest.fail(f"the test family {problem}: {log_tail(log_path)}")
    return family


@pytest.fixture
def family(tmp_path):
    with start_family(tmp_path / "family.log") as running:
        yield running


def test_start_in_group_leads_a_new_group_and_logs_both_streams(tmp_path):
    log_path = tmp_path / "logs" / "echo.log"  # the folder does not exist yet
    code = "import os, sys; print(os.getpgid(0) == os.getpid()); print('oops', file=sys.stderr)"

    process = start_in_group([sys.executable, "-c", code], None, log_path)

    assert process.wait(timeout=10) == 0
    assert log_path.read_text().split() == ["True", "oops"]


def test_start_in_group_runs_as_the_account_it_is_given_and_only_root_may(tmp_path):
    nobody = pwd.getpwnam("nobody")
    log_path = tmp_path / "id.log"

    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            start_in_group(["id", "-u"], None, log_path, account=nobody)
        return
    process = start_in_group(["id", "-u"], None, log_path, account=nobody)

    assert process.wait(timeout=10) == 0
    assert log_path.read_text().strip() == str(nobody.pw_uid)


def test_stop_ends_the_whole_group(family):
    assert group_alive(family.pgid)

    family.stop()

    assert family.process.poll() is not None
    assert not os.path.exists(f"/proc/{family.pgid}")  # exited and reaped, not a zombie
    assert not group_alive(family.pgid)


def test_a_group_whose_only_member_is_a_zombie_counts_as_gone(tmp_path):
    # A leader that has exited but is not reaped yet, as under a PID 1 that never reaps.
    process = start_in_group([sys.executable, "-c", "pass"], None, tmp_path / "zombie.log")
    try:
        zombie = psutil.Process(process.pid)
        wait_for(lambda: zombie.status() == psutil.STATUS_ZOMBIE, timeout=10, poll=0.01)

        assert not group_alive(process.pid)
    finally:
        process.wait(timeout=10)


def test_stop_twice_is_harmless(family):
    family.stop()
    family.stop()

    assert not group_alive(family.pgid)


def test_stop_sends_sigkill_when_sigterm_is_ignored(tmp_path):
    stubborn = start_family(tmp_path / "stubborn.log", STUBBORN_PARENT)

    stubborn.stop(timeout=0.5)

    assert not group_alive(stubborn.pgid)
    assert stubborn.process.returncode == -9


def test_the_context_manager_stops_the_group(tmp_path):
    with start_family(tmp_path / "family.log") as family:
        pgid = family.pgid

    assert not group_alive(pgid)


# A foreground server, as `make mlflow` runs one: a sleeper in its own group until Ctrl-C. With
# --interrupt-in-banner, the banner sends the Ctrl-C itself, so it lands while the banner prints.
FOREGROUND = (
    "import os, signal, sys\n"
    "from pathlib import Path\n"
    "from helpers.servers.processes import GroupProcess, run_until_interrupted, start_in_group\n"
    "log = Path(sys.argv[1])\n"
    "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
    "def banner(server):\n"
    "    if '--interrupt-in-banner' in sys.argv:\n"
    "        os.kill(os.getpid(), signal.SIGINT)\n"
    "    return f'group {server.pgid}'\n"
    "run_until_interrupted('the sleeper', lambda: GroupProcess(start_in_group(sleeper, None, log), log), banner,\n"
    "                      expected='1 s')\n"
)


def test_ctrl_c_stops_a_foreground_server_that_a_shell_started_with_sigint_ignored(tmp_path):
    # `make mlflow &` in a script: the shell sets SIGINT to ignored, and Python keeps it so.
    cli = subprocess.Popen(
        [sys.executable, "-c", FOREGROUND, str(tmp_path / "sleeper.log")],
        cwd=config.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        banner = next(line for line in cli.stdout if line.startswith("group "))
        os.killpg(cli.pid, signal.SIGINT)
        output = cli.communicate(timeout=20)[0]
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)

    assert cli.returncode == 0, output
    assert "Stopping the sleeper" in output
    assert not group_alive(int(banner.split()[1]))


def test_a_ctrl_c_as_the_banner_appears_stops_the_server_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", FOREGROUND, str(tmp_path / "sleeper.log"), "--interrupt-in-banner"],
        cwd=config.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Stopping the sleeper" in done.stdout
    assert "Traceback" not in done.stderr


def test_wait_until_ready_returns_none_once_ready(family):
    checks = iter([False, False, True])

    assert wait_until_ready(family.process, lambda: next(checks), timeout=10, poll=0.01) is None


def test_wait_until_ready_reports_an_early_exit(tmp_path):
    process = start_in_group([sys.executable, "-c", "raise SystemExit(3)"], None, tmp_path / "exit.log")

    problem = wait_until_ready(process, lambda: False, timeout=10, poll=0.01)

    assert problem == "exited with code 3 before it was ready"


def test_wait_until_ready_reports_a_timeout(family):
    problem = wait_until_ready(family.process, lambda: False, timeout=0.2, poll=0.01, what="http://x/ping")

    assert problem == "did not answer http://x/ping within 0.2 s"
    assert family.process.poll() is None  # waiting does not stop it


def test_free_port_replaces_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        replacement = free_port("127.0.0.1", port)

    assert replacement not in (port, 0)


def test_free_port_keeps_a_free_port_and_picks_one_for_zero():
    port = free_port("127.0.0.1", 0)

    assert port > 0
    assert free_port("127.0.0.1", port) == port


def test_log_tail_returns_the_last_lines(tmp_path):
    log_path = tmp_path / "server.log"
    log_path.write_text("".join(f"line {i}\n" for i in range(30)))

    assert log_tail(log_path, lines=2) == "line 28\nline 29"
    assert log_tail(log_path).splitlines()[0] == "line 10"  # 20 lines by default
    assert log_tail(tmp_path / "missing.log") == "(no log)"


def test_a_claimed_port_is_not_handed_to_another_process_until_its_server_listens():
    other = [
        sys.executable,
        "-c",
        "import sys; from helpers.servers.processes import claimed_port\n"
        "with claimed_port('127.0.0.1', int(sys.argv[1])) as port: print(port)",
    ]
    with socket.socket() as server:
        with claimed_port("127.0.0.1", 0) as port:
            waiting = subprocess.Popen([*other, str(port)], stdout=subprocess.PIPE, text=True, cwd=config.REPO_ROOT)
            # Nothing to poll for: the other process must still be blocked a second later.
            time.sleep(1)
            assert waiting.poll() is None, "the other process chose a port while this one held the claim"
            server.bind(("127.0.0.1", port))
            server.listen()
        out, _ = waiting.communicate(timeout=30)
    assert int(out) != port


def test_an_app_answering_404_has_started_but_is_not_ok(tmp_path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/missing"
        try:
            assert not http_answers(url)
            assert http_answers(url, any_status=True)
        finally:
            server.shutdown()


def test_a_logged_step_that_fails_says_its_command_code_and_last_lines(tmp_path):
    log = tmp_path / "step.log"

    with pytest.raises(
        RuntimeError,
        match=r"(?s)`sh -c echo one; echo two; exit 3` failed with code 3 in .*:\none\ntwo\n"
        r"\(whole log: .*step\.log\)",
    ):
        run_logged(["sh", "-c", "echo one; echo two; exit 3"], log, cwd=tmp_path)
    assert log.read_text() == "one\ntwo\n"
