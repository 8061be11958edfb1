"""Mailers: SMTP with Flask-Mail's settings (full mode), or a log line (embedded default without SMTP).

`send_all` takes a batch and returns one result per message: None when the SMTP server accepted
it (250 after DATA), else the error; a message left unattempted at the deadline gets
`MailNotAttempted`. It never raises: the outbox records each result (sent, or retried later).
Meanwhile it reports what was accepted so far to `on_accepted`, if given, at most every
MAIL_ACCEPTED_REPORT_S, in the caller's thread: the outbox records those as it goes.
"""

from __future__ import annotations

import logging
import math
import re
import smtplib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

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

    def send_all(
        self,
        messages: Sequence[MailMessage],
        deadline: float,
        on_accepted: Callable[[list[int]], None] | None = None,
    ) -> list[MailResult]:
        state = current_app.extensions["mail"]
        accepted = _AcceptedReport(on_accepted)
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
            _Session(state, self.timeout_s, envelope_from, accepted).deliver(prepared, results, deadline)
            accepted.report_now()
            return results
        size = math.ceil(len(prepared) / sessions)
        chunks = [prepared[start : start + size] for start in range(0, len(prepared), size)]
        pool = self._executor()
        futures = [
            pool.submit(_Session(state, self.timeout_s, envelope_from, accepted).deliver, chunk, results, deadline)
            for chunk in chunks
        ]
        while wait(futures, timeout=max(limits.MAIL_ACCEPTED_REPORT_S, 0.01), return_when=FIRST_EXCEPTION).not_done:
            accepted.report_now()  # the sessions run in the pool: the caller's thread reports
        for future in futures:
            future.result()
        accepted.report_now()
        return results

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.sessions, thread_name_prefix="smtp")
            return self._pool


class _AcceptedReport:
    """The positions accepted since the last report, handed to `on_accepted` in the caller's
    thread (the outbox records them in its database session there): by a session running in
    that thread once MAIL_ACCEPTED_REPORT_S have passed, by the caller between its waits
    when the sessions run in the pool, and at the end."""

    def __init__(self, on_accepted: Callable[[list[int]], None] | None) -> None:
        self.on_accepted = on_accepted
        self.caller = threading.get_ident()
        self.lock = threading.Lock()
        self.positions: list[int] = []
        self.report_at = time.monotonic() + limits.MAIL_ACCEPTED_REPORT_S

    def accept(self, position: int) -> None:
        if self.on_accepted is None:
            return
        with self.lock:
            self.positions.append(position)
        if threading.get_ident() == self.caller and time.monotonic() >= self.report_at:
            self.report_now()

    def report_now(self) -> None:
        if self.on_accepted is None:
            return
        assert threading.get_ident() == self.caller
        with self.lock:
            positions, self.positions = self.positions, []
        self.report_at = time.monotonic() + limits.MAIL_ACCEPTED_REPORT_S
        if positions:
            self.on_accepted(positions)


class _Session:
    """One SMTP session, opened on the first message and reopened after a broken connection.

    A server that advertises PIPELINING (RFC 2920; every production relay does) gets one write
    and one wait per message: a message's content goes out with the next message's MAIL, RCPT
    and DATA, and the four replies are read together. Otherwise each message is smtplib's
    `sendmail`: four round trips."""

    def __init__(self, state, timeout_s: float, envelope_from: str, accepted: _AcceptedReport) -> None:
        self.state = state
        self.timeout_s = timeout_s
        self.envelope_from = envelope_from
        self.accepted = accepted
        self.host: smtplib.SMTP | None = None

    def deliver(self, prepared: list[tuple[int, str, bytes]], results: list[MailResult], deadline: float) -> None:
        try:
            if prepared and time.monotonic() <= deadline:
                try:
                    pipelining = self._open().has_extn("pipelining")
                except (smtplib.SMTPException, OSError) as unreachable:
                    for index, _, _ in prepared:
                        results[index] = unreachable
                    return
                if pipelining:
                    self._deliver_pipelined(deque(prepared), results, deadline)
                    return
            self._deliver_one_by_one(prepared, results, deadline)
        finally:
            self._close()

    def _deliver_one_by_one(
        self, prepared: list[tuple[int, str, bytes]], results: list[MailResult], deadline: float
    ) -> None:
        for position, (index, recipient, data) in enumerate(prepared):
            if time.monotonic() > deadline:  # the rest goes back to the outbox for the next run
                for later, _, _ in prepared[position:]:
                    results[later] = MailNotAttempted("the batch's deadline passed")
                return
            error, unreachable = self._send(recipient, data, deadline)
            results[index] = error
            if error is None:
                self.accepted.accept(index)
            if unreachable:  # no session to be had: the rest waits for its retry too
                for later, _, _ in prepared[position + 1 :]:
                    results[later] = error
                return

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

    def _deliver_pipelined(
        self, queue: deque[tuple[int, str, bytes]], results: list[MailResult], deadline: float
    ) -> None:
        """As `_deliver_one_by_one`, pipelined. The messages still in `queue` have no result yet.
        A broken connection sends them again on a new session (the server accepted none of
        them: no 250 came back); a second break in a row with no result in between, or no new
        session, gives them the error (the outbox retries them later)."""
        has_broken = False
        while queue:
            try:
                host = self._open()
            except (smtplib.SMTPException, OSError) as unreachable:
                error: Exception = unreachable
                break
            waiting = len(queue)
            try:
                self._pipeline(host, queue, results, deadline)
            except (smtplib.SMTPException, OSError) as broken:
                self._close()
                if (has_broken and len(queue) == waiting) or time.monotonic() > deadline:
                    error = broken
                    break
                has_broken = True
                log.warning("mail.session.broken", extra={"error": type(broken).__name__})
                continue
            if time.monotonic() > deadline:  # the rest goes back to the outbox for the next run
                error = MailNotAttempted("the batch's deadline passed")
                break
            self._close()  # the server is closing the session (421): the rest on a new one
        else:
            return
        for index, _, _ in queue:
            results[index] = error

    def _pipeline(
        self, host: smtplib.SMTP, queue: deque[tuple[int, str, bytes]], results: list[MailResult], deadline: float
    ) -> None:
        """Send `queue`'s messages over `host`, each write the previous message's content and the
        next one's envelope, taking each message off the queue with its result. Returns when the
        queue is empty, the deadline has passed or the server closes the session (421); raises
        if the connection breaks."""
        mail_from = f"mail FROM:{_quote_address(self.envelope_from)}"
        size_option = host.has_extn("size")
        content: bytes | None = None  # queue[0]'s content, sent with the next write
        needs_reset = False  # a refused transaction is reset before the next MAIL
        while True:
            ahead = 1 if content is not None else 0
            envelope = b""
            if len(queue) > ahead and time.monotonic() <= deadline:
                index, recipient, data = queue[ahead]
                options = f" size={len(data)}" if size_option else ""
                try:
                    envelope = f"{mail_from}{options}\r\nrcpt TO:{_quote_address(recipient)}\r\ndata\r\n".encode(
                        "ascii"
                    )
                except UnicodeEncodeError as unencodable:  # smtplib would refuse it too: this message alone
                    del queue[ahead]
                    results[index] = unencodable
                    continue
            if content is None and not envelope:
                return
            host.send(b"".join((content or b"", b"rset\r\n" if needs_reset else b"", envelope)))
            if content is not None:
                code, reply = host.getreply()
                index = queue.popleft()[0]
                if code == 250:
                    results[index] = None
                    self.accepted.accept(index)
                else:
                    results[index] = smtplib.SMTPDataError(code, reply)
                content = None
                if code == SMTP_CLOSING:
                    return
            if needs_reset:
                if host.getreply()[0] == SMTP_CLOSING:
                    return
                needs_reset = False
            if not envelope:
                return
            index, recipient, data = queue[0]
            replies: list[tuple[int, bytes]] = []
            for _ in range(3):  # MAIL, RCPT, DATA
                replies.append(host.getreply())
                if replies[-1][0] == SMTP_CLOSING:
                    break
            refused = _envelope_error(replies, self.envelope_from, recipient)
            if refused is None:
                content = _data_lines(data)
                continue
            queue.popleft()
            results[index] = refused
            if replies[-1][0] == SMTP_CLOSING:
                return
            needs_reset = True

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


_SIMPLE_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9.-]+")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _quote_address(address: str) -> str:
    """smtplib's quoteaddr, without its parse for a plain dot-atom address (the usual one)."""
    if _SIMPLE_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _data_lines(data: bytes) -> bytes:
    """A message's content as smtplib's `data` sends it: leading dots doubled, ending CRLF . CRLF."""
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _envelope_error(replies: list[tuple[int, bytes]], sender: str, recipient: str) -> smtplib.SMTPException | None:
    """None when MAIL, RCPT and DATA were taken (354: send the content); else the error smtplib's
    `sendmail` raises for the first refusal."""
    mail, rcpt, data = (replies + [(SMTP_CLOSING, b"")] * 3)[:3]
    if mail[0] != 250:
        return smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt[0] not in (250, 251):
        return smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if data[0] != 354:
        return smtplib.SMTPDataError(data[0], data[1])
    return None


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
        host.ehlo_or_helo_if_needed()  # the server's extensions (PIPELINING) are known before the first message
    except BaseException:
        host.close()
        raise
    return host


class LoggingMailer:
    """The embedded default when no SMTP server is configured: the outbox runs as in full
    mode, and each e-mail leaves one log line (kind and Message-ID; never body or address)."""

    def send_all(
        self,
        messages: Sequence[MailMessage],
        deadline: float,
        on_accepted: Callable[[list[int]], None] | None = None,
    ) -> list[MailResult]:
        for message in messages:
            self.send(message)
        return [None] * len(messages)

    def send(self, message: MailMessage) -> None:
        log.info(
            "mail.suppressed", extra={"kind": message.headers.get(MAIL_KIND_HEADER), "message_id": message.message_id}
        )
