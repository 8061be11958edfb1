"""The notification e-mail's bytes (adapters/mime.py) are exactly what Flask-Mail writes for the
same message, whatever hosts and guests type: only the random MIME boundaries differ (the Date
header is fixed by the caller here). Flask-Mail itself is the reference, not a copy of its rules."""

from __future__ import annotations

import re

import flask_mail
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from atomicseats.adapters import mime
from atomicseats.names import MAIL_KIND_HEADER
from atomicseats.services import notifications
from atomicseats.services.contracts import MailMessage

SENDER = "AtomicSeats <no-reply@atomicseats.local>"
NOW = 1_790_000_000.25
BOUNDARY = re.compile(rb"={15}\d{19}==")
# What people type, including what folding, encoded words and the HTML escaping must handle.
TYPED = st.text(st.sampled_from("abcXYZ 09 äöüß — 日本 <>&'\"\t.-=?_:;,@"), max_size=120)
ADDRESSES = st.one_of(
    st.from_regex(r"[a-z0-9._+-]{1,70}@[a-z0-9-]{1,40}\.test", fullmatch=True),
    st.sampled_from(["a@exämple.test", "Guest Name <b@example.test>", '"quoted, name" <c@example.test>']),
)
MESSAGE_IDS = st.from_regex(r"<booking\.confirmed\.[a-z0-9-]{1,120}@atomicseats\.local>", fullmatch=True)


@pytest.fixture(scope="module")
def mail_context():
    application = Flask(__name__)
    application.config.update(MAIL_DEFAULT_SENDER=SENDER, MAIL_SUPPRESS_SEND=False)
    flask_mail.Mail(application)
    with application.app_context():
        yield


def same_but_boundaries(data: bytes) -> bytes:
    """Each distinct boundary replaced by its rank of first appearance."""
    for rank, boundary in enumerate(dict.fromkeys(BOUNDARY.findall(data))):
        data = data.replace(boundary, b"BOUNDARY-%d" % rank)
    return data


def rendered(kind: str, event_name: str, venue: str, name: str, recipient: str, message_id: str) -> MailMessage:
    payload = {
        "eventId": 7,
        "eventName": event_name,
        "venue": venue,
        "startsAt": "2026-12-05T19:30:00+00:00",
        "requestId": "req-1",
        "seatsRequested": 3,
        "seatsConfirmed": 1,
        "seatsWaitlisted": 2,
        "bookingIds": [12],
    }
    subject, text, html = notifications.render(kind, payload, name, "https://tickets.example.test")
    return MailMessage(
        recipient=recipient,
        subject=subject,
        body_text=text,
        body_html=html,
        message_id=message_id,
        headers={MAIL_KIND_HEADER: kind, "Auto-Submitted": "auto-generated"},
    )


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["booking.confirmed", "booking.partial", "booking.waitlisted", "booking.rejected"]),
    event_name=TYPED,
    venue=TYPED,
    name=TYPED,
    recipient=ADDRESSES,
    message_id=MESSAGE_IDS,
)
def test_the_bytes_are_flask_mails_for_any_typed_values(
    mail_context, kind, event_name, venue, name, recipient, message_id
):
    message = rendered(kind, event_name, venue, name, recipient, message_id)
    built = mime.message_bytes(message, SENDER, NOW)
    assert same_but_boundaries(built) == same_but_boundaries(mime.flask_mail_bytes(message, SENDER, NOW))


def test_each_message_gets_fresh_boundaries(mail_context):
    message = rendered("booking.confirmed", "Jazz", "Hall", "Ann", "a@example.test", "<x@atomicseats.local>")
    first, second = mime.message_bytes(message, SENDER, NOW), mime.message_bytes(message, SENDER, NOW)
    assert len(set(BOUNDARY.findall(first))) == 2
    assert set(BOUNDARY.findall(first)).isdisjoint(BOUNDARY.findall(second))
    assert same_but_boundaries(first) == same_but_boundaries(second)


def test_a_body_line_that_looks_like_a_boundary_takes_flask_mails_path(mail_context, monkeypatch):
    monkeypatch.setattr(mime, "_boundary", lambda: "=" * 15 + "1" * 19 + "==")
    message = rendered("booking.confirmed", "--" + "=" * 15 + "1" * 19 + "==", "Hall", "Ann", "a@example.test", "<x@y>")
    built = mime.message_bytes(message, SENDER, NOW)
    (outer,) = re.findall(rb'^Content-Type: multipart/mixed; boundary="(.+)"', built, re.M)
    assert outer != b"=" * 15 + b"1" * 19 + b"=="  # the generator chose its own
    assert same_but_boundaries(built) == same_but_boundaries(mime.flask_mail_bytes(message, SENDER, NOW))


def test_a_line_break_in_the_recipient_is_refused_as_flask_mail_refuses_it(mail_context):
    message = rendered("booking.confirmed", "Jazz", "Hall", "Ann", "a@example.test\r\nBcc: b@example.test", "<x@y>")
    with pytest.raises(flask_mail.BadHeaderError):
        mime.message_bytes(message, SENDER, NOW)
