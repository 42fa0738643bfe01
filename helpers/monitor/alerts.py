"""Alerts as webhook POSTs, and a loopback inbox that receives them.

``send_alert`` posts the same Slack-compatible JSON (``text`` plus ``blocks``) that Mage's own
failure notifications post, so one receiver, a Slack incoming webhook or ``AlertInbox`` in a
notebook or test, reads both. ``WORKBOOK_ALERT_WEBHOOK_URL`` names the receiver.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import requests

from helpers.core import config, polling


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert (refused connection, timeout or an error status)."""


def webhook_url() -> str | None:
    """Where alerts go (``WORKBOOK_ALERT_WEBHOOK_URL``), or None when nobody listens."""
    return config.alert_webhook_url()


def payload(title: str, text: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Slack-compatible body: a header block, a text section, and ``details`` kept as data."""
    return {
        "text": f"{title}: {text}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        ],
        "details": details or {},
    }


def send_alert(
    title: str, text: str, details: dict[str, Any] | None = None, *, url: str | None = None, timeout: float = 10
) -> dict[str, Any]:
    """POST an alert to ``url`` (default: ``webhook_url()``) and return the body that was sent.

    Raises:
        AlertDeliveryError: no URL is configured, or the receiver did not answer 2xx; an alert that
            silently goes nowhere is worse than a failure.
    """
    url = url or webhook_url()
    if not url:
        raise AlertDeliveryError("no alert webhook configured: set WORKBOOK_ALERT_WEBHOOK_URL or pass url=")
    body = payload(title, text, details)
    try:
        response = requests.post(url, json=body, timeout=timeout)
    except requests.RequestException as error:
        raise AlertDeliveryError(f"alert to {url} not delivered: {error}") from error
    if not response.ok:
        raise AlertDeliveryError(f"alert to {url} refused: HTTP {response.status_code} {response.text[:200]}")
    return body


@dataclass
class Received:
    """One POST the inbox received: its path and JSON body (or the raw text when it is not JSON)."""

    path: str
    body: Any

    @property
    def title(self) -> str:
        """The header text of a Slack-style alert, or its ``text``; empty when neither is there."""
        if isinstance(self.body, dict):
            for block in self.body.get("blocks", []):
                if block.get("type") == "header":
                    return block["text"]["text"]
            return str(self.body.get("text", ""))
        return ""

    @property
    def text(self) -> str:
        """Every text in the alert, joined: what a person reading it in Slack would see."""
        if not isinstance(self.body, dict):
            return str(self.body)
        parts = [str(self.body.get("text", ""))]
        parts += [block["text"]["text"] for block in self.body.get("blocks", []) if "text" in block]
        return "\n".join(part for part in parts if part)


@dataclass
class AlertInbox:
    """A webhook receiver on 127.0.0.1 that keeps what it is sent; use it as a context manager.

    It stands in for Slack in the notebooks and tests: alerts are really POSTed over HTTP to it.
    """

    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the inbox is not started: use it in a with-block or call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def start(self) -> Self:
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = raw
                with inbox._arrived:
                    inbox.received.append(Received(self.path, body))
                    inbox._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:  # the notebook shows alerts, not access logs
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, contains: str = "", timeout: float = 60) -> Received:
        """The first alert whose text contains ``contains``, waiting up to ``timeout`` seconds for it.

        Raises:
            TimeoutError: naming what was awaited and what arrived instead.
        """

        def matching() -> Received | None:
            return next((alert for alert in self.received if contains in alert.text), None)

        with self._arrived:
            try:
                # Waiting on the condition wakes up as soon as the server thread records an alert.
                return polling.wait_for(matching, timeout=timeout, poll=timeout, pause=self._arrived.wait)
            except polling.WaitTimeout:
                seen = [alert.title or alert.text[:80] for alert in self.received]
                raise TimeoutError(
                    f"no alert containing {contains!r} within {timeout:.0f} s; received: {seen}"
                ) from None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
