"""A local Kinesis endpoint on loopback: moto's server, for chapter 07's stream without an AWS account.

``start_kinesis`` launches ``python -m moto.server`` as a real process and returns once it answers;
point boto3 (or ``KINESIS_ENDPOINT_URL`` for the Lambda handler) at ``.endpoint_url``. The streams
live in the server's memory and vanish when it stops.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import boto3

from helpers.core import config
from helpers.core.polling import WaitTimeout, wait_for
from helpers.servers.processes import (
    LoopbackServer,
    ensure_ready,
    free_port,
    http_answers,
    start_in_group,
)

logger = logging.getLogger(__name__)

REGION = "us-east-1"
# moto accepts any credentials; explicit ones keep a learner's ~/.aws (or its absence) out of the way.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_POLL_SECONDS = 0.1


@dataclass
class LocalKinesis(LoopbackServer):
    """A running moto server: the leader of its own process group."""

    @property
    def endpoint_url(self) -> str:
        """What boto3's ``endpoint_url`` (or ``KINESIS_ENDPOINT_URL``) should be."""
        return self.url

    def env(self) -> dict[str, str]:
        """The variables that point boto3 and the Lambda (``KINESIS_ENDPOINT_URL``) of another process
        at this server, with its dummy credentials."""
        return {
            "KINESIS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
        }

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

        def active() -> bool:
            summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            return summary["StreamStatus"] == "ACTIVE"

        try:
            wait_for(active, timeout=timeout, poll=_POLL_SECONDS)
        except WaitTimeout:
            raise TimeoutError(f"stream {name!r} on {self.endpoint_url} was not ACTIVE within {timeout:g} s") from None


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
    port = free_port(host, port)
    command = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
    log_path = config.build_dir() / f"moto-kinesis-{port}.log"
    process = start_in_group(command, None, log_path)
    server = LocalKinesis(process=process, log_path=log_path, port=port)
    # moto's own config endpoint answers once the server is up.
    url = f"{server.endpoint_url}/moto-api/config"
    ensure_ready(
        server, command, lambda: http_answers(url), label="moto server", what=url, timeout=timeout, poll=_POLL_SECONDS
    )
    logger.info("Local Kinesis ready at %s (log: %s)", server.endpoint_url, log_path)
    return server
