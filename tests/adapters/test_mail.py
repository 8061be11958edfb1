"""The mail adapters: what the logging mailer of the embedded default writes (and never writes)."""

from __future__ import annotations

from atomicseats.adapters.mail import LoggingMailer
from atomicseats.names import MAIL_KIND_HEADER
from atomicseats.services.contracts import MailMessage


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
