#!/usr/bin/env python3
"""A tiny SMTP sink for development and tests.

Accepts every message (no auth, no TLS, no relaying) and stores each one as an
``.eml`` file in a directory.  The stored file is the raw message exactly as
received, preceded by three trace headers (the same names aiosmtpd's own
``Message`` handler uses) so tests can check the envelope too::

    X-Peer: 127.0.0.1
    X-MailFrom: sender@example.com
    X-RcptTo: a@example.com, b@example.com

Files are written to a temporary name and renamed into place, so a reader that
lists ``*.eml`` never sees a half-written message.  Names sort in arrival order:
``<unix-ns>-<seq>.eml``.  With ``--discard`` nothing is stored, only counted (a benchmark's
sink: it writes the count to ``--count-file`` when it stops).

It advertises PIPELINING (RFC 2920), as production relays do: aiosmtpd reads commands from
a buffered stream one at a time, so a client may send a message's content and the next
message's MAIL, RCPT and DATA in one write. Nothing is logged per message (at DEBUG only).

Command line (used by scripts/services.sh)::

    python scripts/smtp_sink.py --host 127.0.0.1 --port 58025 --dir .run/dev/smtp/messages [--discard]

In-process use (e.g. from a pytest fixture)::

    from smtp_sink import start_sink
    controller = start_sink("127.0.0.1", 0, tmp_path)   # port 0: pick a free one
    ... controller.port ...
    controller.stop()

Only the standard library and aiosmtpd are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("smtp_sink")

# Big enough for any notification we send, small enough to stop a runaway client.
DATA_SIZE_LIMIT = 32 * 1024 * 1024


class SinkHandler:
    """aiosmtpd handler that writes every accepted message to ``directory``.

    For tests of a client's failure handling (in-process use only), it can misbehave on purpose:
    ``refuse_rcpt`` (addresses answered ``550`` at RCPT TO) and ``drop_data`` (how many more
    messages to drop: the connection is cut when their data ends, before any reply, and
    nothing is stored). ``sessions`` counts the SMTP connections it accepted, ``count`` the
    messages it accepted; ``store=False`` accepts and counts without writing anything;
    ``pipelining=False`` stops advertising PIPELINING (a server without it)."""

    def __init__(self, directory: str | os.PathLike[str], store: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.pipelining = True
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.count = 0
        self.sessions = 0
        self.refuse_rcpt: set[str] = set()
        self.drop_data = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return "550 5.1.1 Mailbox unavailable (refused on purpose by the sink)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.drop_data > 0:
            self.drop_data -= 1
            server.transport.abort()  # the connection breaks before the reply: the message is not taken
            return "451 4.3.0 Dropped on purpose by the sink"
        if not self.store:
            self.count += 1  # one event loop: no lock needed, nor taken
            return "250 Message accepted for delivery"
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):  # only if someone builds us with decode_data=True
            content = content.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        mail_from = envelope.mail_from or ""
        rcpts = ", ".join(envelope.rcpt_tos)
        trace = (f"X-Peer: {peer}\r\nX-MailFrom: {mail_from}\r\nX-RcptTo: {rcpts}\r\n").encode(
            "utf-8", "surrogateescape"
        )
        path = self.save(trace + content)
        log.debug("stored %s (%d bytes)", path.name, len(content))
        return "250 Message accepted for delivery"

    def save(self, data: bytes) -> Path:
        with self._lock:
            seq = next(self._seq)
            self.count += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{seq:06d}.eml"
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        # No fsync: the rename alone keeps readers from half-written files, and a sink need not
        # outlive a machine crash (an fsync each would cap it at a few hundred messages/s).
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
        return final


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


class _SinkSMTP(SMTP):
    """SMTP server with a fixed, recognisable greeting, whose replies to pipelined commands go
    out together (RFC 2920 lets a server hold them while more commands wait): a pipelining
    client's message costs one write, not one per command (each a system call, most of the
    sink's CPU)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._replies: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.event_handler.sessions += 1
        super().connection_made(transport)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd 1.4's parse of a MAIL or RCPT path declares a typing.Protocol class on every
        call (a third of those commands' CPU here): a plain `<local@domain>` path, which parses
        to itself, is taken as it is; anything else goes to aiosmtpd."""
        match = _PLAIN_PATH.match(arg) if arg else None
        rest = arg[match.end() :].lstrip(" \t") if match else ""
        if (
            match is None
            or rest.startswith("(")
            or (self.local_part_limit and len(match.group(1)) > self.local_part_limit)
        ):
            return super()._getaddr(arg)  # type: ignore[no-any-return]
        return f"{match.group(1)}@{match.group(2)}", rest

    async def push(self, status: str | bytes) -> None:
        response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") if isinstance(status, str) else status
        self._replies.append(response + b"\r\n")
        # aiosmtpd itself reads its reader's buffer (after STARTTLS): a whole line there is the
        # next command, answered without waiting for the network, so this reply goes with its.
        if b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            return
        replies, self._replies = b"".join(self._replies), []
        self._writer.write(replies)
        await self._writer.drain()


def _make_server(handler: SinkHandler, hostname: str) -> SMTP:
    return _SinkSMTP(
        handler,
        data_size_limit=DATA_SIZE_LIMIT,
        enable_SMTPUTF8=True,
        decode_data=False,
        hostname=hostname,
        ident="AtomicSeats SMTP sink",
    )


async def serve(
    host: str,
    port: int,
    directory: str | os.PathLike[str],
    ready_file: str | None = None,
    store: bool = True,
    count_file: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation); then write the messages accepted to `count_file`."""
    handler = SinkHandler(directory, store=store)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _make_server(handler, "smtp-sink"), host=host, port=port)
    bound = server.sockets[0].getsockname()
    log.info("SMTP sink listening on %s:%s, storing messages in %s", bound[0], bound[1], handler.directory)
    if ready_file:
        Path(ready_file).write_text(f"{bound[1]}\n")

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        log.info("SMTP sink stopped after %d message(s)", handler.count)
        if count_file:
            Path(count_file).write_text(f"{handler.count}\n")


class SinkController:
    """Runs the sink on a background thread; for use inside a test process."""

    def __init__(self, host: str, port: int, directory: str | os.PathLike[str]) -> None:
        self.host = host
        self.requested_port = port
        self.handler = SinkHandler(directory)
        self.directory = self.handler.directory
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> SinkController:
        self._thread = threading.Thread(target=self._run, name="smtp-sink", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("SMTP sink did not start in time")
        if self._error is not None:
            raise RuntimeError(f"SMTP sink failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                loop.create_server(
                    lambda: _make_server(self.handler, "smtp-sink"), host=self.host, port=self.requested_port
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def messages(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> SinkController:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sink(host: str, port: int, directory: str | os.PathLike[str]) -> SinkController:
    """Start a sink on a background thread and return its controller (``.port``, ``.stop()``)."""
    return SinkController(host, port, directory).start()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SMTP sink: store every received message as an .eml file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="port to listen on (0 = any free port)")
    parser.add_argument("--dir", required=True, help="directory to store .eml files in (created if missing)")
    parser.add_argument("--ready-file", help="write the bound port to this file once listening")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    parser.add_argument("--discard", action="store_true", help="store nothing, only count (a benchmark's sink)")
    parser.add_argument("--count-file", help="write how many messages were accepted to this file when stopping")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    # aiosmtpd logs every SMTP command at INFO under "mail.log": too chatty for a sink.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    if args.port and not _port_free(args.host, args.port):
        log.error("port %s:%s is already in use", args.host, args.port)
        return 2
    try:
        asyncio.run(serve(args.host, args.port, args.dir, args.ready_file, not args.discard, args.count_file))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
