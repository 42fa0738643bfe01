"""Chapter 07's stream: the Kinesis Lambda that predicts ride durations, and a local consumer for it.

A producer puts ride events (JSON ``{"ride": {...}, "ride_id": N}``) into an input stream; the
Lambda receives them base64-encoded in batches, predicts every valid ride in one call, and puts one
output per record into the output stream: a prediction, or an error entry saying why that record
could not be used. Nothing is dropped silently and one bad record never stops its batch.

``consume`` plays the role of AWS's event source mapping on a laptop: it polls every shard and
hands the records, in the Lambda's event shape, to the same code as ``lambda_handler``.
``python -m helpers.serve.streaming <stream>`` (or :func:`start_consumer`) runs it as a process of its
own that follows the stream until Ctrl-C, as a deployed Lambda does: chapter 10's integration test.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import boto3
import pandas as pd

from helpers.core import config
from helpers.core.features import RIDE_FIELDS, InvalidRide, validate_ride
from helpers.ml import models
from helpers.ml.models import LoadedModel
from helpers.servers.processes import GroupProcess, ensure_ready, start_in_group

logger = logging.getLogger(__name__)

MODEL_NAME = "ride_duration_prediction_model"
DEFAULT_OUTPUT_STREAM = "ride_predictions"
MAX_PUT_ATTEMPTS = 4
PUT_RECORDS_LIMIT = 500  # the most records Kinesis accepts in one PutRecords call


class BadRecord(ValueError):
    """A record that cannot be predicted; ``reason`` says why, ``ride_id`` when it was readable."""

    def __init__(self, reason: str, ride_id: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.ride_id = ride_id


class PutRecordsError(RuntimeError):
    """Some outputs were still rejected by Kinesis after every retry."""


def ride_event(ride: Mapping, ride_id: int) -> bytes:
    """The JSON bytes a producer puts into the input stream for one ride."""
    return json.dumps({"ride": dict(ride), "ride_id": ride_id}).encode()


def encode_ride(ride: Mapping, ride_id: int) -> str:
    """A ride event as the Lambda receives it in ``kinesis.data``: base64 of its JSON."""
    return base64.b64encode(ride_event(ride, ride_id)).decode()


def put_rides(client, stream: str, rides: Mapping[int, Mapping]) -> int:
    """Put rides (``{ride_id: ride}``) into ``stream``, partitioned by ride id; returns how many."""
    entries = [{"Data": ride_event(ride, ride_id), "PartitionKey": str(ride_id)} for ride_id, ride in rides.items()]
    put_entries(client, stream, entries)
    return len(entries)


def read_stream(client, stream: str) -> list[dict]:
    """Every record of every shard of ``stream``, oldest first per shard, decoded from JSON.

    For looking at what a stream holds (a notebook, a test); a service would keep consuming.
    """
    records = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            records += [json.loads(record["Data"]) for record in response["Records"]]
            if not response["Records"] and response["MillisBehindLatest"] == 0:
                break
            iterator = response["NextShardIterator"]
    return records


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode(record: object) -> tuple[dict, int]:
    """The ride and ride id in one Lambda record; raises :class:`BadRecord` saying what is wrong."""
    data = record.get("kinesis", {}).get("data") if isinstance(record, dict) else None
    if not isinstance(data, str):
        raise BadRecord("the record has no kinesis.data string; expected a Kinesis Lambda event record")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRecord(f"kinesis.data is not valid base64 ({error})") from None
    try:
        event = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRecord(f"the decoded data is not JSON ({error})") from None
    if not isinstance(event, dict):
        raise BadRecord(f"the event is a JSON {type(event).__name__}, expected an object with 'ride' and 'ride_id'")
    if "ride_id" not in event:
        raise BadRecord("the event has no ride_id")
    ride_id = event["ride_id"]
    if not _is_int(ride_id):
        raise BadRecord(f"ride_id is {ride_id!r}, expected an integer")
    if "ride" not in event:
        raise BadRecord("the event has no ride", ride_id)
    try:
        return validate_ride(event["ride"]), ride_id
    except InvalidRide as error:
        raise BadRecord(f"ride: {error}", ride_id) from None


def predict_events(model: LoadedModel, records: list[dict]) -> list[dict]:
    """One output per Lambda record, in order: a prediction, or an error entry for a bad record.

    Args:
        model: The loaded model; every valid ride is predicted in one vectorised call.
        records: The ``Records`` of a Kinesis Lambda event.

    Returns:
        ``{"model", "version", "prediction": {"ride_duration", "ride_id"}}`` per valid record and
        ``{"model", "version", "error": {"reason", "ride_id", "sequence_number"}}`` per bad one.
    """
    outputs: list[dict] = []
    valid: list[tuple[int, dict, int]] = []  # (position in outputs, ride, ride id)
    for record in records:
        entry = {"model": MODEL_NAME, "version": model.version}
        try:
            ride, ride_id = _decode(record)
        except BadRecord as bad:
            sequence_number = record.get("kinesis", {}).get("sequenceNumber") if isinstance(record, dict) else None
            entry["error"] = {"reason": bad.reason, "ride_id": bad.ride_id, "sequence_number": sequence_number}
            logger.warning("Skipping record %s: %s", sequence_number, bad.reason)
        else:
            valid.append((len(outputs), ride, ride_id))
        outputs.append(entry)
    if valid:
        durations = model.predict(pd.DataFrame([ride for _, ride, _ in valid], columns=RIDE_FIELDS))
        for (position, _, ride_id), duration in zip(valid, durations, strict=True):
            outputs[position]["prediction"] = {"ride_duration": float(duration), "ride_id": ride_id}
    return outputs


def _partition_key(output: dict, position: int) -> str:
    details = output.get("prediction") or output["error"]
    key = details.get("ride_id")
    if key is None:
        key = details.get("sequence_number")
    return str(key if key is not None else position)


def put_entries(client, stream: str, entries: list[dict], backoff: float = 0.1) -> None:
    """``put_records`` in batches, retrying the entries Kinesis rejects (throttling) a few times.

    Raises:
        PutRecordsError: some entries were still rejected after ``MAX_PUT_ATTEMPTS`` attempts.
    """
    for start in range(0, len(entries), PUT_RECORDS_LIMIT):
        pending = entries[start : start + PUT_RECORDS_LIMIT]
        for attempt in range(1, MAX_PUT_ATTEMPTS + 1):
            response = client.put_records(StreamName=stream, Records=pending)
            if not response.get("FailedRecordCount"):
                break
            failed = [
                (entry, result)
                for entry, result in zip(pending, response["Records"], strict=True)
                if result.get("ErrorCode")
            ]
            pending = [entry for entry, _ in failed]
            if attempt == MAX_PUT_ATTEMPTS:
                first = failed[0][1]
                raise PutRecordsError(
                    f"{len(failed)} record(s) were still rejected by stream {stream!r} after {attempt} attempts "
                    f"(first: {first['ErrorCode']}: {first.get('ErrorMessage', '')}); "
                    "check the stream's capacity (shards) and retry the batch"
                )
            time.sleep(backoff * 2 ** (attempt - 1))  # throttling eases when given time


def process_event(event: dict, model: LoadedModel, *, kinesis_client=None, output_stream: str | None = None) -> dict:
    """Predict a Lambda event's records and put the outputs to ``output_stream`` (None: don't put)."""
    outputs = predict_events(model, event.get("Records", []))
    if output_stream is not None and outputs:
        entries = [
            {"Data": json.dumps(output).encode(), "PartitionKey": _partition_key(output, position)}
            for position, output in enumerate(outputs)
        ]
        put_entries(kinesis_client, output_stream, entries)
    return {"predictions": outputs}


@cache
def _model(uri: str) -> LoadedModel:
    return models.load(uri)  # once per process and URI: a warm Lambda reuses it


@cache
def _kinesis_client(endpoint_url: str | None):
    return boto3.client("kinesis", endpoint_url=endpoint_url)


def lambda_handler(event: dict, context: object) -> dict:
    """The Lambda entry point: predict the batch and put the outputs to the output stream.

    Settings come from the environment (see :mod:`helpers.core.config`): ``MODEL_URI`` (default the
    champion), ``PREDICTIONS_STREAM_NAME`` (default ``ride_predictions``), ``KINESIS_ENDPOINT_URL`` (a
    local endpoint such as moto or LocalStack) and ``TEST_RUN=true`` to predict without putting.
    """
    model = _model(config.model_uri())
    if config.lambda_test_run():
        return process_event(event, model)
    return process_event(
        event,
        model,
        kinesis_client=_kinesis_client(config.kinesis_endpoint_url()),
        output_stream=config.predictions_stream(),
    )


def _lambda_record(record: dict, stream_arn: str, shard_id: str) -> dict:
    """A GetRecords record in the shape AWS hands it to a Lambda (the data base64 again)."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": stream_arn,
    }


def consume(
    stream_name: str,
    model: LoadedModel,
    output_stream: str | None,
    *,
    kinesis_client,
    shard_iterator_type: str = "TRIM_HORIZON",
    max_records: int | None = None,
    timeout: float | None = 60,
    batch_size: int = 100,
    poll_interval: float = 0.2,
    follow: bool = False,
) -> int:
    """Poll every shard of ``stream_name`` and run each batch through the Lambda's code.

    Args:
        stream_name: The input stream.
        model: The loaded model.
        output_stream: Where outputs go (None: predict only).
        kinesis_client: A boto3 Kinesis client (e.g. ``LocalKinesis.client()``).
        shard_iterator_type: ``TRIM_HORIZON`` (everything kept) or ``LATEST`` (only new records).
        max_records: Stop after about this many records (None: no limit).
        timeout: Stop after this many seconds even if the stream is not drained (None: never).
        batch_size: Records per GetRecords call, the Lambda's batch size.
        poll_interval: Pause between rounds in which no shard had records.
        follow: Keep polling a drained shard for new records, as a deployed Lambda does, until the
            timeout (or forever); by default a drained shard is done.

    Returns:
        How many records were processed; every shard is drained when it returns before the timeout.
    """
    summary = kinesis_client.describe_stream_summary(StreamName=stream_name)["StreamDescriptionSummary"]
    shards = kinesis_client.get_paginator("list_shards").paginate(StreamName=stream_name)
    iterators = {
        shard["ShardId"]: kinesis_client.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType=shard_iterator_type
        )["ShardIterator"]
        for page in shards
        for shard in page["Shards"]
    }
    processed = 0
    deadline = float("inf") if timeout is None else time.monotonic() + timeout
    while iterators and time.monotonic() < deadline:
        fetched = 0
        for shard_id, iterator in list(iterators.items()):
            limit = batch_size if max_records is None else min(batch_size, max_records - processed)
            response = kinesis_client.get_records(ShardIterator=iterator, Limit=limit)
            records = response["Records"]
            if records:
                event = {"Records": [_lambda_record(r, summary["StreamARN"], shard_id) for r in records]}
                process_event(event, model, kinesis_client=kinesis_client, output_stream=output_stream)
                processed += len(records)
                fetched += len(records)
            drained = not records and response.get("MillisBehindLatest", 0) == 0
            if response.get("NextShardIterator") is None or (drained and not follow):
                del iterators[shard_id]  # a closed shard, or nothing left to read
            else:
                iterators[shard_id] = response["NextShardIterator"]
            if max_records is not None and processed >= max_records:
                return processed
        if not fetched and iterators:
            time.sleep(poll_interval)
    if iterators and not follow:
        logger.warning("Stopped after %g s with shards still unread: %s", timeout, ", ".join(iterators))
    return processed


READY_LINE = "following"


def start_consumer(stream_name: str, environ: Mapping[str, str], log_path: Path, timeout: float = 60) -> GroupProcess:
    """Run ``python -m helpers.serve.streaming stream_name`` in a process group of its own, and
    return once it has loaded the model and follows the stream.

    Args:
        stream_name: The input stream.
        environ: What the Lambda reads, added to this process's environment: ``MODEL_URI``,
            ``KINESIS_ENDPOINT_URL``, ``PREDICTIONS_STREAM_NAME``.
        log_path: Where its output goes.
        timeout: Seconds to wait for it to follow the stream.

    Raises:
        RuntimeError: it exited or did not start in time; the message quotes its log.
    """
    command = [sys.executable, "-m", "helpers.serve.streaming", stream_name]
    process = start_in_group(command, config.child_environ(dict(environ)), log_path)
    consumer = GroupProcess(process=process, log_path=log_path)
    ensure_ready(
        consumer,
        command,
        lambda: READY_LINE in log_path.read_text(errors="replace"),
        label="the stream's consumer",
        what=f"{READY_LINE} {stream_name}",
        timeout=timeout,
    )
    return consumer


def main(argv: Sequence[str] | None = None) -> None:
    """Follow a stream and run every batch through the Lambda's code until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.serve.streaming",
        description="Run the Lambda on a Kinesis stream as a process: MODEL_URI, KINESIS_ENDPOINT_URL and "
        "PREDICTIONS_STREAM_NAME say what to serve, where Kinesis is and where the outputs go.",
    )
    parser.add_argument("stream", help="the input stream, e.g. ride_events")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    model = _model(config.model_uri())
    client = _kinesis_client(config.kinesis_endpoint_url())
    print(f"{READY_LINE} {args.stream} with {model.uri} (version {model.version})", flush=True)
    try:
        consume(args.stream, model, config.predictions_stream(), kinesis_client=client, timeout=None, follow=True)
    except KeyboardInterrupt:
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
