"""The mail adapters: what the logging mailer of the embedded default writes (and never writes),
and how the SMTP mailer uses its sessions, against the real SMTP sink (aiosmtpd)."""

from __future__ import annotations

import dataclasses
import email
import math
import smtplib
import sys
import threading
import time
from email import policy

import flask_mail
import pytest
from flask import Flask

from atomicseats.adapters import mime
from atomicseats.adapters.mail import FlaskMailMailer, LoggingMailer
from atomicseats.domain import limits
from atomicseats.names import MAIL_KIND_HEADER
from atomicseats.services.contracts import MailMessage, MailNotAttempted
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from smtp_sink import start_sink  # noqa: E402  (a script, not a package)


def test_the_logging_mailer_logs_the_kind_and_message_id_only(caplog):
    message = MailMessage(
        recipient="secret@example.test",
        subject="Booking confirmed: Jazz Night",
        body_text="private body",
        body_html="<p>private body</p>",
        message_id="<booking.confirmed.x@atomicseats.local>",
        headers={MAIL_KIND_HEADER: "booking.confirmed"},
    )
    with caplog.at_level("INFO", logger="atomicseats.adapters.mail"):
        LoggingMailer().send(message)
    (record,) = caplog.records
    assert record.getMessage() == "mail.suppressed"
    assert (record.kind, record.message_id) == ("booking.confirmed", "<booking.confirmed.x@atomicseats.local>")
    assert "secret@example.test" not in str(vars(record))
    assert "private body" not in str(vars(record))


# --- the SMTP mailer against the real sink (scripts/smtp_sink.py, aiosmtpd) ----------------


@pytest.fixture(params=["pipelining", "one-by-one"])
def sink(request, tmp_path):
    """The sink, advertising PIPELINING (the mailer sends a message per write) or not (smtplib's
    sendmail, a round trip per command): every session test runs against both."""
    controller = start_sink("127.0.0.1", 0, tmp_path / "smtp")
    controller.handler.pipelining = request.param == "pipelining"
    yield controller
    controller.stop()


@pytest.fixture
def mail_app(sink):
    """The smallest app the mailer needs: Flask-Mail's settings, pointed at the sink."""
    application = Flask(__name__)
    application.config.update(
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=sink.port,
        MAIL_SUPPRESS_SEND=False,
        MAIL_DEFAULT_SENDER="AtomicSeats <no-reply@atomicseats.local>",
    )
    flask_mail.Mail(application)
    with application.app_context():
        yield application


def mail(number: int, recipient: str | None = None) -> MailMessage:
    return MailMessage(
        recipient=recipient or f"guest{number}@example.test",
        subject=f"Booking confirmed: Concert {number}",
        body_text=f"Hello guest {number},\n\nYour booking is confirmed.\n",
        body_html=f"<p>Hello guest {number},</p>\n",
        message_id=f"<booking.confirmed.req-{number}@atomicseats.local>",
        headers={MAIL_KIND_HEADER: "booking.confirmed"},
    )


def stored_ids(sink) -> list[str]:
    messages = [email.message_from_bytes(path.read_bytes(), policy=policy.default) for path in sink.messages()]
    return [str(message["Message-ID"]).strip() for message in messages]


def later() -> float:
    return time.monotonic() + limits.OUTBOX_SEND_BATCH_S_MAX


def test_each_message_arrives_as_the_bytes_built_for_it(mail_app, sink):
    """Lines starting with a dot are doubled on the wire (SMTP's transparency) and undone by the
    server: what it stores is what mime.py built, byte for byte, whichever way it was sent."""
    messages = [mail(number) for number in range(3)]
    messages[1] = dataclasses.replace(messages[1], body_text=".starts with a dot\n..two\n.\nend")
    assert FlaskMailMailer().send_all(messages, later()) == [None] * 3
    stored = {}
    for path in sink.messages():
        data = path.read_bytes()
        trace, _, content = data.partition(b"X-RcptTo: ")
        rcpt, _, content = content.partition(b"\r\n")
        stored[rcpt.decode()] = content
    for message in messages:
        built = mime.message_bytes(message, "AtomicSeats <no-reply@atomicseats.local>", 0)
        received = stored[message.recipient]
        # The random parts (the two MIME boundaries) and the Date differ between two builds.
        assert _without_random_parts(received) == _without_random_parts(built)


def _without_random_parts(data: bytes) -> bytes:
    message = email.message_from_bytes(data, policy=policy.SMTP)
    boundaries = [part.get_boundary() for part in message.walk() if part.is_multipart()]
    for boundary in boundaries:
        data = data.replace(boundary.encode(), b"BOUNDARY")
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Date: "))


def test_a_batch_goes_over_one_smtp_session(mail_app, sink):
    count = limits.OUTBOX_BATCH_SIZE_MAX
    messages = [mail(number) for number in range(count)]
    assert FlaskMailMailer().send_all(messages, later()) == [None] * count
    assert sink.handler.sessions == 1
    assert sorted(stored_ids(sink)) == sorted(message.message_id for message in messages)


def test_a_big_batch_shares_the_sessions_allowed_and_sends_each_message_once(mail_app, sink):
    count = limits.OUTBOX_BATCH_SIZE_MAX
    messages = [mail(number) for number in range(count)]
    assert FlaskMailMailer(sessions=4).send_all(messages, later()) == [None] * count
    assert sink.handler.sessions == min(4, math.ceil(count / limits.MAIL_SMTP_MESSAGES_PER_SESSION_MIN))
    assert sorted(stored_ids(sink)) == sorted(message.message_id for message in messages)


def test_a_refused_recipient_fails_alone_and_the_session_goes_on(mail_app, sink):
    sink.handler.refuse_rcpt = {"guest3@example.test"}
    messages = [mail(number) for number in range(10)]
    results = FlaskMailMailer().send_all(messages, later())
    assert isinstance(results[3], smtplib.SMTPRecipientsRefused)
    assert results[:3] + results[4:] == [None] * 9
    assert sink.handler.sessions == 1
    assert sorted(stored_ids(sink)) == sorted(
        message.message_id for index, message in enumerate(messages) if index != 3
    )


def test_a_connection_dropped_mid_batch_resends_only_the_message_not_accepted(mail_app, sink):
    messages = [mail(number) for number in range(10)]
    mailer = FlaskMailMailer()
    assert mailer.send_all(messages[:4], later()) == [None] * 4
    sink.handler.drop_data = 1  # the 5th message's connection breaks before the server answers
    assert mailer.send_all(messages[4:], later()) == [None] * 6
    assert sink.handler.sessions == 3  # the first batch's, the one that broke, its replacement
    assert sorted(stored_ids(sink)) == sorted(message.message_id for message in messages)  # each once


def test_a_connection_that_breaks_twice_fails_the_rest_of_its_session_for_a_later_retry(mail_app, sink):
    sink.handler.drop_data = 2
    messages = [mail(number) for number in range(5)]
    results = FlaskMailMailer().send_all(messages, later())
    assert all(isinstance(result, smtplib.SMTPServerDisconnected) for result in results)
    assert stored_ids(sink) == []


def test_an_unreachable_server_fails_the_batch_without_a_connection_per_message(mail_app, sink):
    sink.stop()
    results = FlaskMailMailer().send_all([mail(number) for number in range(30)], later())
    assert all(isinstance(result, ConnectionRefusedError) for result in results)


def test_messages_past_the_deadline_are_not_attempted(mail_app, sink):
    results = FlaskMailMailer().send_all([mail(number) for number in range(3)], time.monotonic() - 1)
    assert all(isinstance(result, MailNotAttempted) for result in results)
    assert sink.handler.sessions == 0


@pytest.mark.parametrize("sessions", [1, 2])
def test_accepted_messages_are_reported_as_they_go_each_once_in_the_callers_thread(
    mail_app, sink, monkeypatch, sessions
):
    monkeypatch.setattr(limits, "MAIL_ACCEPTED_REPORT_S", 0.001)
    sink.handler.refuse_rcpt = {"guest3@example.test"}
    caller, reports = threading.get_ident(), []

    def on_accepted(positions: list[int]) -> None:
        assert threading.get_ident() == caller  # where the outbox's database session is
        reports.append(positions)

    messages = [mail(number) for number in range(2 * limits.MAIL_SMTP_MESSAGES_PER_SESSION_MIN)]
    results = FlaskMailMailer(sessions=sessions).send_all(messages, later(), on_accepted)
    reported = [position for report in reports for position in report]
    assert sorted(reported) == [position for position, result in enumerate(results) if result is None]
    assert len(reported) == len(set(reported)) == len(messages) - 1


def test_a_small_batch_keeps_one_session_whatever_is_allowed(mail_app, sink):
    count = limits.MAIL_SMTP_MESSAGES_PER_SESSION_MIN
    assert FlaskMailMailer(sessions=4).send_all([mail(number) for number in range(count)], later()) == [None] * count
    assert sink.handler.sessions == 1
