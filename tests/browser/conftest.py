"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright for Python.

A live server (the embedded default: create_app on SQLite, no Redis, in-process pipeline)
is served by werkzeug in a thread for the whole session; each test makes its own accounts
and events, so tests share the server without sharing state. Playwright never downloads a
browser: it launches /usr/bin/chromium, which `make test` installs (scripts/ensure_chromium.sh).
"""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from werkzeug.serving import make_server

from tests.conftest import REPO_ROOT, fresh_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = REPO_ROOT / ".run" / "test-output" / "screenshots"
AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-4.14.1.min.js").read_text(encoding="utf-8")
AXE_FAILING_IMPACTS = ("serious", "critical")
SETTLED = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 50))))"
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.browser


@dataclass
class LiveServer:
    app: Flask
    url: str

    def seed_event(self, name: str | None = None, capacity: int = 50, price_minor: int = 2500, **fields) -> int:
        """An event published by a fresh host, through the service the API uses."""
        from atomicseats.services import events, users

        with self.app.app_context():
            host = users.register_user(unique("host"), "Hedda Host", f"{unique('h')}@example.com", PASSWORD, "host")
            starts_at = datetime.now(UTC) + timedelta(days=7)
            view = events.create_event(
                host,
                {
                    "name": name or f"Concert {unique('')}",
                    "venue": "Town Hall",
                    "starts_at": starts_at,
                    "ends_at": starts_at + timedelta(hours=2),
                    "capacity_seats": capacity,
                    "price_minor": price_minor,
                    "description": "An evening of music.",
                    **fields,
                },
            )
            return view.event.id

    def raise_capacity(self, event_id: int, capacity: int) -> None:
        from atomicseats.services import events, users

        with self.app.app_context():
            view = events.get_event(event_id)
            host = users.get_user(view.event.host_id)
            events.update_event(host, event_id, {"capacity_seats": capacity})

    def seats_left(self, event_id: int) -> int:
        from atomicseats.services import events

        with self.app.app_context():
            return events.get_event(event_id).event.seats_left

    def cookie_session(self, value: str) -> dict:
        """The content of a session cookie (signed, not encrypted: the test may read it)."""
        serializer = self.app.session_interface.get_signing_serializer(self.app)
        return serializer.loads(value)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def live_server(sqlite_template, tmp_path_factory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("browser") / "atomicseats.db"
    shutil.copyfile(sqlite_template, path)
    # The embedded default (no Redis); each request pushes its own app context, as in production.
    with fresh_app(f"sqlite:///{path}", hold_context=False, REDIS_URL="") as app:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
        thread.start()
        yield LiveServer(app, f"http://127.0.0.1:{server.server_port}")
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/ensure_chromium.sh)")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page whose console errors are collected: a CSP violation is a test failure."""

    page: Page
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def new_page(browser, live_server) -> Iterator:
    contexts: list[BrowserContext] = []
    watched: list[Watched] = []

    def open_page(javascript: bool = True, viewport: dict | None = None) -> Page:
        context = browser.new_context(
            base_url=live_server.url, java_script_enabled=javascript, viewport=viewport or DESKTOP
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        entry = Watched(page)
        page.on("console", lambda message: message.type == "error" and entry.console_errors.append(message.text))
        watched.append(entry)
        return page

    yield open_page
    for context in contexts:
        context.close()
    violations = [text for entry in watched for text in entry.console_errors if "Content Security Policy" in text]
    assert violations == [], violations


@pytest.fixture
def page(new_page) -> Page:
    return new_page()


def register(page: Page, role: str = "guest") -> str:
    """Sign up through the page; returns the username (signed in afterwards)."""
    username = unique("guest" if role == "guest" else "host")
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Your name").fill("Gail Guest")
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Book seats (guest)" if role == "guest" else "Publish events (host)").check()
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/$"))
    return username


def check_page(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; screenshots at desktop and phone width."""
    # Hold the page still (no htmx polling swaps) while axe reads it and the camera clicks.
    page.evaluate("() => document.body.addEventListener('htmx:beforeRequest', (event) => event.preventDefault())")
    page.evaluate(AXE_SOURCE)
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    failing = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(
            node["target"][0] if isinstance(node["target"][0], str) else str(node["target"])
            for node in violation["nodes"][:3]
        )
        for violation in results["violations"]
        if violation["impact"] in AXE_FAILING_IMPACTS
    ]
    assert failing == [], f"{name}: {failing}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.evaluate(SETTLED)  # charts resize to the new width on the next frames
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name}: the page scrolls sideways at 390 px ({width} px wide)"
    page.set_viewport_size(viewport)
