"""The bytes of a notification e-mail, built directly: exactly what Flask-Mail 0.10 writes.

Flask-Mail builds a tree of `email.mime` objects and serialises it with the `email` package's
generator, re-parsing every header on the way (~1 ms of CPU a message here, the biggest part
of sending one). Every notification has the same shape, so this module writes that shape
directly: a multipart/mixed holding a multipart/alternative of a text/plain and a text/html
part, utf-8, 7bit or 8bit, CRLF line ends. Each header goes through the same folding call the
generator makes (`policy.SMTP.fold_binary`), which costs nothing for a short header and
refolds a long or non-ASCII one exactly as Flask-Mail's would be. The only differences from
Flask-Mail's output are its random parts (the two MIME boundaries) and the Date header.

`flask_mail_bytes` builds the same message the Flask-Mail way: the reference the tests compare
against, and the path taken for whatever this module does not handle (a boundary-like line in
a body).
"""

from __future__ import annotations

import random
import sys
import time
from email import policy
from email.utils import formatdate
from functools import lru_cache

import flask_mail

from atomicseats.services.contracts import MailMessage

LINE_END = "\r\n"
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))  # as email.generator makes boundaries
_PLACEHOLDER = "=" * 15 + "0" * _BOUNDARY_DIGITS + "=="


_LINE_LENGTH_MAX = policy.SMTP.max_line_length or 78  # 78 (RFC 5322); None would mean unlimited


def _fold(name: str, value: str) -> bytes:
    """`policy.SMTP.fold_binary`, whose answer for a short printable ASCII value is the plain
    `Name: value` line: written directly (the call was a quarter of the build's time)."""
    if len(name) + len(value) + 2 <= _LINE_LENGTH_MAX and value.isascii() and value.isprintable():
        return f"{name}: {value}\r\n".encode("ascii")
    return policy.SMTP.fold_binary(name, value)


# The container headers, folded once around a placeholder boundary of the real one's length.
_MIXED_HEADER = _fold("Content-Type", f'multipart/mixed; boundary="{_PLACEHOLDER}"').decode("ascii")
_ALTERNATIVE_HEADER = _fold("Content-Type", f'multipart/alternative; boundary="{_PLACEHOLDER}"').decode("ascii")


@lru_cache(maxsize=4096)
def _subject_header(subject: str) -> bytes:
    """Subjects repeat (one per event and kind): each is sanitised and folded once."""
    return _fold("Subject", flask_mail.sanitize_subject(subject, "utf-8"))


@lru_cache(maxsize=16)
def _from_header(sender: str) -> bytes:
    return _fold("From", flask_mail.sanitize_address(sender, "utf-8"))


@lru_cache(maxsize=16)
def envelope_sender(sender: str) -> str:
    return flask_mail.sanitize_address(sender)


_date_cache: tuple[int, bytes] = (-1, b"")


def _date_header(now: float) -> bytes:
    """formatdate(now, localtime=True) changes once a second: formatted once a second."""
    global _date_cache
    second = int(now)
    if _date_cache[0] != second:
        _date_cache = (second, _fold("Date", formatdate(second, localtime=True)))
    return _date_cache[1]


def _boundary() -> str:
    # As email.generator makes them: a boundary need only be unlikely in the text, not secret.
    return "=" * 15 + f"{random.randrange(sys.maxsize):0{_BOUNDARY_DIGITS}d}" + "=="  # nosec B311  # a MIME boundary, not a secret


def _text_part(text: str, subtype: str) -> bytes:
    """A MIMEText part as Flask-Mail's utf-8 charset (no body encoding) writes it."""
    body = text.encode("utf-8")
    encoding = "7bit" if body.isascii() else "8bit"
    lines = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii")
    return head + b"\r\n".join(lines)


def is_simple_address(address: str) -> bool:
    """An address Flask-Mail's sanitising leaves as it is: ASCII, no name, nothing to quote."""
    return address.isascii() and "<" not in address and '"' not in address and " " not in address and "," not in address


def message_bytes(message: MailMessage, sender: str, now: float | None = None) -> bytes:
    """The message as Flask-Mail would send it (see the module's docstring)."""
    mixed, alternative = _boundary(), _boundary()
    text, html = message.body_text, message.body_html
    if (
        any(f"--{boundary}" in body for boundary in (mixed, alternative) for body in (text, html))
        or "\n" in message.subject
        or "\r" in message.subject
    ):  # the generator would pick another boundary; Flask-Mail's own check of a multi-line subject
        return flask_mail_bytes(message, sender, now)
    if "\n" in message.recipient or "\r" in message.recipient:
        raise flask_mail.BadHeaderError("a line break in the recipient")
    if is_simple_address(message.recipient):
        to = _fold("To", message.recipient)
    else:
        to = _fold("To", flask_mail.sanitize_address(message.recipient, "utf-8"))
    extra = b"".join(_fold(name, value) for name, value in message.headers.items() if name.lower() != "message-id")
    head = (
        _MIXED_HEADER.replace(_PLACEHOLDER, mixed).encode("ascii")
        + b"MIME-Version: 1.0\r\n"
        + (_subject_header(message.subject) if message.subject else b"")
        + _from_header(sender)
        + to
        + _date_header(time.time() if now is None else now)
        + _fold("Message-ID", message.message_id)
        + extra
    )
    outer, inner = f"--{mixed}".encode("ascii"), f"--{alternative}".encode("ascii")
    return b"".join(
        (
            head,
            b"\r\n",
            outer,
            b"\r\n",
            _ALTERNATIVE_HEADER.replace(_PLACEHOLDER, alternative).encode("ascii"),
            b"MIME-Version: 1.0\r\n\r\n",
            inner,
            b"\r\n",
            _text_part(text, "plain"),
            b"\r\n",
            inner,
            b"\r\n",
            _text_part(html, "html"),
            b"\r\n",
            inner,
            b"--\r\n\r\n",
            outer,
            b"--\r\n",
        )
    )


def flask_mail_message(message: MailMessage, sender: str, now: float | None = None) -> flask_mail.Message:
    extra_headers = {name: value for name, value in message.headers.items() if name.lower() != "message-id"}
    mail_message = flask_mail.Message(
        subject=message.subject,
        recipients=[message.recipient],
        body=message.body_text,
        html=message.body_html,
        sender=sender,
        extra_headers=extra_headers,
        date=time.time() if now is None else now,
    )
    # Flask-Mail writes `Message-ID: <make_msgid()>` itself and then *adds* each extra header
    # (assignment appends), so the stable id goes in as the message's own id instead.
    mail_message.msgId = message.message_id
    return mail_message


def flask_mail_bytes(message: MailMessage, sender: str, now: float | None = None) -> bytes:
    """The same message built by Flask-Mail, with the check its `send` makes (needs an app
    context: Flask-Mail reads its settings)."""
    mail_message = flask_mail_message(message, sender, now)
    if mail_message.has_bad_headers():
        raise flask_mail.BadHeaderError("a line break in a header")
    return mail_message.as_bytes()
