"""A local Kinesis endpoint on loopback: moto's server, for chapter 06's stream without an AWS account.

``start_kinesis`` launches ``python -m moto.server`` as a real process and returns once it answers;
point boto3 (or ``KINESIS_ENDPOINT_URL`` for the Lambda handler) at ``.endpoint_url``. The streams
live in the server's memory and vanish when it stops.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests

from helpers import config
from helpers.mlflow_server import _group_alive, _signal_group, _tail, _usable_port, _wait_group_gone

logger = logging.getLogger(__name__)

REGION = "us-east-1"
# moto accepts any credentials; explicit ones keep a learner's ~/.aws (or its absence) out of the way.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_POLL_SECONDS = 0.1


@dataclass
class LocalKinesis:
    """A running moto server: the leader of its own process group."""

    host: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def endpoint_url(self) -> str:
        """What boto3's ``endpoint_url`` (or ``KINESIS_ENDPOINT_URL``) should be."""
        return f"http://{self.host}:{self.port}"

    def client(self):
        """A boto3 Kinesis client for this server, with dummy credentials in ``us-east-1``."""
        return boto3.client("kinesis", endpoint_url=self.endpoint_url, region_name=REGION, **DUMMY_CREDENTIALS)

    def create_stream(self, name: str, shards: int = 1, timeout: float = 30) -> None:
        """Create a stream and return once it is ACTIVE.

        Raises:
            TimeoutError: the stream was not ACTIVE within ``timeout`` seconds.
        """
        client = self.client()
        client.create_stream(StreamName=name, ShardCount=shards)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if summary["StreamStatus"] == "ACTIVE":
                return
            time.sleep(_POLL_SECONDS)
        raise TimeoutError(f"stream {name!r} on {self.endpoint_url} was not ACTIVE within {timeout:g} s")

    def stop(self, timeout: float = 10) -> None:
        """Stop the server and every process of its group; calling it again does nothing."""
        pgid = self.process.pid  # a new session: the group id is the leader's PID
        if self.process.poll() is not None and not _group_alive(pgid):
            return  # already stopped; the id may since name someone else's group
        _signal_group(pgid, signal.SIGTERM)
        if not _wait_group_gone(self.process, pgid, timeout):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(self.process, pgid, timeout)

    def __enter__(self) -> LocalKinesis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_kinesis(port: int = 0, timeout: float = 30) -> LocalKinesis:
    """Start moto's server on 127.0.0.1 and wait until it answers.

    Args:
        port: Port to listen on; a busy port (or 0) is replaced by a free one.
        timeout: Seconds to wait for the server before giving up.

    Returns:
        The running server; stop it with ``stop()`` or use it as a context manager.

    Raises:
        RuntimeError: The server exited or did not answer in time; the message quotes its log.
    """
    host = "127.0.0.1"
    port = _usable_port(host, port)
    command = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
    log_path = config.build_dir() / f"moto-kinesis-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # a file, not a PIPE that nobody reads and that fills up
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalKinesis(host, port, process, log_path)
    problem = _wait_ready(server, timeout)
    if problem:
        server.stop()
        raise RuntimeError(
            f"moto server {problem}.\nCommand: {' '.join(command)}\nLast lines of {log_path}:\n{_tail(log_path)}"
        )
    logger.info("Local Kinesis ready at %s (log: %s)", server.endpoint_url, log_path)
    return server


def _wait_ready(server: LocalKinesis, timeout: float) -> str | None:
    """Poll moto's own config endpoint; None once it answers, else why it did not."""
    url = f"{server.endpoint_url}/moto-api/config"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"exited with code {server.process.returncode} before it was ready"
        try:
            if requests.get(url, timeout=2).ok:
                return None
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(_POLL_SECONDS)
    return f"did not answer {url} within {timeout:g} s"
