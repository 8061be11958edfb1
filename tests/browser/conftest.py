"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright for Python.

Two live servers, each started once per session by the suite:
- "embedded" (every test's default): the embedded default, create_app on SQLite, no Redis,
  in-process pipeline, served by werkzeug in a thread;
- "pipeline": the full-mode platform of the end-to-end tests (tests/e2e/stack.py, shared with
  them: one stack per pytest process), pages served by the real API process (granian) over
  Kafka -> bridge -> Celery -> PostgreSQL, Redis, the mailer. That server is another process,
  so its events and accounts are made through its HTTP API, never by writing its database.
A test runs on both with `@on_both_servers` (its id then ends in [embedded] / [pipeline]).
Each test makes its own accounts and events, so tests share a server without sharing state.
Playwright never downloads a browser: it launches /usr/bin/chromium, which `make test`
installs (scripts/ensure_chromium.sh).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from scripts.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import REPO_ROOT, fresh_app
from tests.e2e.support import Platform
from tests.helpers import Account, served_over_http

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = REPO_ROOT / ".run" / "test-output" / "screenshots"
AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-4.14.1.min.js").read_text(encoding="utf-8")
AXE_FAILING_IMPACTS = ("serious", "critical")
SETTLED = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 50))))"
PASSWORD = "correct horse battery staple"
# How many pixels of a <canvas> are painted (not transparent): a drawn chart has hundreds.
NON_BLANK_PIXELS = """(canvas) => {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted += 1;
  return painted;
}"""
PAINTED_PIXELS_MIN = 500

pytestmark = pytest.mark.browser


SERVERS = ("embedded", "pipeline")
# The test runs once on each live server (the `live_server` fixture's parameter).
on_both_servers = pytest.mark.parametrize("live_server", SERVERS, indirect=True)
on_the_pipeline = pytest.mark.parametrize("live_server", ["pipeline"], indirect=True)


@dataclass
class LiveServer:
    """The embedded default in this process: seeded through the services the API calls."""

    app: Flask
    url: str
    name = "embedded"

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

    def guests_ask_for_a_seat(self, event_id: int, count: int) -> None:
        """`count` fresh guests ask for one seat each, through the service the API and the
        pages call; the in-process pipeline has decided each request when this returns."""
        from atomicseats.services import booking, users

        with self.app.app_context():
            for _ in range(count):
                guest = users.register_user(
                    unique("guest"), "Gus Guest", f"{unique('g')}@example.com", PASSWORD, "guest"
                )
                booking.submit_request(guest.id, event_id, 1, str(uuid.uuid4()), None)

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


class PipelineServer:
    """The full-mode platform's API process (another process): seeded through its HTTP API,
    as an API client would, by one host of its own."""

    name = "pipeline"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.url = platform.api_url
        self._host: Account | None = None
        self._host_since = 0.0
        self._signing = SecureCookieSessionInterface().get_signing_serializer(_keyed(platform.env["SESSION_SECRET"]))

    @property
    def host(self) -> Account:
        """The seeding host; logged in again before its access token (15 min) runs out."""
        if self._host is None:
            self._host = self.platform.register("host")
            self._host_since = time.monotonic()
        elif time.monotonic() - self._host_since > HOST_LOGIN_RENEW_S:
            self._host = self.platform.login(self._host.username)
            self._host_since = time.monotonic()
        return self._host

    def seed_event(self, name: str | None = None, capacity: int = 50, price_minor: int = 2500, **fields) -> int:
        """An event published through POST /api/events/create (the service fields' API names)."""
        wire = {"venue": "Town Hall", "description": "An evening of music.", "price": price_minor}
        wire.update({API_EVENT_FIELDS.get(key, key): value for key, value in fields.items()})
        starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
        wire.setdefault("startsAt", starts_at.isoformat())
        wire.setdefault("endsAt", (starts_at + timedelta(hours=2)).isoformat())
        return self.platform.create_event(self.host, capacity, name=name or f"Concert {unique('')}", **wire)["id"]

    def raise_capacity(self, event_id: int, capacity: int) -> None:
        body = {"id": event_id, "capacity": capacity}
        response = self.platform.http.request("POST", "/api/events/update", body, token=self.host.access_token)
        assert response.status == 200, (response.status, response.body)

    def guests_ask_for_a_seat(self, event_id: int, count: int) -> None:
        """`count` fresh guests sign up and ask for one seat each over the API; returns once
        the pipeline has decided every request."""
        request_ids = [
            self.platform.book_accepted(self.platform.register("guest"), event_id, 1, idempotency_key=str(uuid.uuid4()))
            for _ in range(count)
        ]
        self.platform.wait_until_all_final(request_ids, timeout_s=30)

    def seats_left(self, event_id: int) -> int:
        response = self.platform.http.request("GET", f"/api/events/{event_id}")
        assert response.status == 200, (response.status, response.body)
        return response.data["seatsLeft"]

    def cookie_session(self, value: str) -> dict:
        """The content of a session cookie, checked with the platform's SESSION_SECRET."""
        return self._signing.loads(value)


HOST_LOGIN_RENEW_S = 600
API_EVENT_FIELDS = {"starts_at": "startsAt", "ends_at": "endsAt", "sales_end_at": "salesEndAt"}


def _keyed(secret: str) -> Flask:
    """An app that only carries a secret key: Flask's cookie serializer is built from one."""
    keyed = Flask(__name__)
    keyed.secret_key = secret
    return keyed


@pytest.fixture
def live_server(request) -> LiveServer | PipelineServer:
    """The embedded server, or the one `@on_both_servers` (indirect parametrization) names."""
    name = getattr(request, "param", "embedded")
    if name not in SERVERS:
        raise pytest.UsageError(f"unknown live server {name!r} (one of {SERVERS})")
    return request.getfixturevalue(f"{name}_server")


@pytest.fixture(scope="session")
def pipeline_server(platform: Platform) -> PipelineServer:
    return PipelineServer(platform)


@pytest.fixture(scope="session")
def embedded_server(sqlite_template, tmp_path_factory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("browser") / "atomicseats.db"
    shutil.copyfile(sqlite_template, path)
    # The embedded default (no Redis); each request pushes its own app context, as in production.
    with fresh_app(f"sqlite:///{path}", hold_context=False, REDIS_URL="") as app, served_over_http(app) as port:
        yield LiveServer(app, f"http://127.0.0.1:{port}")


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
    # A click that navigates returns before the next document exists: read the page once it has loaded.
    page.wait_for_load_state("load")
    page.wait_for_function("() => document.body !== null")
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
