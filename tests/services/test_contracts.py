"""The message that travels through Kafka and the request registry (adapters/request_message.py)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from atomicseats.adapters.request_message import accepted_from, message_of
from atomicseats.services.contracts import AcceptedRequest

WHERE_READ = {"kafka_partition", "kafka_offset"}


def accepted(**overrides) -> AcceptedRequest:
    fields = {
        "request_id": "2f1e9c3a-3d4b-4e5f-8a9b-0c1d2e3f4a5b",
        "user_id": 7,
        "event_id": 11,
        "seats": 3,
        "idempotency_key": "retry-me",
        "correlation_id": "c0ffee",
        "accepted_at": datetime(2026, 11, 24, 8, 30, 1, 123456, tzinfo=UTC),
    }
    return AcceptedRequest(**{**fields, **overrides})


def test_message_carries_every_field_but_where_it_was_read():
    names = {field.name for field in dataclasses.fields(AcceptedRequest)}
    assert set(message_of(accepted())) == names - WHERE_READ


def test_message_round_trips_through_json():
    for request in (accepted(), accepted(idempotency_key=None, correlation_id=None)):
        body = json.loads(json.dumps(message_of(request)))
        assert accepted_from(body) == request
        assert accepted_from(body, partition=2, offset=40) == dataclasses.replace(
            request, kafka_partition=2, kafka_offset=40
        )
