"""Mailers: Flask-Mail over SMTP (full mode), or a log line (embedded default without SMTP).

The outbox sender calls `send` once per message and retries on any exception, so a
mailer either delivers (the SMTP server accepted the message) or raises.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import threading
from collections.abc import Iterator

import flask_mail
from flask import current_app

from atomicseats.domain import limits
from atomicseats.names import MAIL_KIND_HEADER
from atomicseats.services.contracts import MailMessage

log = logging.getLogger(__name__)


class FlaskMailMailer:
    """Sends through Flask-Mail with the app's MAIL_* settings.

    Inside `batch()` one SMTP session carries every message (a flash sale sends thousands);
    outside it, each message gets its own session. After any failure the session is dropped
    and the next message opens a fresh one.

    Flask-Mail 0.10 writes `Message-ID: <make_msgid()>` itself and then *adds* each extra
    header (email.message assignment appends, it never replaces), so a Message-ID passed in
    `extra_headers` would go out as a second header beside the random one. Setting the
    message's `msgId` replaces the random one instead: the stable id is the only one sent.
    """

    def __init__(self, timeout_s: float = limits.MAIL_SMTP_TIMEOUT_S) -> None:
        assert timeout_s > 0
        self.timeout_s = timeout_s
        self._local = threading.local()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self._local.is_batching = True
        try:
            yield
        finally:
            self._local.is_batching = False
            self._close_session()

    def send(self, message: MailMessage) -> None:
        extra_headers = {name: value for name, value in message.headers.items() if name.lower() != "message-id"}
        mail_message = flask_mail.Message(
            subject=message.subject,
            recipients=[message.recipient],
            body=message.body_text,
            html=message.body_html,
            extra_headers=extra_headers,
        )
        mail_message.msgId = message.message_id
        if not getattr(self._local, "is_batching", False):
            with _BoundedConnection(current_app.extensions["mail"], self.timeout_s) as connection:
                connection.send(mail_message)
            return
        try:
            self._session().send(mail_message)
        except BaseException:
            self._close_session()
            raise

    def _session(self) -> _BoundedConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = _BoundedConnection(current_app.extensions["mail"], self.timeout_s)
            connection.__enter__()
            self._local.connection = connection
        return connection

    def _close_session(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.__exit__(None, None, None)


class _BoundedConnection(flask_mail.Connection):
    """Flask-Mail's connection with a socket timeout: it passes none, so a silent server would
    block the sender forever (and past its lease on the rows it claimed)."""

    def __init__(self, state, timeout_s: float) -> None:
        super().__init__(state)
        self.timeout_s = timeout_s

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        host: smtplib.SMTP
        if state.use_ssl:
            host = smtplib.SMTP_SSL(state.server, state.port, timeout=self.timeout_s)
        else:
            host = smtplib.SMTP(state.server, state.port, timeout=self.timeout_s)
        host.set_debuglevel(int(state.debug))
        if state.use_tls:
            host.starttls()
        if state.username and state.password:
            host.login(state.username, state.password)
        return host

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        """A failed QUIT after the server accepted the message is not a failed delivery:
        raising here would make the outbox send it again."""
        if self.host is None:
            return
        try:
            self.host.quit()
        except (smtplib.SMTPException, OSError) as error:
            self.host.close()
            if exc_type is None:
                log.warning("mail.quit.failed", extra={"error": type(error).__name__})


class LoggingMailer:
    """The embedded default when no SMTP server is configured: the outbox runs as in full
    mode, and each e-mail leaves one log line (kind and Message-ID; never body or address)."""

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def send(self, message: MailMessage) -> None:
        log.info(
            "mail.suppressed", extra={"kind": message.headers.get(MAIL_KIND_HEADER), "message_id": message.message_id}
        )
