"""When a batch needs attention: rules over its metrics, and one alert per batch that breaks any.

:func:`alert_on_violations` posts the alert and returns the violations, so the caller decides
whether to retrain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from helpers.monitor import alerts
from helpers.monitor.drift import PREDICTION, BatchMetrics


@dataclass(frozen=True)
class AlertRules:
    """When a batch needs attention. A rule fires when its value reaches the threshold (``>=``).

    Defaults: Evidently detects prediction drift; half the monitored columns drift (Evidently's own
    dataset-drift share); 10% of the monitored cells are missing (the 2021 green files have
    passenger_count null in ~47% of rows, ~7% of the cells, which is normal for them); RMSE of
    10 minutes, about a third worse than chapter 02's model on its validation month.
    """

    prediction_drift: bool = True
    drifted_share: float | None = 0.5
    missing_share: float | None = 0.1
    rmse: float | None = 10.0


@dataclass(frozen=True)
class Violation:
    """One broken rule of one batch."""

    batch: str
    rule: str
    value: float
    threshold: float

    def __str__(self) -> str:
        return f"{self.rule} = {self.value:.3f} (threshold {self.threshold:g})"


def evaluate_rules(metrics: BatchMetrics, rules: AlertRules | None = None) -> list[Violation]:
    """The rules ``metrics`` breaks, in the order of :class:`AlertRules`; empty when all is well."""
    rules = rules or AlertRules()
    violations = []
    if rules.prediction_drift and metrics.prediction_drift_detected:
        threshold = next((c.threshold for c in metrics.columns if c.column == PREDICTION), float("nan"))
        violations.append(Violation(metrics.batch, "prediction_drift", metrics.prediction_drift, threshold))
    for rule in ("drifted_share", "missing_share", "rmse"):
        threshold, value = getattr(rules, rule), getattr(metrics, rule)
        if threshold is not None and value is not None and value >= threshold:
            violations.append(Violation(metrics.batch, rule, value, threshold))
    return violations


def alert_on_violations(
    metrics: BatchMetrics, rules: AlertRules | None = None, *, url: str | None = None
) -> list[Violation]:
    """Evaluate the rules and, when any is broken, POST one alert for the batch.

    The violations are returned so the caller can act on them, e.g. retrain.

    Args:
        metrics: One batch's metrics.
        rules: Thresholds; default :class:`AlertRules`.
        url: The webhook; default ``helpers.monitor.alerts.webhook_url()``.

    Raises:
        helpers.monitor.alerts.AlertDeliveryError: a rule is broken and the alert could not be delivered.
    """
    violations = evaluate_rules(metrics, rules)
    if violations:
        drifted = ", ".join(f"{c.column} ({c.score:.3f})" for c in metrics.drifted()) or "none"
        text = "\n".join([*(f"• {v}" for v in violations), f"Drifted columns: {drifted}"])
        details = {
            "metrics": {k: v for k, v in asdict(metrics).items() if k != "columns"},
            "violations": [asdict(v) for v in violations],
        }
        alerts.send_alert(f"Monitoring: {metrics.batch} needs attention", text, details, url=url)
    return violations
