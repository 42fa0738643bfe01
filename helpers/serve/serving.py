"""Chapter 07's web service: the trip-duration model behind Flask, with Prometheus metrics.

``create_app`` builds the app around a loaded model; gunicorn calls it as an app factory
(``gunicorn 'helpers.serve.serving:create_app()'``), so importing this module loads nothing.

The contract, which the tests spell out:

- ``POST /predict`` takes one ride ``{"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.2}``
  and answers ``{"duration": <minutes>, "model_version": "..."}``, or a list of rides and answers a
  list in the same order. A batch is validated whole, then predicted with one call.
- Zone IDs are JSON integers from 1 to 265 (``10.0`` is refused, so ``"10"`` and ``"10.0"`` can
  never become different categories); ``trip_distance`` is a finite number >= 0. ``true`` is not a
  number. Other fields are ignored, so a client may send whole TLC records.
- Whatever a client sends gets a 4xx with ``{"error": ..., "field": ..., "index": ...}`` (``index``
  is the position in a batch, ``field`` the offending field, each null when it does not apply):
  400 unreadable JSON, 415 not JSON, 413 too many rides or too many bytes, 422 JSON that is not
  rides. A 500 means a fault of the server, never of the request.
- ``GET /health`` says which model URI and version answer. A service started on an alias
  (``models:/nyc-taxi-duration@champion``) follows it: every ``MODEL_REFRESH_SECONDS`` (default 30,
  0 = never) the next request asks the registry which version the alias names, and a moved alias
  is loaded and swapped in, so promoting a new champion (chapter 05's ``deploying``) needs no restart.
- ``GET /metrics`` is Prometheus' text format. Under gunicorn with several workers each worker
  counts on its own, so set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before gunicorn
  starts (``helpers.serve.service_process`` and the Dockerfile do): workers then write their counts
  there and ``/metrics`` adds them up, whichever worker answers.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.exceptions import HTTPException

from helpers.core import config
from helpers.core.features import InvalidRide, json_type, validate_ride
from helpers.ml import models

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 1000
# Rides per batch times a generous size per ride (whole TLC records are ~500 bytes of JSON).
_BYTES_PER_RIDE = 2048
PREDICTION_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, float("inf"))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, float("inf"))
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


class InvalidRequest(Exception):
    """A request the service refuses, with the status and the JSON body that say why."""

    def __init__(self, status: int, error: str, field: str | None = None, index: int | None = None):
        super().__init__(error)
        self.status, self.error, self.field, self.index = status, error, field, index

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "field": self.field, "index": self.index}


class Metrics:
    """The service's Prometheus metrics, in a registry of their own so several apps can coexist."""

    def __init__(self, model: models.LoadedModel):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Histogram(
            "predicted_duration_minutes",
            "Predicted trip durations",
            buckets=PREDICTION_BUCKETS,
            registry=self.registry,
        )
        # A gauge, not an Info: Info does not work in multiprocess mode. All workers serve the
        # same model, so "max" reports it once rather than once per worker.
        self.model = Gauge(
            "model_info",
            "The model being served (value 1)",
            ["model_uri", "model_version"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.model.labels(model.uri, model.version).set(1)

    def swapped(self, old: models.LoadedModel, new: models.LoadedModel) -> None:
        self.model.labels(old.uri, old.version).set(0)
        self.model.labels(new.uri, new.version).set(1)

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers: this process's metrics, or every worker's in multiprocess mode."""
        if config.metrics_multiprocess_dir() is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined)


class ServedModel:
    """The model being served, swapped for the alias's new version when the alias moves.

    Only a request arriving after ``refresh`` seconds asks the registry (one cheap call); the one
    that finds the alias moved also loads the new version, under a lock so threads load it once.
    A failed check or load keeps the current model serving and is logged: the service stays up.
    """

    def __init__(self, model: models.LoadedModel, refresh: float, metrics: Metrics):
        self.model, self.metrics = model, metrics
        self.refresh = refresh if models.follows_alias(model.uri) else 0
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def current(self) -> models.LoadedModel:
        if self.refresh > 0 and time.monotonic() - self._checked >= self.refresh:
            with self._lock:
                if time.monotonic() - self._checked >= self.refresh:
                    self._follow_alias()
        return self.model

    def _follow_alias(self) -> None:
        self._checked = time.monotonic()
        try:
            version = models.current_version(self.model.uri)
            if version != self.model.version:
                new = models.load(self.model.uri)
                self.metrics.swapped(self.model, new)
                logger.info(
                    "%s moved from version %s to %s: now serving %s",
                    self.model.uri,
                    self.model.version,
                    version,
                    new.version,
                )
                self.model = new
        except Exception:  # the registry or the artifact store may be briefly away; keep serving
            logger.exception("could not follow %s; still serving version %s", self.model.uri, self.model.version)


def create_app(
    model: models.LoadedModel | None = None, *, max_batch: int = DEFAULT_MAX_BATCH, refresh: float | None = None
) -> Flask:
    """The web service around a model.

    Args:
        model: The model to serve; when None, it is loaded once, now, from ``MODEL_URI``
            (default ``models:/nyc-taxi-duration@champion``).
        max_batch: Most rides one ``POST /predict`` may hold; more get a 413.
        refresh: Seconds between checks that an alias still names the served version (default
            :func:`helpers.core.config.model_refresh_seconds`; 0 never checks). Other URIs name one fixed model.

    Returns:
        The Flask app (a WSGI app for gunicorn).
    """
    if model is None:
        model = models.load(config.model_uri())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max(1024 * 1024, max_batch * _BYTES_PER_RIDE)
    app.json.sort_keys = False  # keep "duration" first, as documented
    metrics = Metrics(model)
    served = ServedModel(model, config.model_refresh_seconds() if refresh is None else refresh, metrics)

    @app.get("/ping")
    def ping() -> Response:
        return Response("PONG", mimetype="text/plain")

    @app.get("/health")
    def health() -> Response:
        model = served.current()
        return jsonify(status="ok", model_uri=model.uri, model_version=model.version)

    @app.post("/predict")
    def predict() -> Response:
        body = _json_body()
        rides = body if isinstance(body, list) else [body]
        if isinstance(body, list):
            if not body:
                raise InvalidRequest(422, "empty list: send at least one ride")
            if len(body) > max_batch:
                raise InvalidRequest(413, f"{len(body)} rides in one request; at most {max_batch}, split the batch")
        elif not isinstance(body, dict):
            raise InvalidRequest(422, f"expected a ride object or a list of rides, got a JSON {json_type(body)}")
        batch = valid_rides(rides, batched=isinstance(body, list))
        model = served.current()
        durations = model.predict(batch).tolist()
        for duration in durations:
            metrics.predictions.observe(duration)
        answers = [{"duration": duration, "model_version": model.version} for duration in durations]
        return jsonify(answers if isinstance(body, list) else answers[0])

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)

    @app.errorhandler(InvalidRequest)
    def invalid(error: InvalidRequest) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        # 404, 405, 413 (body too large) and the like: JSON too, so clients parse one format.
        return jsonify(error=f"{error.name}: {error.description}", field=None, index=None), error.code or 500

    @app.errorhandler(Exception)
    def server_fault(error: Exception) -> tuple[Response, int]:
        logger.exception("unexpected error while answering %s %s", request.method, request.path)
        return jsonify(error="internal server error; the server log has the details", field=None, index=None), 500

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        metrics.requests.labels(endpoint, method, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(endpoint).observe(time.perf_counter() - g.started)
        return response

    app.extensions["metrics"] = metrics
    app.extensions["served_model"] = served
    return app


def _json_body() -> Any:
    """The request's JSON, or an :class:`InvalidRequest` saying why it is not JSON."""
    if not request.is_json:
        raise InvalidRequest(415, f"Content-Type must be application/json, got {request.mimetype or 'none'!r}")
    text = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return request.json_module.loads(text)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise InvalidRequest(400, f"malformed JSON: {error}") from None


def valid_rides(rides: list[Any], batched: bool = True) -> list[dict[str, Any]]:
    """Validate every ride (:func:`helpers.core.features.validate_ride`) for one predict call.

    Plain dicts rather than a DataFrame: for the one to a few rides of a request, building a frame
    costs more than the prediction itself.

    Args:
        rides: Parsed JSON values, each supposed to be a ride object.
        batched: Whether they came as a list (errors then give the ride's index).

    Raises:
        InvalidRequest: 422 for the first ride that is not valid, naming it and its field.
    """
    valid = []
    for position, ride in enumerate(rides):
        try:
            valid.append(validate_ride(ride))
        except InvalidRide as error:
            raise InvalidRequest(422, str(error), field=error.field, index=position if batched else None) from None
    return valid
