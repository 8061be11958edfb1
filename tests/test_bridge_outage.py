"""The bridge through a database restart, on the real PostgreSQL (issue 8 point 11).

The bridge records a batch in the session of its app context and retries while the database
is away. A connection the restart dropped in the middle of that session's transaction must not
leave every later attempt failing with "Can't reconnect until invalid transaction is rolled
back": once the database is back, the batch is recorded (and only then may its offsets be
committed). Kafka itself is not needed for this part: `_record_until_durable` is the step
between reading a batch and committing its offsets (the e2e fault test covers the whole way).
"""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import select, text

from atomicseats.bridge import _record_until_durable
from atomicseats.extensions import db
from atomicseats.models import BookingRequest, utcnow
from atomicseats.services.contracts import AcceptedRequest
from tests.conftest import fresh_app
from tests.helpers import account, create_event
from tests.outage import database_back_after

GIVE_UP_AFTER_S = 30.0  # far longer than the outage below: only a bridge that never recovers hits it
DATABASE_BACK_AFTER_S = 1.0


def test_a_batch_is_recorded_once_the_database_is_back_after_dropping_its_connection(postgres_url):
    with fresh_app(postgres_url, hold_context=False) as app:
        client = app.test_client()
        guest = account(client)
        event_id = create_event(client, account(client, "host"))["id"]
        accepted = [
            AcceptedRequest(
                request_id=str(uuid.uuid4()),
                user_id=guest.id,
                event_id=event_id,
                seats=1,
                idempotency_key=None,
                correlation_id=None,
                accepted_at=utcnow(),
                kafka_partition=0,
                kafka_offset=offset,
            )
            for offset in range(3)
        ]
        stop = threading.Event()
        give_up = threading.Timer(GIVE_UP_AFTER_S, stop.set)
        give_up.start()
        try:
            with app.app_context():
                db.session.execute(text("SELECT 1"))  # the batch's transaction is open when the database goes
                with database_back_after(postgres_url, DATABASE_BACK_AFTER_S):
                    is_durable = _record_until_durable(accepted, stop)
                assert is_durable, "the bridge gave up: it never recovered from the dropped connection"
                db.session.rollback()
                recorded = db.session.execute(select(BookingRequest.request_id).order_by(BookingRequest.id)).scalars()
                assert list(recorded) == [request.request_id for request in accepted]
        finally:
            give_up.cancel()
