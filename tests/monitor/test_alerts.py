"""Alerts really travel over HTTP: to the loopback inbox, and fail loudly when nobody listens."""

import pytest
import requests

from helpers.monitor import alerts


def test_alert_is_delivered_to_the_inbox():
    with alerts.AlertInbox() as inbox:
        sent = alerts.send_alert("Drift detected", "3 of 5 columns drifted", {"share": 0.6}, url=inbox.url)
        received = inbox.wait_for("columns drifted", timeout=5)
    assert received.path == "/alerts"
    assert received.body == sent
    assert received.title == "Drift detected"
    assert received.body["details"] == {"share": 0.6}


def test_webhook_url_comes_from_the_environment(monkeypatch):
    with alerts.AlertInbox() as inbox:
        monkeypatch.setenv("WORKBOOK_ALERT_WEBHOOK_URL", inbox.url)
        alerts.send_alert("Retraining failed", "block train_model raised")
        assert inbox.wait_for(timeout=5).title == "Retraining failed"


def test_no_webhook_configured_is_an_error(monkeypatch):
    monkeypatch.delenv("WORKBOOK_ALERT_WEBHOOK_URL", raising=False)
    with pytest.raises(alerts.AlertDeliveryError, match="no alert webhook configured"):
        alerts.send_alert("t", "x")


def test_refused_connection_is_an_error(closed_port_url):
    with pytest.raises(alerts.AlertDeliveryError, match="not delivered"):
        alerts.send_alert("t", "x", url=closed_port_url, timeout=2)


def test_inbox_reads_a_mage_style_notification_and_times_out_clearly():
    with alerts.AlertInbox() as inbox:
        requests.post(
            inbox.url,
            json={
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Failed to run Mage pipeline x"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "Failed blocks: boom."}},
                ]
            },
            timeout=5,
        )
        assert inbox.wait_for("Failed blocks: boom", timeout=5).title == "Failed to run Mage pipeline x"
        with pytest.raises(TimeoutError, match="no alert containing 'drift'.*Failed to run Mage pipeline x"):
            inbox.wait_for("drift", timeout=0.2)
