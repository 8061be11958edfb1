"""The notification outbox, on SQLite and on real PostgreSQL, e-mailing a real SMTP sink.

The sink (scripts/smtp_sink.py) runs in-process on a free port; the app's mailer is the
real FlaskMailMailer pointed at it, so every assertion is about what an SMTP server
actually received. Only the Kafka side is a test double, and only for the service's own
contract (`RecordingPublisher`): the real publisher is tested end to end with Kafka.
"""

from __future__ import annotations

import dataclasses
import email
import json
import re
import sys
import threading
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select, update

from atomicseats.adapters.mail import FlaskMailMailer
from atomicseats.cli.outbox import outbox_cli
from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.models import OutboxMessage, utcnow
from atomicseats.services import booking, notifications, outbox
from atomicseats.services.contracts import MailNotAttempted
from atomicseats.services.outbox import SendReport
from atomicseats.services.ports import EXTENSION_KEY
from tests.conftest import REPO_ROOT, fresh_app
from tests.helpers import account, book, create_event, statements_seen
from tests.outage import DownAtFirstCall, database_back_after

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from smtp_sink import start_sink  # noqa: E402  (a script, not a package)

NOTHING = SendReport(sent=0, retried=0, failed=0)
PUBLIC_BASE_URL = "https://tickets.example.test"  # the e-mails' links start here (config)
BASE = "https://pages.example.test"  # for the pure rendering tests


class Sink:
    """The SMTP sink on a fixed port that can be stopped (connection refused) and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.controller = start_sink("127.0.0.1", 0, directory)
        self.port = self.controller.port
        self.taken = 0

    def stop(self) -> None:
        self.controller.stop()

    def restart(self) -> None:
        self.controller = start_sink("127.0.0.1", self.port, self.directory)

    def take(self) -> list[EmailMessage]:
        """The messages received since the last call, in arrival order."""
        paths = sorted(self.directory.glob("*.eml"))
        new, self.taken = paths[self.taken :], len(paths)
        return [email.message_from_bytes(path.read_bytes(), policy=policy.default) for path in new]


class ManualOutboxWakeups:
    """The embedded wake-ups, except that the test sends the outbox itself to see each report."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def wake_allocation(self, partition: int, event_ids) -> None:
        self.inner.wake_allocation(partition, event_ids)

    def allocation_started(self, partition: int, task_id: str, sent_with) -> list[int]:
        return self.inner.allocation_started(partition, task_id, sent_with)

    def allocation_finished(self, partition: int, task_id: str) -> None:
        self.inner.allocation_finished(partition, task_id)

    def outbox_started(self, task: str) -> None:
        self.inner.outbox_started(task)

    def wake_outbox(self) -> None:
        return None


class RecordOnlyPipeline:
    """Records accepted requests and stops there, as if the allocation task had not run yet:
    what happens between accepting a request and deciding it is then up to the test."""

    records_before_answering = True

    def submit(self, accepted) -> None:
        booking.record_requests([accepted])


class RecordingPublisher:
    """Stands in for Kafka at the service's boundary only: records what it was asked to publish."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, dict]]] = []

    def publish(self, events: list[tuple[str, dict]]) -> None:
        self.batches.append(list(events))


class RefusingPublisher:
    def publish(self, events: list[tuple[str, dict]]) -> None:
        raise RuntimeError("broker did not acknowledge")


@pytest.fixture
def sink(tmp_path):
    handle = Sink(tmp_path / "smtp")
    yield handle
    handle.stop()


@pytest.fixture
def app(database_url, sink):
    """Overrides conftest's `app`: the real FlaskMailMailer, pointed at the sink."""
    yield from _app_mailing_to(sink, database_url)


@pytest.fixture
def postgres_app(postgres_url, sink):
    """For what only Postgres has (advisory locks): the same app, on Postgres alone."""
    yield from _app_mailing_to(sink, postgres_url)


def _app_mailing_to(sink: Sink, database_url: str):
    mail = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": sink.port,
        "MAIL_SUPPRESS_SEND": False,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }
    with fresh_app(database_url, **mail) as application:
        wired = application.extensions[EXTENSION_KEY]
        application.extensions[EXTENSION_KEY] = dataclasses.replace(
            wired, mailer=FlaskMailMailer(), wakeups=ManualOutboxWakeups(wired.wakeups)
        )
        yield application


def use_adapters(app, **replacements) -> None:
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], **replacements)


def outbox_rows() -> list[OutboxMessage]:
    db.session.rollback()  # see what the services committed
    return list(db.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def make_due() -> None:
    """Let time pass: every pending row is due now."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.status == "pending").values(next_attempt_at=utcnow()))
    db.session.commit()


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def message_id(message: EmailMessage) -> str:
    """The msg-id itself: a long Message-ID header is folded onto a second line (RFC 5322 FWS)."""
    return str(message["Message-ID"]).strip()


def received(messages: list[EmailMessage]) -> set[tuple[str, str, str]]:
    return {(message["To"], message["Subject"], message_id(message)) for message in messages}


def by_recipient(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    assert len({message["To"] for message in messages}) == len(messages)
    return {message["To"]: message for message in messages}


def message_ids(kind: str) -> dict[int, str]:
    return {row.user_id: row.message_id for row in outbox_rows() if row.kind == kind}


# --- the e-mails a guest receives --------------------------------------------------------


def test_each_decision_mails_its_guest_once_with_the_rows_message_id(app, client, sink):
    host = account(client, "host")
    guest_a, guest_b, guest_c, guest_d, guest_e = (account(client) for _ in range(5))
    concert = create_event(client, host, name="Test Concert", capacity=4)["id"]
    request_a = book(client, guest_a, concert, 3)["requestId"]
    request_b = book(client, guest_b, concert, 3)["requestId"]  # 1 confirmed, 2 waitlisted
    request_c = book(client, guest_c, concert, 2)["requestId"]  # waitlisted behind B

    assert outbox.send_due_notifications() == SendReport(sent=3, retried=0, failed=0)
    mails = sink.take()
    assert received(mails) == {
        (guest_a.email, "Booking confirmed: Test Concert", f"<booking.confirmed.{request_a}@atomicseats.local>"),
        (
            guest_b.email,
            "Booking partly confirmed: 1 of 3 seats for Test Concert",
            f"<booking.partial.{request_b}@atomicseats.local>",
        ),
        (
            guest_c.email,
            "You are on the waitlist for Test Concert",
            f"<booking.waitlisted.{request_c}@atomicseats.local>",
        ),
    }
    mail = by_recipient(mails)
    assert "Your booking is confirmed: 3 seats for Test Concert." in plain(mail[guest_a.email])
    assert re.search(r"Seats confirmed:\s+3\r?\n", plain(mail[guest_a.email]))
    assert "Venue:" in plain(mail[guest_a.email]) and "Test Hall" in plain(mail[guest_a.email])
    assert "We confirmed 1 of the 3 seats you requested" in plain(mail[guest_b.email])
    assert "The other 2 seats are on the waitlist." in plain(mail[guest_b.email])
    assert "your request for 2 seats is on the waitlist" in plain(mail[guest_c.email])
    for guest, request_id in ((guest_a, request_a), (guest_b, request_b), (guest_c, request_c)):
        assert request_id in plain(mail[guest.email])
        assert request_id in html(mail[guest.email])
        assert mail[guest.email]["X-RcptTo"] == guest.email  # the SMTP envelope, not only the header
        assert len(mail[guest.email].get_all("Message-ID")) == 1  # ours replaced Flask-Mail's random one
        assert mail[guest.email][notifications.KIND_HEADER].startswith("booking.")

    assert outbox.send_due_notifications() == NOTHING
    assert sink.take() == []
    assert {(row.status, row.attempts) for row in outbox_rows()} == {("sent", 1)}
    assert all(row.sent_at is not None for row in outbox_rows())


def test_a_cancellation_mails_the_canceller_and_every_guest_it_promotes(app, client, sink):
    host = account(client, "host")
    guest_a, guest_b, guest_c = (account(client) for _ in range(3))
    concert = create_event(client, host, name="Test Concert", capacity=4)["id"]
    book(client, guest_a, concert, 3)
    book(client, guest_b, concert, 3)  # 1 confirmed, 2 waiting at the head
    book(client, guest_c, concert, 2)  # 2 waiting behind B
    outbox.send_due_notifications()
    sink.take()

    response = client.delete("/api/events/book", json={"eventId": concert}, headers=guest_a.headers)
    assert response.status_code == 200, response.get_json()
    assert outbox.send_due_notifications() == SendReport(sent=3, retried=0, failed=0)
    mails = sink.take()
    cancelled = message_ids("booking.cancelled")
    promoted = message_ids("booking.promoted")
    assert received(mails) == {
        (guest_a.email, "Booking cancelled: Test Concert", cancelled[guest_a.id]),
        (guest_b.email, "Seats confirmed from the waitlist: Test Concert", promoted[guest_b.id]),
        (guest_c.email, "Seats confirmed from the waitlist: Test Concert", promoted[guest_c.id]),
    }
    mail = by_recipient(mails)
    assert "its 3 seats released" in plain(mail[guest_a.email])
    assert "seats came free for Test Concert, and 2 seats are now confirmed for you" in plain(mail[guest_b.email])
    assert "Your whole request is now confirmed." in plain(mail[guest_b.email])
    assert "and 1 seat is now confirmed for you" in plain(mail[guest_c.email])
    assert "The rest of your request (1 seat) stays at the head of the waitlist" in plain(mail[guest_c.email])
    assert re.search(r"Seats still on the waitlist:\s+1\r?\n", plain(mail[guest_c.email]))


def test_rejections_partial_rejections_and_a_deleted_event_are_explained(app, client, sink):
    host = account(client, "host")
    guest_b, guest_c, guest_d, guest_e, guest_g = (account(client) for _ in range(5))
    concert = create_event(client, host, name="Test Concert", capacity=4)["id"]
    gig = create_event(client, host, name="Small Gig", capacity=2, waitlistOpen=False)["id"]
    late_show = create_event(client, host, name="Late Show", capacity=1)["id"]
    book(client, guest_b, concert, 3)
    book(client, guest_c, concert, 2)  # 1 confirmed, 1 waiting
    request_e = book(client, guest_e, gig, 3)["requestId"]  # 2 confirmed, 1 rejected: no waitlist
    wired = app.extensions[EXTENSION_KEY].pipeline
    use_adapters(app, pipeline=RecordOnlyPipeline())
    request_d = book(client, guest_d, concert, 1)["requestId"]  # accepted: the waitlist is open ...
    request_g = book(client, guest_g, late_show, 1)["requestId"]  # accepted: the event exists ...
    use_adapters(app, pipeline=wired)
    response = client.post(f"/api/events/{concert}/waitlist/close", headers=host.headers)
    assert response.status_code == 200, response.get_json()  # ... and closes before it is decided
    response = client.post("/api/events/delete", json={"id": late_show}, headers=host.headers)
    assert response.status_code == 200, response.get_json()  # ... and is withdrawn before it is decided
    booking.allocate_pending(concert)
    booking.allocate_pending(late_show)

    outbox.send_due_notifications()
    mail = by_recipient([message for message in sink.take() if message["To"] not in (guest_b.email, guest_c.email)])
    assert received(mail.values()) == {
        (guest_d.email, "Booking not possible: Test Concert", f"<booking.rejected.{request_d}@atomicseats.local>"),
        (guest_g.email, "Booking not possible: Late Show", f"<booking.rejected.{request_g}@atomicseats.local>"),
        (
            guest_e.email,
            "Booking partly confirmed: 2 of 3 seats for Small Gig",
            f"<booking.partial.{request_e}@atomicseats.local>",
        ),
    }
    assert "because the event is sold out and its waitlist is closed" in plain(mail[guest_d.email])
    assert "because the event was cancelled by its host" in plain(mail[guest_g.email])
    assert "The other 1 seat could not be booked: the event is sold out and its waitlist is closed" in plain(
        mail[guest_e.email]
    )
    assert re.search(r"Seats not booked:\s+1\r?\n", plain(mail[guest_e.email]))

    response = client.post("/api/events/delete", json={"id": concert}, headers=host.headers)
    assert response.status_code == 200, response.get_json()
    assert outbox.send_due_notifications() == SendReport(sent=2, retried=0, failed=0)
    expected_ids = {
        guest.id: f"<event.cancelled.event-{concert}-user-{guest.id}@atomicseats.local>" for guest in (guest_b, guest_c)
    }
    cancelled = sink.take()
    assert received(cancelled) == {
        (guest.email, "Event cancelled: Test Concert", expected_ids[guest.id]) for guest in (guest_b, guest_c)
    }
    for message in cancelled:
        assert "We are sorry: the host has cancelled Test Concert." in plain(message)


def links(message: EmailMessage) -> dict[str, str]:
    """The pages a mail's text part links to: {label: URL}."""
    return dict(re.findall(r"^(See the event|My bookings):\s+(\S+)\r?$", plain(message), re.M))


def booking_fact(message: EmailMessage) -> str | None:
    found = re.search(r"^Bookings?:\s+(.+?)\r?$", plain(message), re.M)
    return found.group(1) if found else None


def test_every_decision_mail_names_its_booking_and_links_to_the_pages(app, client, sink):
    host = account(client, "host")
    guest_a, guest_b, guest_c = (account(client) for _ in range(3))
    concert = create_event(client, host, name="Test Concert", capacity=4)["id"]
    confirmed = book(client, guest_a, concert, 3)
    partial = book(client, guest_b, concert, 3)  # 1 confirmed, 2 waitlisted
    book(client, guest_c, concert, 2)  # waitlisted: nothing booked yet
    outbox.send_due_notifications()

    mail = by_recipient(sink.take())
    assert booking_fact(mail[guest_a.email]) == f"#{confirmed['bookingIds'][0]}"
    assert booking_fact(mail[guest_b.email]) == f"#{partial['bookingIds'][0]}"
    assert booking_fact(mail[guest_c.email]) is None
    pages = {"See the event": f"{PUBLIC_BASE_URL}/events/{concert}", "My bookings": f"{PUBLIC_BASE_URL}/bookings"}
    for guest in (guest_a, guest_b, guest_c):
        assert links(mail[guest.email]) == pages
        for url in pages.values():
            assert f"<a href='{url}'>" in html(mail[guest.email])
    assert f"<td>#{confirmed['bookingIds'][0]}</td>" in html(mail[guest_a.email])
    payloads = {row.user_id: json.loads(row.payload) for row in outbox_rows()}
    assert payloads[guest_a.id]["bookingIds"] == confirmed["bookingIds"]
    assert payloads[guest_c.id]["bookingIds"] == []


def test_cancelling_leaving_and_a_withdrawn_event_mail_the_bookings_they_concern(app, client, sink):
    host = account(client, "host")
    guest_a, guest_b, guest_c = (account(client) for _ in range(3))
    concert = create_event(client, host, name="Test Concert", capacity=4)["id"]
    first = book(client, guest_a, concert, 2)
    second = book(client, guest_a, concert, 1)
    partial = book(client, guest_b, concert, 3)  # 1 confirmed, 2 waiting
    book(client, guest_c, concert, 1)  # waiting behind B
    outbox.send_due_notifications()
    sink.take()

    response = client.delete(f"/api/bookings/requests/{partial['requestId']}/waitlist", headers=guest_b.headers)
    assert response.status_code == 200, response.get_json()
    outbox.send_due_notifications()
    left = by_recipient(sink.take())[guest_b.email]
    assert left["Subject"] == "You left the waitlist: Test Concert"
    assert booking_fact(left) == f"#{partial['bookingIds'][0]}"  # the seat this request still holds
    assert links(left)["See the event"] == f"{PUBLIC_BASE_URL}/events/{concert}"

    response = client.delete(
        "/api/events/book", json={"eventId": concert, "bookingId": second["bookingIds"][0]}, headers=guest_a.headers
    )
    assert response.status_code == 200, response.get_json()
    outbox.send_due_notifications()
    mail = by_recipient(sink.take())
    assert booking_fact(mail[guest_a.email]) == f"#{second['bookingIds'][0]}"
    promoted_id = json.loads(next(row.payload for row in outbox_rows() if row.kind == "booking.promoted"))
    assert booking_fact(mail[guest_c.email]) == f"#{promoted_id['bookingId']}"
    assert links(mail[guest_c.email])["My bookings"] == f"{PUBLIC_BASE_URL}/bookings"

    response = client.post("/api/events/delete", json={"id": concert}, headers=host.headers)
    assert response.status_code == 200, response.get_json()
    outbox.send_due_notifications()
    mail = by_recipient(sink.take())
    assert booking_fact(mail[guest_a.email]) == f"#{first['bookingIds'][0]}"
    assert booking_fact(mail[guest_b.email]) == f"#{partial['bookingIds'][0]}"
    assert booking_fact(mail[guest_c.email]) == f"#{promoted_id['bookingId']}"
    for message in mail.values():  # a withdrawn event has no page left: My bookings shows it
        assert links(message) == {"My bookings": f"{PUBLIC_BASE_URL}/bookings"}


def test_the_embedded_pipeline_mails_right_after_the_booking(app, client, sink):
    use_adapters(app, wakeups=app.extensions[EXTENSION_KEY].wakeups.inner)
    host = account(client, "host")
    guest = account(client)
    request_id = book(client, guest, create_event(client, host, capacity=2)["id"], 2)["requestId"]
    assert received(sink.take()) == {
        (guest.email, "Booking confirmed: Test Concert", f"<booking.confirmed.{request_id}@atomicseats.local>")
    }
    assert outbox.send_due_notifications() == NOTHING


def test_values_from_hosts_are_escaped_in_the_html_part(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, name="<script>alert(1)</script> & Co", venue="Hall <b>7</b>")["id"]
    book(client, guest, event_id, 1)
    outbox.send_due_notifications()
    (mail,) = sink.take()
    assert "<script>" not in html(mail)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html(mail)
    assert "Hall &lt;b&gt;7&lt;/b&gt;" in html(mail)
    assert "<script>alert(1)</script> & Co" in plain(mail)


# --- retries -----------------------------------------------------------------------------


def test_refused_smtp_is_retried_later_and_then_sent_once_with_the_same_message_id(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=5)["id"]
    sink.stop()
    book(client, guest, event_id, 2)
    before = utcnow()
    assert outbox.send_due_notifications() == SendReport(sent=0, retried=1, failed=0)
    (row,) = outbox_rows()
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.last_error.startswith("ConnectionRefusedError")
    assert row.next_attempt_at >= before + timedelta(seconds=outbox.retry_delay_s(1))
    assert outbox.send_due_notifications() == NOTHING  # not due yet

    sink.restart()
    assert outbox.send_due_notifications() == NOTHING  # still not due: the backoff holds
    make_due()
    assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    (mail,) = sink.take()
    (row,) = outbox_rows()
    assert message_id(mail) == row.message_id
    assert (row.status, row.attempts) == ("sent", 2)
    make_due()
    assert outbox.send_due_notifications() == NOTHING
    assert sink.take() == []


def test_after_the_last_attempt_a_row_is_failed_until_an_operator_requeues_it(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=5)["id"]
    sink.stop()
    book(client, guest, event_id, 1)
    for _ in range(limits.OUTBOX_SEND_ATTEMPTS_MAX - 1):
        make_due()
        assert outbox.send_due_notifications() == SendReport(sent=0, retried=1, failed=0)
    make_due()
    assert outbox.send_due_notifications() == SendReport(sent=0, retried=0, failed=1)
    (row,) = outbox_rows()
    assert (row.status, row.attempts) == ("failed", limits.OUTBOX_SEND_ATTEMPTS_MAX)
    assert outbox.outbox_backlog() == {"pending": 0, "due": 0, "failed": 1, "unpublished": 1}

    sink.restart()
    make_due()
    assert outbox.send_due_notifications() == NOTHING  # failed rows are not retried on their own
    assert outbox.requeue_failed_notifications() == 1
    assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    (mail,) = sink.take()
    assert message_id(mail) == row.message_id


def test_a_recipient_the_server_refuses_is_retried_alone_and_the_rest_of_the_batch_is_sent(app, client, sink):
    host = account(client, "host")
    guests = [account(client) for _ in range(4)]
    event_id = create_event(client, host, capacity=10)["id"]
    for guest in guests:
        book(client, guest, event_id, 1)
    sink.controller.handler.refuse_rcpt = {guests[1].email}
    assert outbox.send_due_notifications() == SendReport(sent=3, retried=1, failed=0)
    assert {message["To"] for message in sink.take()} == {guests[0].email, guests[2].email, guests[3].email}
    assert sink.controller.handler.sessions == 1  # the refusal did not cost the session
    rows = {row.user_id: row for row in outbox_rows()}
    assert (rows[guests[1].id].status, rows[guests[1].id].attempts) == ("pending", 1)
    assert rows[guests[1].id].last_error.startswith("SMTPRecipientsRefused")
    assert {(rows[guest.id].status, rows[guest.id].attempts) for guest in (guests[0], guests[2], guests[3])} == {
        ("sent", 1)
    }
    sink.controller.handler.refuse_rcpt = set()
    make_due()
    assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    assert [message["To"] for message in sink.take()] == [guests[1].email]


def test_a_batch_is_claimed_and_recorded_in_a_few_statements_whatever_its_size(app, client, sink, monkeypatch):
    monkeypatch.setattr(limits, "MAIL_ACCEPTED_REPORT_S", 60)  # however slow the machine: one record a batch
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=20)["id"]

    def outbox_writes_of_one_batch(rows: int) -> list[str]:
        for _ in range(rows):
            book(client, guest, event_id, 1)
        with statements_seen() as seen:
            assert outbox.send_due_notifications() == SendReport(sent=rows, retried=0, failed=0)
        return [statement.split(" WHERE ")[0] for statement in seen if re.match(r"\s*UPDATE outbox", statement)]

    few, many = outbox_writes_of_one_batch(2), outbox_writes_of_one_batch(12)
    assert len(few) == len(many) == 2  # one UPDATE leases the batch, one records it sent
    assert len(sink.take()) == 14


def test_one_mailer_task_drains_a_backlog_of_many_batches(app, client, sink, monkeypatch):
    """The Celery task goes on while batches come back full (bounded by time, not by a count of
    batches): a burst's backlog does not wait for beat, a few batches at a time."""
    from atomicseats import tasks

    monkeypatch.setattr(tasks, "EMAIL_TASK_S_MAX", 600.0)  # a busy machine is no reason to stop early here

    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    (row,) = outbox_rows()
    backlog = 3 * limits.OUTBOX_BATCH_SIZE_MAX + 50
    db.session.add_all(
        OutboxMessage(
            channel="email",
            kind=row.kind,
            message_id=f"<booking.confirmed.copy-{number}@atomicseats.local>",
            user_id=row.user_id,
            event_id=row.event_id,
            payload=row.payload,
        )
        for number in range(backlog - 1)
    )
    db.session.commit()
    assert tasks.send_notifications() == backlog
    assert len(sink.take()) == backlog
    assert {row.status for row in outbox_rows()} == {"sent"}


def test_the_retry_delay_doubles_up_to_its_cap():
    delays = [outbox.retry_delay_s(attempts) for attempts in range(1, limits.OUTBOX_SEND_ATTEMPTS_MAX + 1)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_a_notification_whose_recipient_is_gone_fails_with_a_reason(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    db.session.execute(update(OutboxMessage).values(user_id=None))  # what deleting the user does
    db.session.commit()
    assert outbox.send_due_notifications() == SendReport(sent=0, retried=0, failed=1)
    (row,) = outbox_rows()
    assert row.status == "failed"
    assert row.last_error.startswith("recipient_deleted")
    assert outbox.requeue_failed_notifications() == 0  # nobody to write to, ever
    assert sink.take() == []


def test_a_sender_that_dies_after_claiming_leaves_its_rows_for_after_the_lease(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    claims, failed = outbox._claim_due(limits.OUTBOX_BATCH_SIZE_MAX)  # ... and then the process is killed
    assert (len(claims), failed) == (1, 0)
    assert outbox.send_due_notifications() == NOTHING  # leased: no second sender takes it meanwhile
    (row,) = outbox_rows()
    assert row.next_attempt_at >= utcnow() + timedelta(seconds=limits.OUTBOX_SEND_LEASE_S - 60)
    make_due()  # the lease has run out
    assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    assert [message_id(mail) for mail in sink.take()] == [row.message_id]


class _Killed(BaseException):
    """The sending process dying (SIGKILL) at a chosen point of a batch."""


def test_a_sender_killed_mid_batch_sends_again_only_what_it_had_not_recorded(app, client, sink, monkeypatch):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10)["id"]
    for _ in range(6):
        book(client, guest, event_id, 1)
    monkeypatch.setattr(limits, "MAIL_ACCEPTED_REPORT_S", 0.001)  # recorded as each is accepted
    record = outbox._RecordedAsTheyGo.__call__

    def record_then_die(self, positions: list[int]) -> None:
        record(self, positions)
        if self.count >= 3:
            raise _Killed

    monkeypatch.setattr(outbox._RecordedAsTheyGo, "__call__", record_then_die)
    with pytest.raises(_Killed):
        outbox.send_due_notifications()
    monkeypatch.undo()
    first = [message_id(mail) for mail in sink.take()]
    assert len(first) == 3
    assert sorted(row.message_id for row in outbox_rows() if row.status == "sent") == sorted(first)
    assert outbox.send_due_notifications() == NOTHING  # the rest stay leased to the dead sender
    make_due()  # the lease has run out
    assert outbox.send_due_notifications() == SendReport(sent=3, retried=0, failed=0)
    second = [message_id(mail) for mail in sink.take()]
    assert sorted(first + second) == sorted(row.message_id for row in outbox_rows())  # each once


def test_a_batch_past_its_deadline_gives_its_rows_back_at_once(app, client, sink, monkeypatch):
    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    monkeypatch.setattr(limits, "OUTBOX_SEND_BATCH_S_MAX", -1)
    assert outbox.send_due_notifications() == NOTHING
    assert outbox.outbox_backlog()["due"] == 1  # released, not left leased
    monkeypatch.undo()
    assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)


def test_a_batch_is_bounded_by_its_limit(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=5)["id"]
    for _ in range(3):
        book(client, guest, event_id, 1)
    assert outbox.send_due_notifications(limit=2) == SendReport(sent=2, retried=0, failed=0)
    assert outbox.send_due_notifications(limit=2) == SendReport(sent=1, retried=0, failed=0)
    assert len(sink.take()) == 3


def test_concurrent_senders_send_each_row_once(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=24)["id"]
    for _ in range(24):
        book(client, guest, event_id, 1)
    barrier = threading.Barrier(4)
    reports: list[SendReport] = []

    def sender() -> None:
        with app.app_context():
            barrier.wait()
            reports.append(outbox.send_due_notifications(limit=8))
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(report.sent for report in reports) == 24
    received_ids = [message_id(mail) for mail in sink.take()]
    assert sorted(received_ids) == sorted(row.message_id for row in outbox_rows())  # each once
    assert {row.status for row in outbox_rows()} == {"sent"}


# --- domain events -----------------------------------------------------------------------


def test_every_row_is_published_once_in_id_order_keyed_by_event(app, client, sink):
    publisher = RecordingPublisher()
    use_adapters(app, domain_events=publisher)
    host = account(client, "host")
    guest = account(client)
    first = create_event(client, host, capacity=1)["id"]
    second = create_event(client, host, capacity=1)["id"]
    book(client, guest, first, 1)
    book(client, guest, second, 2)
    book(client, guest, first, 1)
    rows = outbox_rows()
    assert outbox.publish_due_domain_events(limit=2) == 2
    assert outbox.publish_due_domain_events() == 1
    assert outbox.publish_due_domain_events() == 0
    published = [event for batch in publisher.batches for event in batch]
    assert [len(batch) for batch in publisher.batches] == [2, 1]
    assert [key for key, _ in published] == [str(first), str(second), str(first)]
    assert [payload["outboxId"] for _, payload in published] == [row.id for row in rows]
    key, payload = published[1]
    assert payload["kind"] == "booking.partial"
    assert payload["messageId"] == rows[1].message_id
    assert payload["userId"] == guest.id
    assert payload["createdAt"] == rows[1].created_at.isoformat()
    assert (payload["eventId"], payload["seatsConfirmed"], payload["seatsWaitlisted"]) == (second, 1, 1)
    assert all(row.published_at is not None for row in outbox_rows())
    assert all(row.status == "pending" for row in outbox_rows())  # e-mail and Kafka copies are independent


def test_rows_a_broker_did_not_acknowledge_stay_for_the_next_run(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    use_adapters(app, domain_events=RefusingPublisher())
    assert outbox.publish_due_domain_events() == 0
    assert outbox.outbox_backlog()["unpublished"] == 1
    publisher = RecordingPublisher()
    use_adapters(app, domain_events=publisher)
    assert outbox.publish_due_domain_events() == 1
    assert outbox.outbox_backlog()["unpublished"] == 0
    assert len(publisher.batches) == 1


def test_a_second_publisher_stands_aside_while_one_is_publishing(postgres_app, postgres_url, sink):
    client = postgres_app.test_client()
    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    publisher = RecordingPublisher()
    use_adapters(postgres_app, domain_events=publisher)
    lock_parameters = {"namespace": outbox.PUBLISH_LOCK_NAMESPACE, "key": outbox.PUBLISH_LOCK_KEY}
    other = sa.create_engine(postgres_url)
    try:
        with other.connect() as connection:  # another process, mid-publish
            connection.execute(sa.text("SELECT pg_advisory_lock(:namespace, :key)"), lock_parameters)
            assert outbox.publish_due_domain_events() == 0
            assert publisher.batches == []
            connection.execute(sa.text("SELECT pg_advisory_unlock(:namespace, :key)"), lock_parameters)
    finally:
        other.dispose()
    assert outbox.publish_due_domain_events() == 1


def test_a_send_made_while_the_database_restarts_is_recorded_once_it_is_back(postgres_app, postgres_url, sink):
    """The e-mail went out; the database died before its record. Recording is retried until
    the database is back, so the row is `sent` and never goes out a second time after the lease."""
    client = postgres_app.test_client()
    book(client, account(client), create_event(client, account(client, "host"), capacity=5)["id"], 1)
    (claim,), _ = outbox._claim_due(limits.OUTBOX_BATCH_SIZE_MAX)
    postgres_app.extensions[EXTENSION_KEY].mailer.send(
        outbox._mail_message(claim, outbox._Tickets(PUBLIC_BASE_URL, [claim]))
    )
    with database_back_after(postgres_url, delay_s=1.0):
        assert outbox._record(outbox._record_sent, [claim], 0) == 1
    (row,) = outbox_rows()
    assert (row.status, row.attempts) == ("sent", 1)
    make_due()
    assert outbox.send_due_notifications() == NOTHING
    assert [message_id(mail) for mail in sink.take()] == [row.message_id]


def test_a_database_lost_right_after_the_claim_does_not_hold_the_batch_for_its_lease(
    postgres_app, postgres_url, sink, monkeypatch
):
    """The database dies between the batch's claim and the end of its ticket read (the e2e
    SIGKILL of Postgres met it there): the read's end fails on the dead connection. The batch
    still goes out now and is recorded once the database is back; before, the task raised and
    its rows stayed leased, the e-mails three minutes late."""
    client = postgres_app.test_client()
    book(client, account(client), create_event(client, account(client, "host"), capacity=5)["id"], 1)
    read_calendars = outbox.booking_calendars
    with DownAtFirstCall(postgres_url) as lose_the_database:

        def read_then_lose_the_database(session, booking_ids):
            calendars = read_calendars(session, booking_ids)
            lose_the_database()  # the read's connection is terminated before its transaction ends
            return calendars

        monkeypatch.setattr(outbox, "booking_calendars", read_then_lose_the_database)
        assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    assert lose_the_database.calls == 1
    (row,) = outbox_rows()
    assert (row.status, row.attempts) == ("sent", 1)
    assert [message_id(mail) for mail in sink.take()] == [row.message_id]


def test_rows_a_batch_gives_back_at_its_deadline_while_the_database_restarts_are_given_back_once_it_is_back(
    postgres_app, postgres_url, sink, monkeypatch
):
    """The batch's deadline passed after its first e-mail, and the database restarts just as
    the rest is given back: the giving back waits for the database as a record does. Before,
    the task raised there, the unsent row stayed leased (its e-mail minutes late) and a send
    whose record had been deferred went out twice."""
    client = postgres_app.test_client()
    guest = account(client)
    event_id = create_event(client, account(client, "host"), capacity=5)["id"]
    book(client, guest, event_id, 1)
    book(client, guest, event_id, 1)
    mailer = postgres_app.extensions[EXTENSION_KEY].mailer
    send_all = mailer.send_all

    def first_then_deadline(messages, deadline, on_accepted=None):
        sent = send_all(messages[:1], deadline, on_accepted)  # the real SMTP session
        return sent + [MailNotAttempted("the batch's deadline passed")] * (len(messages) - 1)

    release = outbox._release
    monkeypatch.setattr(mailer, "send_all", first_then_deadline)
    with DownAtFirstCall(postgres_url) as lose_the_database:

        def release_while_the_database_restarts(claims):
            lose_the_database()
            return release(claims)

        monkeypatch.setattr(outbox, "_release", release_while_the_database_restarts)
        assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    assert lose_the_database.calls >= 1
    assert outbox.outbox_backlog()["due"] == 1  # given back, not leased for OUTBOX_SEND_LEASE_S
    monkeypatch.undo()
    assert outbox.send_due_notifications() == SendReport(sent=1, retried=0, failed=0)
    received_ids = [message_id(mail) for mail in sink.take()]
    assert sorted(received_ids) == sorted(row.message_id for row in outbox_rows())  # each once
    assert {(row.status, row.attempts) for row in outbox_rows()} == {("sent", 1)}


# --- operators ---------------------------------------------------------------------------


def test_the_outbox_commands_send_and_report(app, client, sink):
    app.cli.add_command(outbox_cli)
    runner = app.test_cli_runner()
    host = account(client, "host")
    guest = account(client)
    book(client, guest, create_event(client, host, capacity=5)["id"], 1)
    status = runner.invoke(args=["outbox", "status"])
    assert status.exit_code == 0, status.output
    assert re.search(r"^pending\s+1$", status.output, re.MULTILINE)
    assert re.search(r"^unpublished\s+1$", status.output, re.MULTILINE)
    sent = runner.invoke(args=["outbox", "send"])
    assert sent.exit_code == 0, sent.output
    assert "sent 1, to retry later 0, failed 0" in sent.output
    assert len(sink.take()) == 1
    use_adapters(app, domain_events=RecordingPublisher())
    published = runner.invoke(args=["outbox", "publish"])
    assert published.exit_code == 0, published.output
    assert "published 1" in published.output
    assert runner.invoke(args=["outbox", "send", "--limit", "0"]).exit_code != 0


# --- rendering and the logging mailer (pure, no backend) ----------------------------------

EVENT_FIELDS = {
    "eventId": 7,
    "eventName": "Jazz Night",
    "venue": "Blue Room",
    "startsAt": "2026-12-05T19:30:00+00:00",
    "requestId": "req-1",
}


RENDER_CASES = {
    "confirmed": (
        "booking.confirmed",
        {"seatsRequested": 2, "seatsConfirmed": 2, "seatsWaitlisted": 0},
        "Booking confirmed: Jazz Night",
        ["2 seats for Jazz Night"],
    ),
    "waitlisted": (
        "booking.waitlisted",
        {"seatsRequested": 1, "seatsConfirmed": 0, "seatsWaitlisted": 1},
        "You are on the waitlist for Jazz Night",
        ["your request for 1 seat is on the waitlist"],
    ),
    "rejected, event deleted": (
        "booking.rejected",
        {"seatsRequested": 3, "reason": "event_deleted"},
        "Booking not possible: Jazz Night",
        ["cancelled by its host", "3 seats"],
    ),
    "rejected, waitlist closed": (
        "booking.rejected",
        {"seatsRequested": 3, "seatsConfirmed": 0, "seatsWaitlisted": 0, "reason": "waitlist_closed"},
        "Booking not possible: Jazz Night",
        ["waitlist is closed"],
    ),
    "promoted": (
        "booking.promoted",
        {"bookingId": 12, "seatsPromoted": 2, "seatsStillWaitlisted": 0},
        "Seats confirmed from the waitlist: Jazz Night",
        ["#12", "whole request"],
    ),
    "cancelled": (
        "booking.cancelled",
        {"bookingId": 12, "seatsFreed": 2},
        "Booking cancelled: Jazz Night",
        ["#12", "2 seats released"],
    ),
    "promoted, partly": (
        "booking.promoted",
        {
            "bookingId": 12,
            "seatsPromoted": 2,
            "seatsStillWaitlisted": 1,
            "requestStatus": "partial",
            "seatsRequested": 3,
            "seatsHeld": 2,
        },
        "Seats confirmed from the waitlist: Jazz Night",
        ["stays at the head of the waitlist", "Request status:", "partly confirmed", "2 of 3"],
    ),
    "cancelled with the waiting remainder": (
        "booking.cancelled",
        {
            "bookingId": 12,
            "seatsFreed": 2,
            "seatsWithdrawn": 1,
            "requestStatus": "cancelled",
            "seatsRequested": 3,
            "seatsHeld": 0,
        },
        "Booking cancelled: Jazz Night",
        ["2 seats released", "1 seat of the same request still on the waitlist is withdrawn", "0 of 3"],
    ),
    "left the waitlist": (
        "booking.withdrawn",
        {"seatsWithdrawn": 2, "requestStatus": "partial", "seatsRequested": 4, "seatsHeld": 2},
        "You left the waitlist: Jazz Night",
        ["the 2 seats you were waiting for are withdrawn", "Your 2 seats already confirmed", "partly confirmed"],
    ),
    "event cancelled": ("event.cancelled", {}, "Event cancelled: Jazz Night", ["host has cancelled Jazz Night"]),
    "rejected, sales ended": (
        "booking.rejected",
        {"seatsRequested": 2, "seatsConfirmed": 0, "seatsWaitlisted": 0, "reason": "event_started"},
        "Booking not possible: Jazz Night",
        ["sales for the event ended", "2 seats"],
    ),
    "waitlist expired at the sales end": (
        "waitlist.expired",
        {"seatsRequested": 3, "seatsConfirmed": 1, "seatsExpired": 2, "reason": "event_started"},
        "Sales ended: your waitlist place for Jazz Night was not served",
        [
            "Sales for Jazz Night have ended",
            "2 seats you were waiting for",
            "confirmed for you earlier (1 seat) stays yours",
        ],
    ),
    "offered (offer mode)": (
        "waitlist.offered",
        {
            "seatsOffered": 2,
            "seatsWaiting": 3,
            "offerExpiresAt": "2026-12-04T19:30:00+00:00",
            "offerToken": "tok",
            "requestId": "r-1",
        },
        "2 seats offered to you for Jazz Night",
        [
            "you are next in line: 2 seats are held for you until Friday 04 December 2026, 19:30 UTC",
            "You were waiting for 3",
            "https://pages.example.test/offers/tok",
        ],
    ),
    "offer declined": (
        "waitlist.offer_ended",
        {"answer": "declined", "seatsOffered": 2, "seatsConfirmed": 0},
        "Your waitlist offer for Jazz Night has ended",
        ["You declined the 2 seats offered to you", "no longer on the waitlist"],
    ),
    "offer expired": (
        "waitlist.offer_ended",
        {"answer": "expired", "seatsOffered": 1, "seatsConfirmed": 2},
        "Your waitlist offer for Jazz Night has ended",
        ["were not accepted in time", "confirmed for you earlier (2 seats) stays yours"],
    ),
}


@pytest.mark.parametrize(("kind", "fields", "subject", "phrases"), RENDER_CASES.values(), ids=RENDER_CASES.keys())
def test_every_kind_renders_its_facts(kind, fields, subject, phrases):
    rendered_subject, text, page = notifications.render(kind, {**EVENT_FIELDS, **fields}, "Ada", BASE)
    assert rendered_subject == subject
    assert text.startswith("Hello Ada,\n")
    assert "Saturday 05 December 2026, 19:30 UTC" in text
    assert "Blue Room" in text and "Blue Room" in page
    for phrase in phrases:
        assert phrase in text


def test_rendering_covers_every_kind_the_services_write():
    from atomicseats.services._notification_rows import NOTIFICATION_KINDS

    for kind in NOTIFICATION_KINDS:
        fields = {"seatsRequested": 1, "seatsConfirmed": 1, "seatsWaitlisted": 0, "bookingId": 1}
        fields |= {"seatsPromoted": 1, "seatsFreed": 1, "seatsWithdrawn": 1, "seatsExpired": 1}
        fields |= {"seatsOffered": 1, "seatsWaiting": 1, "offerToken": "t", "answer": "declined"}
        assert notifications.render(kind, {**EVENT_FIELDS, **fields}, "Ada", BASE)[0]
    with pytest.raises(ValueError):
        notifications.render("booking.unknown", EVENT_FIELDS, "Ada", BASE)


def test_a_mail_lists_every_booking_it_concerns_and_links_under_the_base_url():
    payload = {**EVENT_FIELDS, "bookingIds": [3, 4], "seatsWithdrawn": 1, "seatsHeld": 2}
    _, text, page = notifications.render("booking.withdrawn", payload, "Ada", BASE)
    assert re.search(r"^Bookings:\s+#3, #4$", text, re.M)
    assert re.search(rf"^See the event:\s+{BASE}/events/7$", text, re.M)
    assert re.search(rf"^My bookings:\s+{BASE}/bookings$", text, re.M)
    assert f"<a href='{BASE}/events/7'>See the event</a>" in page
    older = {**EVENT_FIELDS, "bookingId": 12, "seatsFreed": 2}  # a row written before bookingIds
    assert re.search(r"^Booking:\s+#12$", notifications.render("booking.cancelled", older, "Ada", BASE)[1], re.M)
    _, withdrawn_event, _ = notifications.render("event.cancelled", {**EVENT_FIELDS, "bookingIds": [5]}, "Ada", BASE)
    assert "See the event" not in withdrawn_event and re.search(r"^Booking:\s+#5$", withdrawn_event, re.M)


def test_a_subject_stays_on_one_line_whatever_the_event_name():
    subject, _, _ = notifications.render(
        "event.cancelled", {**EVENT_FIELDS, "eventName": "Bad\r\nBcc: x@y"}, "Ada", BASE
    )
    assert "\n" not in subject and "\r" not in subject
