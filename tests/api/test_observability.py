"""Structured logs carry the request's correlation id from HTTP into the services."""

from __future__ import annotations

import json
import logging

from atomicseats.observability import JsonFormatter, TextFormatter
from tests.conftest import fresh_app
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
    events = [record.getMessage() for record in caplog.records]
    # The sign-up and the sign-in were logged (with the token and password in reach): else
    # "not in the logs" below would hold of an empty capture.
    assert "user.registered" in events and "user.logged_in" in events, events
    log_text = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert guest.access_token not in log_text
    assert "correct-horse-battery" not in log_text


def test_a_control_character_in_the_path_cannot_forge_a_text_log_line(database_url, capsys):
    """Development logs are text: a %0A in the path must not start a second line."""
    with fresh_app(database_url, hold_context=False, LOG_JSON=False, LOG_DEBUG=("atomicseats.http",)) as app:
        capsys.readouterr()
        response = app.test_client().get("/api/x%0Afake-line%0D%1B[31mred")
        assert response.status_code == 404
        lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1, lines
    assert "http.request" in lines[0] and "path=/api/x\\nfake-line\\r\\x1b[31mred" in lines[0]
    assert not any(line.startswith("fake-line") for line in lines)


def test_text_logs_escape_control_characters_in_messages_and_fields():
    record = logging.makeLogRecord({"msg": "user\nINFO fake", "levelname": "INFO", "header": "a\r\nb\u2028c"})
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert "user\\nINFO fake" in line and "header=a\\r\\nb\\u2028c" in line
