"""Logs that scale (issue 11 point 11): the per-request lines are DEBUG (HTTP access lines, the
bridge's bridged requests), refusals that may be attacks and our own errors stay at INFO and
above, and LOG_DEBUG turns the request lines of one component back on."""

from __future__ import annotations

import json
import logging

import pytest

from atomicseats.http import access_log_level
from atomicseats.observability import log_with_correlation
from tests.conftest import fresh_app
from tests.helpers import account, create_event


def printed(capsys) -> list[dict]:
    """The JSON lines the app's handler printed (what an operator's log collector receives)."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def access_lines(lines: list[dict]) -> list[tuple[str, int]]:
    return [(line["level"], line["status"]) for line in lines if line["event"] == "http.request"]


def test_requests_that_went_well_log_nothing_at_info_but_decisions_and_refusals_do(database_url, capsys):
    with fresh_app(database_url, hold_context=False) as app:
        client = app.test_client()
        host, guest = account(client, "host"), account(client, "guest")
        event_id = create_event(client, host, capacity=1)["id"]
        capsys.readouterr()
        assert client.get("/api/events/all").status_code == 200
        booked = client.post("/api/events/book", json={"eventId": event_id, "numberOfSeats": 1}, headers=guest.headers)
        assert booked.status_code == 202
        assert client.get("/api/events/999999").status_code == 404
        assert app.test_client().get("/api/user/bookings").status_code == 401
        assert client.get("/api/admin/analytics", headers=guest.headers).status_code == 403
        lines = printed(capsys)

    assert access_lines(lines) == [("info", 401), ("info", 403)]
    events = {line["event"]: line["level"] for line in lines}
    assert events["booking.request.accepted"] == events["booking.batch.decided"] == "info"
    assert "booking.request.decided" not in events  # one line a decision only at DEBUG


def test_log_debug_brings_back_each_decision_with_its_correlation_id(database_url, capsys):
    with fresh_app(database_url, hold_context=False, LOG_DEBUG=("atomicseats.services._allocation",)) as app:
        client = app.test_client()
        host, guest = account(client, "host"), account(client, "guest")
        event_id = create_event(client, host, capacity=1)["id"]
        capsys.readouterr()
        headers = {**guest.headers, "X-Request-ID": "corr-decided-1"}
        booked = client.post("/api/events/book", json={"eventId": event_id, "numberOfSeats": 1}, headers=headers)
        assert booked.status_code == 202
        lines = printed(capsys)
    decided = [line for line in lines if line["event"] == "booking.request.decided"]
    assert [(line["level"], line["correlation_id"], line["outcome"]) for line in decided] == [
        ("debug", "corr-decided-1", "confirmed")
    ]


def test_log_debug_brings_back_every_request_line_of_the_named_logger(database_url, capsys):
    with fresh_app(database_url, hold_context=False, LOG_DEBUG=("atomicseats.http",)) as app:
        capsys.readouterr()
        assert app.test_client().get("/api/events/all").status_code == 200
        lines = printed(capsys)
    assert access_lines(lines) == [("debug", 200)]
    assert all(line["logger"].startswith("atomicseats.http") for line in lines if line["level"] == "debug")
    with fresh_app(database_url, hold_context=False) as app:  # configured again without: quiet again
        capsys.readouterr()
        assert app.test_client().get("/api/events/all").status_code == 200
        assert access_lines(printed(capsys)) == []


@pytest.mark.parametrize(
    "status, level",
    [(200, logging.DEBUG), (202, logging.DEBUG), (304, logging.DEBUG), (400, logging.DEBUG), (404, logging.DEBUG),
     (409, logging.DEBUG), (401, logging.INFO), (403, logging.INFO), (429, logging.INFO), (500, logging.WARNING),
     (503, logging.WARNING)],
)  # fmt: skip
def test_the_access_line_level_of_each_status(status, level):
    assert access_log_level(status) == level


def test_a_line_under_another_requests_correlation_id_keeps_its_level(caplog):
    logger = logging.getLogger("atomicseats.test_levels")
    caplog.set_level(logging.INFO, logger="atomicseats.test_levels")
    log_with_correlation(logger, "bridge.request.recorded", "abc", logging.DEBUG, request_id="r1")
    log_with_correlation(logger, "booking.request.decided", "abc", request_id="r1")
    assert [(record.getMessage(), record.levelno) for record in caplog.records] == [
        ("booking.request.decided", logging.INFO)
    ]
