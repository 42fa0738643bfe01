"""The stream's Lambda: predictions and error entries per record, putting outputs, and a round trip
through a real moto Kinesis server on loopback (started once for the module, stopped by the last test)."""

from __future__ import annotations

import base64
import json
import runpy

import pytest
from sklearn.linear_model import LinearRegression

from helpers.core.polling import wait_for
from helpers.ml import models, registry
from helpers.ml.models import LoadedModel
from helpers.ml.training import save_model, train_pipeline
from helpers.serve import streaming
from helpers.serve.streaming import MODEL_NAME, encode_ride, predict_events
from helpers.servers.kinesis_local import start_kinesis
from helpers.servers.processes import group_alive
from tests.support import registered_champion, synthetic_month, write_chapter_file

RIDE = {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_model(
        train_pipeline(LinearRegression(), synthetic_month(2000, 1)), tmp_path_factory.mktemp("model") / "m.bin"
    )


@pytest.fixture(scope="module")
def model(model_path) -> LoadedModel:
    return models.load(str(model_path))


class CountingPipeline:
    """Wraps a pipeline and records the size of every predict call."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.calls: list[int] = []

    def predict(self, rides):
        self.calls.append(len(rides))
        return self.pipeline.predict(rides)


class FakeKinesis:
    """Records put_records calls; rejects the first ``reject`` entries of the first ``failing_calls`` calls."""

    def __init__(self, failing_calls: int = 0, reject: int = 0):
        self.failing_calls, self.reject = failing_calls, reject
        self.calls: list[list[dict]] = []

    def put_records(self, StreamName, Records):  # noqa: N803 - boto3's argument names
        self.calls.append(list(Records))
        failing = len(self.calls) <= self.failing_calls
        results = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
            if failing and i < self.reject
            else {"SequenceNumber": str(i), "ShardId": "shardId-000000000000"}
            for i in range(len(Records))
        ]
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def record(data: str, sequence_number: str = "1") -> dict:
    """A Lambda event record carrying ``data``."""
    kinesis = {"data": data, "sequenceNumber": sequence_number, "partitionKey": "k"}
    return {"kinesis": kinesis, "eventSource": "aws:kinesis"}


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def test_valid_records_become_predictions_in_one_predict_call(model):
    counting = CountingPipeline(model.pipeline)
    records = [
        record(encode_ride({**RIDE, "trip_distance": miles}, ride_id=i), str(i))
        for i, miles in enumerate([1.0, 5, 9.5])
    ]

    outputs = predict_events(LoadedModel(model.uri, model.version, counting), records)

    assert counting.calls == [3]
    assert [set(o) for o in outputs] == [{"model", "version", "prediction"}] * 3
    assert {o["model"] for o in outputs} == {MODEL_NAME} and {o["version"] for o in outputs} == {"m.bin"}
    assert [o["prediction"]["ride_id"] for o in outputs] == [0, 1, 2]
    durations = [o["prediction"]["ride_duration"] for o in outputs]
    assert all(type(d) is float for d in durations) and durations == sorted(durations)  # ~3 min a mile


BAD_RECORDS = {
    "not base64": ("!!not base64!!", "not valid base64", None),
    "not JSON": (b64("ride 7, 3 miles"), "not JSON", None),
    "not UTF-8": (b64(b"\xff\xfe"), "not JSON", None),
    "not an object": (b64("[130, 205, 3.66]"), "JSON list, expected an object", None),
    "no ride_id": (b64(json.dumps({"ride": RIDE})), "no ride_id", None),
    "mistyped ride_id": (b64(json.dumps({"ride": RIDE, "ride_id": "7"})), "ride_id is '7'", None),
    "no ride": (b64(json.dumps({"ride_id": 7})), "no ride", 7),
    "missing field": (encode_ride({"PULocationID": 130, "DOLocationID": 205}, 7), "missing field 'trip_distance'", 7),
    "mistyped zone": (encode_ride({**RIDE, "PULocationID": "130"}, 7), "PULocationID must be an integer zone ID", 7),
    "mistyped distance": (
        encode_ride({**RIDE, "trip_distance": "far"}, 7),
        "trip_distance must be a number of miles",
        7,
    ),
    "negative distance": (
        encode_ride({**RIDE, "trip_distance": -1.5}, 7),
        "trip_distance must be >= 0 miles, got -1.5",
        7,
    ),
    "unknown zone": (encode_ride({**RIDE, "DOLocationID": 300}, 7), "DOLocationID must be a zone ID 1-265", 7),
}


@pytest.mark.parametrize("data, reason, ride_id", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_a_bad_record_is_reported_and_the_batch_goes_on(model, data, reason, ride_id):
    records = [record(encode_ride(RIDE, 1), "10"), record(data, "11"), record(encode_ride(RIDE, 3), "12")]

    first, bad, last = predict_events(model, records)

    assert (first["prediction"]["ride_id"], last["prediction"]["ride_id"]) == (1, 3)
    assert set(bad) == {"model", "version", "error"}
    assert reason in bad["error"]["reason"]
    assert (bad["error"]["ride_id"], bad["error"]["sequence_number"]) == (ride_id, "11")


def test_a_record_without_kinesis_data_is_reported(model):
    [output] = predict_events(model, [{"eventSource": "aws:kinesis"}])

    assert "no kinesis.data" in output["error"]["reason"]


def test_outputs_keep_the_order_of_the_records(model):
    counting = CountingPipeline(model.pipeline)
    records = [record(encode_ride(RIDE, i) if i % 3 else b64("junk"), str(i)) for i in range(10)]

    outputs = predict_events(LoadedModel(model.uri, model.version, counting), records)

    assert [o["prediction"]["ride_id"] if "prediction" in o else o["error"]["sequence_number"] for o in outputs] == [
        "0",
        1,
        2,
        "3",
        4,
        5,
        "6",
        7,
        8,
        "9",
    ]
    assert counting.calls == [6]


def test_the_chapters_lambda_function_and_the_course_handler_give_the_same_output(store, months, tmp_path):
    version = registered_champion(registry.MODEL_NAME, months)
    rides = {
        256: {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40},
        257: RIDE,
        258: {**RIDE, "trip_distance": 0.4},
    }
    event = {"Records": [record(encode_ride(ride, ride_id), str(ride_id)) for ride_id, ride in rides.items()]}
    # As AWS does: import the module the chapter wrote (it loads the champion) and call its handler.
    handler = runpy.run_path(str(write_chapter_file("07", "lambda_function.py", tmp_path)))["lambda_handler"]

    by_hand = handler(event, None)
    hardened = streaming.process_event(event, models.load(models.DEFAULT_MODEL_URI))

    assert {output["version"] for output in by_hand["predictions"]} == {version}
    assert by_hand == hardened


@pytest.fixture
def handler_env(monkeypatch, model_path):
    """Lambda settings pointing at the test model, with the per-process caches emptied around the test."""
    monkeypatch.setenv("MODEL_URI", str(model_path))
    monkeypatch.delenv("TEST_RUN", raising=False)
    caches = (streaming._model, streaming._kinesis_client)  # kept: a test may replace the functions
    for cache in caches:
        cache.cache_clear()
    yield monkeypatch
    for cache in caches:
        cache.cache_clear()


def test_test_run_predicts_without_putting(handler_env):
    handler_env.setenv("TEST_RUN", "true")
    handler_env.setattr(streaming, "_kinesis_client", lambda *_: pytest.fail("TEST_RUN=true must not put"))

    result = streaming.lambda_handler({"Records": [record(encode_ride(RIDE, 256))]}, None)

    assert result["predictions"][0]["prediction"]["ride_id"] == 256


def test_handler_loads_the_model_once_and_puts_every_output(handler_env):
    fake = FakeKinesis()
    loads = []
    handler_env.setattr(streaming, "_kinesis_client", lambda *_: fake)
    real_load = models.load
    handler_env.setattr(models, "load", lambda uri: loads.append(uri) or real_load(uri))
    handler_env.setenv("PREDICTIONS_STREAM_NAME", "out")
    event = {"Records": [record(encode_ride(RIDE, 256), "1"), record("%%", "2")]}

    streaming.lambda_handler(event, None)
    result = streaming.lambda_handler(event, None)

    assert len(loads) == 1
    assert len(fake.calls) == 2
    assert [json.loads(e["Data"]) for e in fake.calls[1]] == result["predictions"]
    assert [e["PartitionKey"] for e in fake.calls[1]] == ["256", "2"]  # ride id, else sequence number


def test_rejected_entries_are_retried_alone():
    fake = FakeKinesis(failing_calls=1, reject=2)
    entries = [{"Data": b"x", "PartitionKey": str(i)} for i in range(5)]

    streaming.put_entries(fake, "out", entries, backoff=0)

    assert [[e["PartitionKey"] for e in call] for call in fake.calls] == [["0", "1", "2", "3", "4"], ["0", "1"]]


def test_entries_still_rejected_after_the_last_attempt_raise():
    fake = FakeKinesis(failing_calls=99, reject=1)

    with pytest.raises(streaming.PutRecordsError, match="1 record.*still rejected by stream 'out'.*Rate exceeded"):
        streaming.put_entries(fake, "out", [{"Data": b"x", "PartitionKey": "1"}] * 3, backoff=0)

    assert len(fake.calls) == streaming.MAX_PUT_ATTEMPTS


@pytest.fixture(scope="module")
def kinesis(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBOOK_BUILD_DIR", str(tmp_path_factory.mktemp("kinesis-build")))  # the server log
        with start_kinesis() as server:
            yield server


def records_per_shard(client, stream: str) -> list[list[bytes]]:
    """The data of every record of ``stream``, shard by shard."""
    shards = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        data = []
        while True:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            data += [r["Data"] for r in response["Records"]]
            if not response["Records"] and response["MillisBehindLatest"] == 0:
                break
            iterator = response["NextShardIterator"]
        shards.append(data)
    return shards


def read_all(client, stream: str) -> list[dict]:
    """Every record of every shard of ``stream``, decoded from JSON."""
    return [json.loads(data) for shard in records_per_shard(client, stream) for data in shard]


@pytest.mark.servers
def test_consume_predicts_every_record_once_across_shards(kinesis, model):
    kinesis.create_stream("ride_events", shards=2)
    kinesis.create_stream("ride_predictions", shards=2)
    client = kinesis.client()
    rides = {
        i: {"PULocationID": 1 + i % 19, "DOLocationID": 1 + i % 4, "trip_distance": 0.5 + i / 5} for i in range(50)
    }
    streaming.put_rides(client, "ride_events", rides)
    client.put_record(StreamName="ride_events", Data=b"not json", PartitionKey="bad-1")
    client.put_record(
        StreamName="ride_events", Data=streaming.ride_event({**RIDE, "trip_distance": -2.0}, 999), PartitionKey="bad-2"
    )

    processed = streaming.consume("ride_events", model, "ride_predictions", kinesis_client=client, batch_size=7)

    outputs = read_all(client, "ride_predictions")
    predicted = [o["prediction"]["ride_id"] for o in outputs if "prediction" in o]
    errors = [o["error"] for o in outputs if "error" in o]
    assert processed == len(outputs) == 52
    assert sorted(predicted) == sorted(rides)  # nothing lost, nothing twice
    assert sorted(e["ride_id"] or 0 for e in errors) == [0, 999]
    assert any("not JSON" in e["reason"] for e in errors)
    assert all(records_per_shard(client, "ride_events")), "the input should use both shards"


@pytest.mark.servers
def test_consume_stops_at_max_records(kinesis, model):
    kinesis.create_stream("capped", shards=1)
    client = kinesis.client()
    streaming.put_rides(client, "capped", {i: RIDE for i in range(10)})

    assert streaming.consume("capped", model, None, kinesis_client=client, max_records=4, batch_size=3) == 4


@pytest.mark.servers
def test_handler_puts_to_the_endpoint_from_the_environment(kinesis, handler_env):
    kinesis.create_stream("handler_out", shards=1)
    handler_env.setenv("PREDICTIONS_STREAM_NAME", "handler_out")
    for name, value in kinesis.env().items():
        handler_env.setenv(name, value)

    result = streaming.lambda_handler({"Records": [record(encode_ride(RIDE, 256))]}, None)

    assert read_all(kinesis.client(), "handler_out") == result["predictions"]


@pytest.mark.servers
def test_the_consumer_process_follows_the_stream_until_stopped(kinesis, model_path, tmp_path):
    kinesis.create_stream("followed_in", shards=1)
    kinesis.create_stream("followed_out", shards=1)
    client = kinesis.client()
    environ = {**kinesis.env(), "MODEL_URI": str(model_path), "PREDICTIONS_STREAM_NAME": "followed_out"}
    consumer = streaming.start_consumer("followed_in", environ, tmp_path / "consumer.log")
    try:
        # Records put after it started reach it: it keeps polling a drained shard.
        for ride_id in (1, 2):
            streaming.put_rides(client, "followed_in", {ride_id: RIDE})
            wait_for(lambda n=ride_id: len(read_all(client, "followed_out")) == n, timeout=30, poll=0.1)
    finally:
        consumer.stop()
    outputs = read_all(client, "followed_out")
    assert [out["prediction"]["ride_id"] for out in outputs] == [1, 2]
    assert not group_alive(consumer.pgid)
    assert "stopped" in (tmp_path / "consumer.log").read_text()


def test_the_consumer_refuses_to_start_without_its_stream_argument(capsys):
    with pytest.raises(SystemExit):
        streaming.main([])
    assert "stream" in capsys.readouterr().err


@pytest.mark.servers
def test_stop_leaves_no_process_behind(kinesis):
    pgid = kinesis.process.pid

    kinesis.stop()
    kinesis.stop()  # idempotent

    assert not group_alive(pgid)
