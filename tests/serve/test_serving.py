"""The web service through Flask's test client, on a small pipeline trained in memory."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression

from helpers.ml.models import LoadedModel
from helpers.ml.training import train_pipeline
from helpers.serve.serving import create_app
from tests.support import BAD_REQUESTS, RIDE, synthetic_month


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return LoadedModel("test://small", "7", train_pipeline(LinearRegression(), synthetic_month(500, seed=1)))


@pytest.fixture
def client(model):
    return create_app(model, max_batch=5).test_client()


def samples(client) -> dict[tuple[str, tuple], float]:
    """Every sample on /metrics, keyed by name and sorted labels."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_ping_answers_pong(client):
    response = client.get("/ping")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "PONG")


def test_one_ride_gets_its_duration_and_the_model_version(client, model):
    response = client.post("/predict", json=RIDE)

    assert response.status_code == 200
    assert response.json == {"duration": pytest.approx(model.pipeline.predict([RIDE])[0]), "model_version": "7"}


def test_a_batch_gets_one_answer_per_ride_in_order(client, model):
    rides = [{**RIDE, "trip_distance": miles} for miles in (1.0, 8.0, 3)]

    response = client.post("/predict", json=rides)

    assert response.status_code == 200
    assert [answer["duration"] for answer in response.json] == pytest.approx(model.pipeline.predict(rides))
    assert {answer["model_version"] for answer in response.json} == {"7"}


def test_extra_fields_are_ignored(client):
    whole_record = {**RIDE, "VendorID": 2, "lpep_pickup_datetime": "2021-01-01 00:15:56"}
    assert client.post("/predict", json=whole_record).json == client.post("/predict", json=RIDE).json


def test_health_names_the_model(client):
    assert client.get("/health").json == {"status": "ok", "model_uri": "test://small", "model_version": "7"}


def test_no_model_is_loaded_at_import():
    import helpers.serve.serving

    assert not hasattr(helpers.serve.serving, "app")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field", "index", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_a_bad_request_gets_a_specific_4xx(client, body, content_type, status, field, index, words):
    headers = {"Content-Type": content_type} if content_type else {}

    response = client.post("/predict", data=body, headers=headers)

    assert response.status_code == status
    assert words in response.json["error"]
    assert (response.json["field"], response.json["index"]) == (field, index)


def test_a_body_over_the_byte_limit_is_413(client):
    response = client.post("/predict", data=b" " * (2 * 1024 * 1024), content_type="application/json")
    assert (response.status_code, response.json["field"]) == (413, None)


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/nowhere", 404), ("GET", "/predict", 405), ("DELETE", "/ping", 405)]
)
def test_unknown_routes_and_methods_answer_json(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert set(response.json) == {"error", "field", "index"}


def test_a_fault_of_the_server_is_a_json_500(model):
    class Broken:
        uri, version = "test://broken", "0"

        def predict(self, rides):
            raise RuntimeError("model file corrupted")

    response = create_app(Broken()).test_client().post("/predict", json=RIDE)

    assert response.status_code == 500
    assert "internal server error" in response.json["error"]


def test_metrics_count_requests_by_endpoint_method_and_status(client):
    client.post("/predict", json=RIDE)
    client.post("/predict", json={"PULocationID": 0})

    found = samples(client)

    assert found[("http_requests_total", (("endpoint", "/predict"), ("method", "POST"), ("status", "200")))] == 1
    assert found[("http_requests_total", (("endpoint", "/predict"), ("method", "POST"), ("status", "422")))] == 1
    assert found[("http_request_duration_seconds_count", (("endpoint", "/predict"),))] == 2
    assert found[("model_info", (("model_uri", "test://small"), ("model_version", "7")))] == 1


def test_the_prediction_histogram_observes_each_ride(client, model):
    rides = [{**RIDE, "trip_distance": miles} for miles in (0.5, 2.0, 30.0)]
    durations = model.pipeline.predict(rides)
    client.post("/predict", json=rides)

    found = samples(client)

    assert found[("predicted_duration_minutes_count", ())] == 3
    assert found[("predicted_duration_minutes_sum", ())] == pytest.approx(durations.sum())
    assert found[("predicted_duration_minutes_bucket", (("le", "+Inf"),))] == 3
    assert found[("predicted_duration_minutes_bucket", (("le", "10.0"),))] == (durations <= 10).sum()


def test_two_apps_keep_separate_metrics(model):
    first, second = create_app(model).test_client(), create_app(model).test_client()
    first.get("/ping")

    ping_200 = ("http_requests_total", (("endpoint", "/ping"), ("method", "GET"), ("status", "200")))
    assert samples(first)[ping_200] == 1
    assert ping_200 not in samples(second)


class Registry:
    """Stands in for the registry's alias → version lookup; the real one is exercised by
    tests/test_mage.py, where the deploying pipeline moves the alias under gunicorn."""

    def __init__(self, pipeline):
        self.version, self.pipeline, self.loads, self.fail = "1", pipeline, 0, False

    def current_version(self, uri):
        if self.fail:
            raise ConnectionError("registry away")
        return self.version

    def load(self, uri):
        self.loads += 1
        return LoadedModel(uri, self.version, self.pipeline)


@pytest.fixture
def registry(model, monkeypatch):
    fake = Registry(model.pipeline)
    monkeypatch.setattr("helpers.ml.models.current_version", fake.current_version)
    monkeypatch.setattr("helpers.ml.models.load", fake.load)
    return fake


def test_a_service_on_an_alias_swaps_in_the_version_the_alias_moved_to(model, registry):
    served = LoadedModel("models:/m@champion", "1", model.pipeline)
    client = create_app(served, refresh=0.001).test_client()
    assert client.post("/predict", json=RIDE).get_json()["model_version"] == "1"
    registry.version = "2"
    time.sleep(0.01)
    assert client.post("/predict", json=RIDE).get_json()["model_version"] == "2"
    assert client.get("/health").get_json()["model_version"] == "2"
    assert registry.loads == 1
    info = {labels: value for (name, labels), value in samples(client).items() if name == "model_info"}
    assert info[(("model_uri", "models:/m@champion"), ("model_version", "2"))] == 1
    assert info[(("model_uri", "models:/m@champion"), ("model_version", "1"))] == 0


def test_a_registry_outage_keeps_the_current_model_serving(model, registry):
    client = create_app(LoadedModel("models:/m@champion", "1", model.pipeline), refresh=0.001).test_client()
    registry.fail, registry.version = True, "2"
    time.sleep(0.01)
    assert client.post("/predict", json=RIDE).status_code == 200
    assert client.get("/health").get_json()["model_version"] == "1"


def test_fixed_versions_and_files_are_never_rechecked(model, registry):
    for uri in ("models:/m/1", "runs:/abc/model", "models/lin_reg.bin"):
        client = create_app(LoadedModel(uri, "1", model.pipeline), refresh=0.001).test_client()
        registry.version = "2"
        time.sleep(0.01)
        assert client.get("/health").get_json()["model_version"] == "1"
    assert registry.loads == 0
