"""helpers.monitor.alert_rules: each rule fires at its threshold, and a broken one posts one alert to a
webhook on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.monitor import alert_rules
from helpers.monitor.alerts import AlertInbox
from tests.support import sample_metrics as metrics


@pytest.mark.parametrize(("rule", "threshold"), [("drifted_share", 0.5), ("missing_share", 0.1), ("rmse", 10.0)])
def test_rule_fires_exactly_at_its_threshold_and_not_below(rule: str, threshold: float) -> None:
    rules = alert_rules.AlertRules()
    assert getattr(rules, rule) == threshold
    at = alert_rules.evaluate_rules(metrics(**{rule: threshold}), rules)
    assert [(v.rule, v.value, v.threshold) for v in at] == [(rule, threshold, threshold)]
    assert alert_rules.evaluate_rules(metrics(**{rule: np.nextafter(threshold, 0)}), rules) == []


def test_prediction_drift_rule_follows_evidentlys_verdict() -> None:
    drifted = metrics(prediction_drift=0.2, prediction_drift_detected=True)
    assert [v.rule for v in alert_rules.evaluate_rules(drifted)] == ["prediction_drift"]
    assert alert_rules.evaluate_rules(drifted, alert_rules.AlertRules(prediction_drift=False)) == []


def test_a_rule_set_to_none_is_off_and_unknown_rmse_never_fires() -> None:
    assert alert_rules.evaluate_rules(metrics(rmse=50.0), alert_rules.AlertRules(rmse=None)) == []
    assert alert_rules.evaluate_rules(metrics(rmse=None)) == []


def test_alert_is_delivered_to_a_webhook_on_loopback() -> None:
    broken = metrics("green/2023-01", prediction_drift=0.21, prediction_drift_detected=True, drifted_share=0.57)
    with AlertInbox() as inbox:
        violations = alert_rules.alert_on_violations(broken, url=inbox.url)
        alert = inbox.wait_for("green/2023-01", timeout=10)
    assert [v.rule for v in violations] == ["prediction_drift", "drifted_share"]
    assert alert.title == "Monitoring: green/2023-01 needs attention"
    assert "drifted_share = 0.570" in alert.text
    assert alert.body["details"]["metrics"]["batch"] == "green/2023-01"


def test_no_alert_when_every_rule_holds(closed_port_url: str) -> None:
    # Nothing listens at the URL: posting would raise, so an empty result proves nothing was sent.
    assert alert_rules.alert_on_violations(metrics(), url=closed_port_url) == []
