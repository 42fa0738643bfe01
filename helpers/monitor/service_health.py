"""What the web service's own metrics (``GET /metrics``) say about it: traffic, errors and latency."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """A quantile from cumulative histogram buckets (upper bound, count), as Prometheus'
    own ``histogram_quantile`` estimates it: linear within the bucket that holds it."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def service_health(metrics_text: str, endpoint: str = "/predict") -> dict[str, float]:
    """What the web service's ``GET /metrics`` says about an endpoint: traffic, errors and latency.

    Returns:
        ``requests``, ``client_errors`` (4xx) and ``server_errors`` (5xx) counts, ``server_error_share``
        (5xx share: the service's own faults), and latency ``p50_ms`` / ``p99_ms`` estimated from
        the histogram.
    """
    statuses: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("endpoint") != endpoint:
                continue
            if sample.name == "http_requests_total":
                status = sample.labels["status"]
                statuses[status] = statuses.get(status, 0) + sample.value
            elif sample.name == "http_request_duration_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    requests = sum(statuses.values())
    server_errors = sum(v for k, v in statuses.items() if k.startswith("5"))
    buckets.sort()
    return {
        "requests": requests,
        "client_errors": sum(v for k, v in statuses.items() if k.startswith("4")),
        "server_errors": server_errors,
        "server_error_share": server_errors / requests if requests else 0.0,
        "p50_ms": histogram_quantile(buckets, 0.5) * 1000 if buckets else float("nan"),
        "p99_ms": histogram_quantile(buckets, 0.99) * 1000 if buckets else float("nan"),
    }
