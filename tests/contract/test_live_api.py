"""The API against its own OpenAPI document (issue 11 point 9), fuzzed by Schemathesis.

The live embedded server: the real WSGI app from the factory in embedded mode (SQLite in a
temporary directory, the in-process pipeline, no Redis), behind a real HTTP server on a free
loopback port (tests.helpers.served_over_http, as the browser tests' embedded server). Rate
limits are on, with limits the run never reaches, so their headers are sent as in production.

Before fuzzing, a host, a guest and an admin sign up and log in through the API (the admin
made one by `flask users set-role`); the host publishes a few events and the guest books
seats in them, so ids in paths and bodies can hit real rows. Schemathesis' command line
(`st run`, in a process of its own) then loads the document from the server's own
`/api/openapi.json` and calls every operation, with the settings of schemathesis.toml next
to this file: a fixed seed, deterministic generation, a bounded number of examples per
operation (well under a minute here). fuzz_hooks.py sends each call with the token of the
account the operation is for.

Every response must pass not_a_server_error (no 5xx), status_code_conformance (a documented
status), content_type_conformance, response_schema_conformance (the body matches its schema)
and response_headers_conformance (documented headers are sent). A call slower than the
request timeout is a failure too (a hang). Every documented operation must have been tested,
and reached past authentication at least once (the run's HAR recording: not 401 only).
Afterwards `flask audit`, the operator's command, in a process of its own on the same
database, finds every invariant holding.

The negative control runs the same command, with the same settings, against a server that
answers a 500 and a body the document does not allow: it must fail, naming both, so a green
run means something.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask, jsonify

from tests.conftest import REPO_ROOT, fresh_app
from tests.contract.fuzz_hooks import ACCOUNTS_VARIABLE
from tests.e2e.support import SCRUBBED_ENV, Http
from tests.helpers import PASSWORD, Account, event_payload, registration, served_over_http

BIN = Path(sys.executable).parent
SETTINGS = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT_S = 240  # the run takes well under a minute; this only stops a runaway
OUTPUT_TAIL_CHARS = 12_000
# Limits no run reaches: the limiter is on (its headers are part of the answers), never in the way.
LIMITS_NOBODY_REACHES = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_AUTH": "100000 per minute",
    "RATELIMIT_BOOKING": "100000 per minute",
}
SEEDED_EVENTS = 4


@dataclass(frozen=True)
class LiveApi:
    """The served embedded app, its database, and the fuzzing's own accounts."""

    url: str
    database_url: str
    host: Account
    guest: Account
    admin: Account
    bystander_id: int  # the one account whose role the fuzzing may change

    def accounts_variable(self) -> str:
        """What fuzz_hooks.py reads from ATOMICSEATS_FUZZ_ACCOUNTS."""
        own = {
            role: {"id": account.id, "username": account.username, "accessToken": account.access_token}
            for role, account in (("host", self.host), ("guest", self.guest), ("admin", self.admin))
        }
        return json.dumps({"url": self.url, "password": PASSWORD, "bystanderId": self.bystander_id, **own})


@pytest.fixture(scope="module")
def live_api(sqlite_template, tmp_path_factory) -> Iterator[LiveApi]:
    path = tmp_path_factory.mktemp("contract") / "atomicseats.db"
    shutil.copyfile(sqlite_template, path)
    database_url = f"sqlite:///{path}"
    with (
        fresh_app(database_url, hold_context=False, REDIS_URL="", **LIMITS_NOBODY_REACHES) as app,
        served_over_http(app) as port,
    ):
        http = Http(f"http://127.0.0.1:{port}")
        ids = {name: signed_up(http, name, role) for name, role in ACCOUNTS.items()}
        made_admin = app.test_cli_runner().invoke(args=["users", "set-role", "fuzzadmin", "admin"])
        assert made_admin.exit_code == 0, made_admin.output
        api = LiveApi(
            http.base_url,
            database_url,
            host=logged_in(http, "fuzzhost"),
            guest=logged_in(http, "fuzzguest"),
            admin=logged_in(http, "fuzzadmin"),
            bystander_id=ids["fuzzbystander"],
        )
        seed_events(http, api)
        yield api


ACCOUNTS = {"fuzzhost": "host", "fuzzguest": "guest", "fuzzadmin": "guest", "fuzzbystander": "guest"}


def signed_up(http: Http, username: str, role: str) -> int:
    response = http.request("POST", "/api/user/register", registration(username, role))
    assert response.status == 201, (response.status, response.body)
    return response.data["id"]


def logged_in(http: Http, username: str) -> Account:
    response = http.request("POST", "/api/user/login", {"username": username, "password": PASSWORD})
    assert response.status == 200, (response.status, response.body)
    return Account.from_login(response.data)


def seed_events(http: Http, api: LiveApi) -> None:
    """A few events, the first small enough that the guest's second request waits."""
    for number in range(SEEDED_EVENTS):
        body = event_payload(name=f"Fuzzed {number}", capacity=2 if number == 0 else 50)
        created = http.request("POST", "/api/events/create", body, token=api.host.access_token)
        assert created.status == 201, (created.status, created.body)
        for seats in (1, 3):
            booking = {"eventId": created.data["id"], "numberOfSeats": seats}
            booked = http.request("POST", "/api/events/book", booking, token=api.guest.access_token)
            assert booked.status == 202, (booked.status, booked.body)


def run_schemathesis(
    document_url: str, accounts_variable: str | None = None, har_path: Path | None = None
) -> subprocess.CompletedProcess:
    """`st run` with the contract test's settings, from the repository root (the hooks module
    is imported from there); with `har_path`, every call and its answer are recorded there."""
    environment = {name: value for name, value in os.environ.items() if name != ACCOUNTS_VARIABLE}
    if accounts_variable is not None:
        environment[ACCOUNTS_VARIABLE] = accounts_variable
    recording = ["--report", "har", "--report-har-path", str(har_path)] if har_path else []
    return subprocess.run(
        [str(BIN / "st"), "--config-file", str(SETTINGS), "--no-color", "run", document_url, *recording],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def statuses_by_operation(document: dict, har_path: Path) -> dict[str, set[int]]:
    """The statuses each documented operation ("POST /api/events/{event_id}/waitlist/close")
    answered during the run, from its HAR recording."""
    patterns = {  # "/api/events/{event_id}" -> ^/api/events/[^/]+$, per method
        f"{method.upper()} {path}": re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        for path, item in document["paths"].items()
        for method in HTTP_METHODS
        if method in item
    }
    statuses: dict[str, set[int]] = {label: set() for label in patterns}
    for entry in json.loads(har_path.read_text())["log"]["entries"]:
        method, path = entry["request"]["method"], urllib.parse.urlsplit(entry["request"]["url"]).path
        for label, pattern in patterns.items():
            if label.startswith(f"{method} ") and pattern.match(path):
                statuses[label].add(entry["response"]["status"])
    return statuses


def flask_audit(database_url: str) -> subprocess.CompletedProcess:
    """`flask audit`, as an operator runs it, on the embedded default's database."""
    environment = {name: value for name, value in os.environ.items() if name not in SCRUBBED_ENV}
    environment.update(ATOMICSEATS_ENV="development", DATABASE_URL=database_url)
    return subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "audit", "--pending-grace-s", "0"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_operation_answers_as_documented_and_the_audit_is_clean_after(live_api, tmp_path):
    har_path = tmp_path / "calls.har"

    fuzzed = run_schemathesis(f"{live_api.url}/api/openapi.json", live_api.accounts_variable(), har_path)

    report = (fuzzed.stdout + fuzzed.stderr)[-OUTPUT_TAIL_CHARS:]
    assert fuzzed.returncode == 0, f"Schemathesis found answers the document does not allow:\n{report}"
    selected, documented = re.search(r"Selected: (\d+)/(\d+)", fuzzed.stdout).groups()
    assert selected == documented == re.search(r"Tested: (\d+)", fuzzed.stdout).group(1), report
    # The hooks' tokens got every operation past authentication at least once: the run was no
    # long series of 401s.
    document = Http(live_api.url).request("GET", "/api/openapi.json").body
    statuses = statuses_by_operation(document, har_path)
    assert len(statuses) == int(documented)
    assert not {label for label, seen in statuses.items() if not seen - {401}}, statuses
    audited = flask_audit(live_api.database_url)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "audit clean" in audited.stdout


# --- the negative control ----------------------------------------------------------------


def _get(summary: str, response_schema: dict) -> dict:
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": {"description": summary, "content": {"application/json": {"schema": response_schema}}}
            },
        }
    }


SEATS_LEFT = {"type": "object", "required": ["seatsLeft"], "properties": {"seatsLeft": {"type": "integer"}}}
BROKEN_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "A server that breaks its contract", "version": "1"},
    "paths": {
        "/api/crash": _get("Seats left; always a 500 in fact", SEATS_LEFT),
        "/api/seats": _get("Seats left; a string where the document says integer, in fact", SEATS_LEFT),
    },
}


def broken_app() -> Flask:
    app = Flask(__name__)

    @app.get("/api/openapi.json")
    def document():
        return jsonify(BROKEN_DOCUMENT)

    @app.get("/api/crash")
    def crash():
        return jsonify({"message": "internal error"}), 500

    @app.get("/api/seats")
    def seats():
        return jsonify({"seatsLeft": "12"})

    return app


def test_the_same_run_reports_a_server_error_and_a_body_against_the_document():
    with served_over_http(broken_app()) as port:
        fuzzed = run_schemathesis(f"http://127.0.0.1:{port}/api/openapi.json")

    report = fuzzed.stdout + fuzzed.stderr
    assert fuzzed.returncode == 1, report
    crash, seats = report.split("GET /api/crash", 1)[1].split("GET /api/seats", 1)
    assert "Server error" in crash, report
    assert "Response violates schema" in seats, report
