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

import base64
import random
import sys
import time
from email import policy
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.utils import formatdate
from functools import lru_cache

import flask_mail

from atomicseats.services.contracts import MailMessage, MailPart

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
_RELATED_HEADER = _fold("Content-Type", f'multipart/related; boundary="{_PLACEHOLDER}"').decode("ascii")


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
    mixed, alternative, related = _boundary(), _boundary(), _boundary()
    text, html = message.body_text, message.body_html
    if (
        any(f"--{boundary}" in body for boundary in (mixed, alternative, related) for body in (text, html))
        or not all(_is_simple_part(part) for part in message.parts)
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
    body = b"".join(
        (
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
            b"--\r\n",
        )
    )
    inline = [part for part in message.parts if part.content_id is not None]
    attached = [part for part in message.parts if part.content_id is None]
    if inline:  # the HTML and the images it shows by Content-ID, as one multipart/related
        middle = f"--{related}".encode("ascii")
        body = b"".join(
            (
                _RELATED_HEADER.replace(_PLACEHOLDER, related).encode("ascii"),
                b"MIME-Version: 1.0\r\n\r\n",
                middle,
                b"\r\n",
                body,
                *(b"".join((b"\r\n", middle, b"\r\n", _file_part(part))) for part in inline),
                b"\r\n",
                middle,
                b"--\r\n",
            )
        )
    return b"".join(
        (
            head,
            b"\r\n",
            outer,
            b"\r\n",
            body,
            *(b"".join((b"\r\n", outer, b"\r\n", _file_part(part))) for part in attached),
            b"\r\n",
            outer,
            b"--\r\n",
        )
    )


def _is_simple_part(part: MailPart) -> bool:
    """A part whose headers need no quoting or folding: the ones we make (else the slow path)."""
    return (
        all(
            value.isascii() and value.isprintable() and '"' not in value and "\\" not in value
            for value in (part.filename, part.content_type, part.content_id or "")
        )
        and len(part.filename) < 40
    )


def _file_part(part: MailPart) -> bytes:
    """A file as Flask-Mail attaches one: base64 in lines of 76, then its disposition and id."""
    disposition = "inline" if part.content_id is not None else "attachment"
    head = (
        f"Content-Type: {part.content_type}\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: {disposition}; filename="{part.filename}"\r\n'
    )
    if part.content_id is not None:
        head += f"Content-ID: <{part.content_id}>\r\n"
    encoded = base64.encodebytes(part.data).replace(b"\n", b"\r\n")
    return head.encode("ascii") + b"\r\n" + encoded


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
    for part in message.parts:
        headers = {"Content-ID": f"<{part.content_id}>"} if part.content_id is not None else {}
        disposition = "inline" if part.content_id is not None else "attachment"
        mail_message.attach(part.filename, part.content_type, part.data, disposition, headers)
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
    if not any(part.content_id is not None for part in message.parts):
        return mail_message.as_bytes()
    # Flask-Mail puts every file beside the text and HTML; the inline images go with them into
    # a multipart/related (RFC 2387), which is what lets mail clients show them in the HTML.
    tree = mail_message._message()
    children: list[Message] = tree.get_payload()  # type: ignore[assignment]  # a multipart's: a list
    alternative, *files = children
    related = MIMEMultipart("related")
    related.attach(alternative)
    for part in files:
        if part["Content-ID"] is not None:
            related.attach(part)
    tree.set_payload([related, *(part for part in files if part["Content-ID"] is None)])
    return tree.as_bytes()
