"""Chapter 07, online deployment: a prediction route, the serving mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from helpers.course.exercise import Exercise
from helpers.course.feedback import Feedback, right, wrong
from helpers.course.isolation import raised

_ROUTE_RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
_BAD_ROUTE_RIDES = (
    ("a negative trip_distance", {**_ROUTE_RIDE, "trip_distance": -3}),
    ("no trip_distance", {"PULocationID": 10, "DOLocationID": 50}),
)


class _RecordingModel:
    """Stands in for the champion with a duration the check can recompute (2 min + 1.5 min a mile),
    and remembers the rides it was asked about, to tell whether a bad ride reached it."""

    def __init__(self) -> None:
        self.rides: list[dict] = []

    def predict(self, rides: Any) -> np.ndarray:
        scalars = isinstance(rides, dict) and not any(isinstance(v, list | tuple) for v in rides.values())
        frame = pd.DataFrame([rides] if scalars else rides)
        self.rides += frame.to_dict("records")
        return self.minutes(frame["trip_distance"].astype(float).to_numpy())

    @staticmethod
    def minutes(distance: Any) -> Any:
        return 2 + 1.5 * distance


def verify_predict_route(create_app: Callable[[Any], Any]) -> Feedback:
    """``create_app(model)`` must return a Flask app whose ``POST /predict`` answers the model's
    ``{"duration": ...}`` for a ride, and a 4xx with ``{"error": ...}`` for a ride with a missing or
    negative distance, without asking the model. Requests go through Flask's test client: no port."""
    from flask import Flask

    model = _RecordingModel()
    expected = _RecordingModel.minutes(_ROUTE_RIDE["trip_distance"])
    try:
        app = create_app(model)
    except Exception as error:  # noqa: BLE001
        return raised(error)
    if not isinstance(app, Flask):
        return wrong(f"create_app returned {type(app).__name__}; return the Flask app you built (app = Flask(...)).")
    app.config["PROPAGATE_EXCEPTIONS"] = True  # a failing route raises here, so the hint can name the error
    client = app.test_client()
    try:
        answer = client.post("/predict", json=_ROUTE_RIDE)
    except Exception as error:  # noqa: BLE001
        return wrong(f"POST /predict with the ride {_ROUTE_RIDE} raised {type(error).__name__}: {str(error)[:200]}")
    if answer.status_code == 404:
        return wrong(
            "POST /predict answered 404: no route has that path; "
            "decorate your function with @app.route('/predict', methods=['POST'])."
        )
    if answer.status_code == 405:
        return wrong(
            "POST /predict answered 405 (method not allowed): a route answers only GET "
            "unless you pass methods=['POST']."
        )
    body = answer.get_json(silent=True)
    if answer.status_code != 200 or not isinstance(body, dict) or "duration" not in body:
        return wrong(
            f"a good ride got {answer.status_code} {answer.get_data(as_text=True)[:100]!r}; "
            "answer 200 with JSON: return jsonify(duration=...)."
        )
    if not model.rides:
        return wrong("the duration did not come from the model: call model.predict(pd.DataFrame([ride])).")
    got = _number_or_none(body["duration"])
    if got is None or not np.isclose(got, expected):
        return wrong(
            f"the check's model predicts {expected:g} min for {_ROUTE_RIDE}, your route answered "
            f"{body['duration']!r}: answer float(model.predict(...)[0])."
        )
    for what, bad_ride in _BAD_ROUTE_RIDES:
        model.rides.clear()
        try:
            answer = client.post("/predict", json=bad_ride)
        except Exception as error:  # noqa: BLE001
            return wrong(
                f"a ride with {what} made your route raise {type(error).__name__} ({str(error)[:100]}), "
                "which a client gets as a 500, an error of the server: check the ride first and "
                "return jsonify(error='...'), 422."
            )
        if answer.status_code == 200:
            return wrong(
                f"a ride with {what} got 200 and a prediction: check trip_distance before predicting "
                "and return jsonify(error='...'), 422."
            )
        if not 400 <= answer.status_code < 500:
            return wrong(
                f"a ride with {what} got {answer.status_code}; a bad ride is the client's mistake, "
                "so answer a 4xx (422: JSON that is not a valid ride)."
            )
        if model.rides:
            return wrong(
                f"a ride with {what} got {answer.status_code}, but only after your route asked the "
                "model: check the ride before predicting."
            )
        error_body = answer.get_json(silent=True)
        if not isinstance(error_body, dict) or not error_body.get("error"):
            return wrong(
                f"a ride with {what} got {answer.status_code} without saying why: "
                "return jsonify(error='<what is wrong>'), 422."
            )
    return right()


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


EXERCISES: dict[str, Exercise] = {
    "07.predict_route": Exercise(
        question='Write create_app(model): a Flask app whose POST /predict answers {"duration": <minutes>} '
        'for a ride from model.predict, and a 4xx with {"error": ...}, without asking the model, '
        "when trip_distance is missing or negative.",
        hint="@app.route('/predict', methods=['POST']); read request.get_json(); if the distance is missing "
        "or below 0, return jsonify(error=...), 422; else return jsonify(duration=float(model.predict(...)[0])).",
        solution="def create_app(model):\n"
        '    app = Flask("duration-prediction")\n'
        "\n"
        '    @app.route("/predict", methods=["POST"])\n'
        "    def predict():\n"
        "        ride = request.get_json()\n"
        '        distance = ride.get("trip_distance")\n'
        "        if not isinstance(distance, int | float) or distance < 0:\n"
        '            return jsonify(error=f"trip_distance must be a number >= 0, got {distance!r}"), 422\n'
        "        return jsonify(duration=float(model.predict(pd.DataFrame([ride]))[0]))\n"
        "\n"
        "    return app",
        verify=verify_predict_route,
    ),
    "07.mode": Exercise(
        question="A ride that starts is an event that the fare estimate, a fraud check and the duration model all "
        "react to, and nobody waits on the model's answer: batch, online or streaming?",
        expected="streaming",
        hint="Events keep arriving, several consumers react to each, and no client waits on a reply.",
        solution='answer = "streaming"',
        hints=(
            (
                lambda a: str(a).strip().lower() == "online",
                "online is one client waiting on one HTTP answer; here several consumers react to the same event.",
            ),
            (
                lambda a: str(a).strip().lower() == "batch",
                "batch scores data that is all there already; these events keep coming, all day.",
            ),
        ),
    ),
}
