"""A headless Chromium that may reach only 127.0.0.1: what the browser tests open the course's UIs
(JupyterLab, the MLflow UI, the Mage UI, the team server) with, and where their screenshots go.

The browser is the system's Chromium (Debian's ``chromium`` package, which ``.ci/run`` installs),
driven by Playwright's Python package; Playwright's own browser download is never used. Machines
running the course's tests may reach nothing but loopback, so Chromium's background traffic is
switched off and every request the pages make elsewhere is aborted and recorded
(:attr:`LoopbackBrowser.blocked`), for the tests to assert that none was attempted.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    Route,
    WebSocketRoute,
    sync_playwright,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from helpers.core import config

VIEWPORT = {"width": 1280, "height": 800}
# Without these Chromium phones home (updates, sync, field trials, safe browsing) as it starts; on a
# machine that reaches only loopback those connections are refused many at a time.
FLAGS = [
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = "127.0.0.1"


class BrowserMissingError(RuntimeError):
    """No Chromium on this machine."""


class PageCheckError(AssertionError):
    """A page did not show what a learner should see there; the message says what it showed instead."""


def chromium_executable() -> Path:
    """The system's Chromium: ``WORKBOOK_CHROMIUM`` when set, else ``chromium`` on PATH.

    Raises:
        BrowserMissingError: saying how to install it.
    """
    found = config.chromium() or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        raise BrowserMissingError(
            "No Chromium found (looked for WORKBOOK_CHROMIUM, then `chromium` on PATH). On Debian or Ubuntu: "
            "`sudo apt-get install chromium`; .ci/run installs it when it runs as root."
        )
    return Path(found)


@dataclass
class LoopbackBrowser:
    """A running Chromium whose tabs open at :data:`VIEWPORT` and may reach only 127.0.0.1."""

    browser: Browser
    blocked: list[str] = field(default_factory=list)
    # Where the pages opened web sockets: Mage's front end is known to assume its default port.
    web_sockets: list[str] = field(default_factory=list)

    def new_page(self, timeout: float = 30, login: tuple[str, str] | None = None) -> Page:
        """A new tab, in a context of its own (no cookies or storage from other tabs).

        Args:
            timeout: Seconds after which its clicks and loads give up.
            login: User and password to answer a server's HTTP basic-auth challenge with, as a
                learner types them into the browser's login prompt.
        """
        credentials = {"username": login[0], "password": login[1]} if login else None
        # A service worker's requests would bypass the route, so none may register.
        context = self.browser.new_context(viewport=VIEWPORT, service_workers="block", http_credentials=credentials)
        context.route("**/*", self._route)
        context.route_web_socket("**", self._route_web_socket)
        page = context.new_page()
        page.set_default_timeout(timeout * 1000)
        return page

    def expect(self, page: Page, locator: Locator, what: str, timeout: float = 30) -> Locator:
        """Wait until ``locator`` is visible on ``page`` and return its first visible match.

        Args:
            what: What a learner should see, for the error, e.g. "the run provisioned-Ridge".
            timeout: Seconds to wait.

        Raises:
            PageCheckError: naming ``what``, the page (without its query, which may hold a token),
                the start of the text it shows, and a screenshot of it.
        """
        # Pages keep hidden copies of some elements (a collapsed menu's links): only what shows counts.
        visible = locator.filter(visible=True).first
        try:
            visible.wait_for(state="visible", timeout=timeout * 1000)
        except PlaywrightTimeoutError:
            where = page.url.split("?")[0]
            shown = " ".join(page.locator("body").inner_text(timeout=5000).split())[:300]
            path = self.screenshot(page, "failed-" + "".join(c if c.isalnum() else "-" for c in what)[:60])
            shows = f"The page shows: {shown!r}" if shown else "The page shows no text"
            raise PageCheckError(
                f"{where} does not show {what} after {timeout:g} s. {shows}. Screenshot: {path}"
            ) from None
        return visible

    def screenshot(self, page: Page, name: str) -> Path:
        """Save what ``page`` shows as ``<screenshots_dir>/<name>.png`` and return the path."""
        path = config.screenshots_dir() / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path)
        return path

    def _route(self, route: Route) -> None:
        if urlparse(route.request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def _route_web_socket(self, socket: WebSocketRoute) -> None:
        # Kernels (JupyterLab) and live updates (Mage) talk over web sockets, which `route` never sees.
        if urlparse(socket.url).hostname == LOOPBACK:
            self.web_sockets.append(socket.url)
            socket.connect_to_server()
        else:
            self.blocked.append(socket.url)
            socket.close()


@contextmanager
def open_browser() -> Iterator[LoopbackBrowser]:
    """Start headless Chromium with a fresh profile; every request not to 127.0.0.1 is aborted.

    Raises:
        BrowserMissingError: no Chromium on this machine.
    """
    executable = chromium_executable()
    # Chromium refuses to run as root with its sandbox on.
    flags = FLAGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, temporary user-data-dir.
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=flags)
        try:
            yield LoopbackBrowser(browser)
        finally:
            browser.close()
