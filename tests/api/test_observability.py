"""Structured logs carry the request's correlation id from HTTP into the services."""

from __future__ import annotations

import json
import logging

from atomicseats.observability import JsonFormatter
from tests.helpers import account, create_event


def test_correlation_id_is_echoed_and_logged_with_the_booking(app, client, caplog):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    caplog.set_level(logging.INFO)
    response = client.post(
        "/api/events/book",
        json={"eventId": event_id, "numberOfSeats": 1},
        headers={**guest.headers, "X-Request-ID": "trace-me-123"},
    )
    assert response.headers["X-Request-ID"] == "trace-me-123"
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    accepted = [line for line in lines if line["event"] == "booking.request.accepted"]
    assert accepted and accepted[0]["correlation_id"] == "trace-me-123"
    assert accepted[0]["event_id"] == event_id


def test_a_hostile_request_id_is_replaced(client):
    response = client.get("/api/events/all", headers={"X-Request-ID": "x" * 500})
    assert len(response.headers["X-Request-ID"]) == 32


def test_logs_never_contain_passwords_or_tokens(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    guest = account(client, "guest")
    log_text = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert guest.access_token not in log_text
    assert "correct-horse-battery" not in log_text
