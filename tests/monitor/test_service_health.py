"""helpers.monitor.service_health: traffic, errors and latency read from the web service's own metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from helpers.ml import models, training
from helpers.monitor import service_health
from helpers.serve.serving import create_app
from tests.support import synthetic_month


def test_service_health_reads_traffic_errors_and_latency_from_the_metrics():
    model = models.LoadedModel(
        "test://small", "1", training.train_pipeline(LinearRegression(), synthetic_month(300, seed=1))
    )
    client = create_app(model).test_client()
    for _ in range(20):
        client.post("/predict", json={"PULocationID": 10, "DOLocationID": 3, "trip_distance": 4.0})
    for _ in range(5):
        client.post("/predict", json={"PULocationID": 10, "DOLocationID": 3, "trip_distance": -1})
    health = service_health.service_health(client.get("/metrics").get_data(as_text=True))
    assert (health["requests"], health["client_errors"], health["server_errors"]) == (25, 5, 0)
    assert health["server_error_share"] == 0
    assert 0 < health["p50_ms"] <= health["p99_ms"] < 1000


def test_latency_quantiles_interpolate_within_the_bucket():
    buckets = [(0.01, 50), (0.1, 100), (float("inf"), 100)]
    assert service_health.histogram_quantile(buckets, 0.5) == pytest.approx(0.01)
    assert service_health.histogram_quantile(buckets, 0.75) == pytest.approx(0.055)
    assert np.isnan(service_health.histogram_quantile([(0.01, 0), (float("inf"), 0)], 0.5))
