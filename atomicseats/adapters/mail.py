"""Mailers: SMTP with Flask-Mail's settings (full mode), or a log line (embedded default without SMTP).

`send_all` takes a batch and returns one result per message: None when the SMTP server accepted
it (250 after DATA), else the error; a message left unattempted at the deadline gets
`MailNotAttempted`. It never raises: the outbox records each result (sent, or retried later).
"""

from __future__ import annotations

import logging
import math
import smtplib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from flask import current_app

from atomicseats.adapters import mime
from atomicseats.domain import limits
from atomicseats.names import MAIL_KIND_HEADER
from atomicseats.services.contracts import MailMessage, MailNotAttempted

log = logging.getLogger(__name__)

SMTP_CLOSING = 421  # the server is closing the session: the next message needs a new one

MailResult = Exception | None


class FlaskMailMailer:
    """Sends over SMTP with the app's MAIL_* settings (Flask-Mail's: server, port, TLS, login, sender).

    A batch is built first (adapters/mime.py: the bytes Flask-Mail would write, without its
    per-message parsing), then sent over one SMTP session, or over up to `sessions` sessions in
    parallel threads for a big batch (MAIL_SMTP_SESSIONS; each carries at least
    MAIL_SMTP_MESSAGES_PER_SESSION_MIN messages: SMTP is one round trip per command, and the
    sessions overlap their waits). Against a server on the same machine one session is fastest
    (threads only add GIL hand-offs, and on a busy machine each costs a wait for the CPU); a
    relay across a network, where the round trips dominate, wants several. Within a session:
      - a message the server refuses (an SMTP reply: recipient refused, 4xx/5xx after DATA) is
        that message's error and the session goes on (smtplib resets the transaction);
      - a connection that breaks mid-message loses only that message: a new session is opened
        and it is sent again (the server never accepted it: no 250 came back); if no new
        session can be had, it and the rest of that session's messages get the error.
    """

    def __init__(self, timeout_s: float = limits.MAIL_SMTP_TIMEOUT_S, sessions: int = 1) -> None:
        assert timeout_s > 0
        assert 1 <= sessions <= limits.MAIL_SMTP_SESSIONS_MAX
        self.timeout_s = timeout_s
        self.sessions = sessions
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def send(self, message: MailMessage) -> None:
        """One message on a session of its own; raise if it was not accepted."""
        (result,) = self.send_all([message], time.monotonic() + limits.OUTBOX_SEND_BATCH_S_MAX)
        if result is not None:
            raise result

    def send_all(self, messages: Sequence[MailMessage], deadline: float) -> list[MailResult]:
        state = current_app.extensions["mail"]
        sender = state.default_sender
        envelope_from = mime.envelope_sender(sender)
        results: list[MailResult] = [None] * len(messages)
        prepared: list[tuple[int, str, bytes]] = []
        now = time.time()
        for index, message in enumerate(messages):
            try:
                prepared.append((index, message.recipient, mime.message_bytes(message, sender, now)))
            except Exception as error:  # a message that cannot be built fails alone
                results[index] = error
        sessions = min(self.sessions, math.ceil(len(prepared) / limits.MAIL_SMTP_MESSAGES_PER_SESSION_MIN))
        if sessions <= 1:
            _Session(state, self.timeout_s, envelope_from).deliver(prepared, results, deadline)
            return results
        size = math.ceil(len(prepared) / sessions)
        chunks = [prepared[start : start + size] for start in range(0, len(prepared), size)]
        pool = self._executor()
        futures = [
            pool.submit(_Session(state, self.timeout_s, envelope_from).deliver, chunk, results, deadline)
            for chunk in chunks
        ]
        for future in futures:
            future.result()
        return results

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.sessions, thread_name_prefix="smtp")
            return self._pool


class _Session:
    """One SMTP session, opened on the first message and reopened once after a broken connection."""

    def __init__(self, state, timeout_s: float, envelope_from: str) -> None:
        self.state = state
        self.timeout_s = timeout_s
        self.envelope_from = envelope_from
        self.host: smtplib.SMTP | None = None

    def deliver(self, prepared: list[tuple[int, str, bytes]], results: list[MailResult], deadline: float) -> None:
        try:
            for position, (index, recipient, data) in enumerate(prepared):
                if time.monotonic() > deadline:  # the rest goes back to the outbox for the next run
                    for later, _, _ in prepared[position:]:
                        results[later] = MailNotAttempted("the batch's deadline passed")
                    return
                error, unreachable = self._send(recipient, data, deadline)
                results[index] = error
                if unreachable:  # no session to be had: the rest waits for its retry too
                    for later, _, _ in prepared[position + 1 :]:
                        results[later] = error
                    return
        finally:
            self._close()

    def _send(self, recipient: str, data: bytes, deadline: float) -> tuple[MailResult, bool]:
        """(None, False) once the server accepted the message; else (the error, whether the
        server is unreachable)."""
        for attempt in (1, 2):
            try:
                host = self._open()
            except (smtplib.SMTPException, OSError) as unreachable:
                return unreachable, True
            try:
                host.sendmail(self.envelope_from, [recipient], data)
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as refused:
                if getattr(refused, "smtp_code", None) == SMTP_CLOSING:
                    self._close()
                return refused, False  # the server answered: this message alone, the session goes on
            except (smtplib.SMTPException, OSError) as broken:
                self._close()
                if attempt == 2 or time.monotonic() > deadline:
                    return broken, True
                # No 250 came back for this message: the server did not take it. Again, on a new session.
                log.warning("mail.session.broken", extra={"error": type(broken).__name__})
            else:
                return None, False
        raise AssertionError("unreachable")

    def _open(self) -> smtplib.SMTP:
        if self.host is None:
            self.host = _connect(self.state, self.timeout_s)
        return self.host

    def _close(self) -> None:
        """QUIT, or drop the socket: a failed QUIT after the server accepted the messages is
        not a failed delivery."""
        host, self.host = self.host, None
        if host is None:
            return
        try:
            host.quit()
        except (smtplib.SMTPException, OSError) as error:
            host.close()
            log.debug("mail.quit.failed", extra={"error": type(error).__name__})


def _connect(state, timeout_s: float) -> smtplib.SMTP:
    """As Flask-Mail connects, with a socket timeout (it passes none: a silent server would
    block the sender forever, and past its lease on the rows it claimed)."""
    host: smtplib.SMTP
    if state.use_ssl:
        host = smtplib.SMTP_SSL(state.server, state.port, timeout=timeout_s)
    else:
        host = smtplib.SMTP(state.server, state.port, timeout=timeout_s)
    try:
        host.set_debuglevel(int(state.debug))
        if state.use_tls:
            host.starttls()
        if state.username and state.password:
            host.login(state.username, state.password)
    except BaseException:
        host.close()
        raise
    return host


class LoggingMailer:
    """The embedded default when no SMTP server is configured: the outbox runs as in full
    mode, and each e-mail leaves one log line (kind and Message-ID; never body or address)."""

    def send_all(self, messages: Sequence[MailMessage], deadline: float) -> list[MailResult]:
        for message in messages:
            self.send(message)
        return [None] * len(messages)

    def send(self, message: MailMessage) -> None:
        log.info(
            "mail.suppressed", extra={"kind": message.headers.get(MAIL_KIND_HEADER), "message_id": message.message_id}
        )
