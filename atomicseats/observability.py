"""Structured JSON logs with a correlation id that follows a booking across processes.

The API takes `X-Request-ID` or makes one; the Kafka adapter writes it into message
headers, the bridge restores it per message and Celery carries it in task headers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime

CORRELATION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_RESERVED_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "correlation_id",
}


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(candidate: str | None) -> str:
    """Use the caller's id if it is a sane token, else make one (never trust a header blindly)."""
    if candidate and CORRELATION_ID_PATTERN.match(candidate):
        return candidate
    return new_correlation_id()


def get_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None):
    return _correlation_id.set(value)


def reset_correlation_id(token) -> None:
    _correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, correlation_id, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED_RECORD_KEYS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: anything a terminal
# or a line-oriented log reader may take as a new line or a control sequence.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(value: object) -> str:
    """`value` as text on one line: each control character written as a Python-style escape."""
    return _CONTROL_CHARACTERS.sub(lambda match: repr(match.group())[1:-1], str(value))


class TextFormatter(logging.Formatter):
    """Readable lines for a developer's terminal, same fields. Whatever came from outside
    (paths, headers, user text) is escaped, so one record is always one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in _RESERVED_RECORD_KEYS and not key.startswith("_")
        }
        rendered = " ".join(f"{key}={escape_controls(value)}" for key, value in fields.items())
        correlation_id = escape_controls(getattr(record, "correlation_id", None) or "-")
        message = escape_controls(record.getMessage())
        text = f"{record.levelname:<7} {message} [{correlation_id}] {rendered}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _install_record_factory() -> None:
    """Stamp every log record with the correlation id current where it was made."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_stamps_correlation_id", False):
        return

    def make_record(*args, **kwargs):
        record = factory(*args, **kwargs)
        record.correlation_id = _correlation_id.get()
        return record

    # A marker on the function object (functions take attributes; mypy does not know this one).
    make_record._stamps_correlation_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def configure_logging(level: str, as_json: bool, debug_loggers: Sequence[str] = ()) -> None:
    """One handler on the root logger at `level`; the loggers named in `debug_loggers` (and
    their children) log DEBUG too, e.g. `atomicseats.http` for every request line while the
    rest stays at INFO (LOG_DEBUG; README "Logs")."""
    _install_record_factory()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_atomicseats", False):
            root.removeHandler(existing)
    # A marker on the handler, so a second configure_logging replaces ours and no other.
    handler._atomicseats = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("werkzeug").setLevel("WARNING")
    for name in _debug_loggers - set(debug_loggers):  # a second configuration drops the first's
        logging.getLogger(name).setLevel(logging.NOTSET)
    for name in debug_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    _debug_loggers.clear()
    _debug_loggers.update(debug_loggers)


_debug_loggers: set[str] = set()


def log_with_correlation(
    logger: logging.Logger, event: str, correlation_id: str | None, level: int = logging.INFO, **fields
) -> None:
    """Log one line under another request's correlation id (batch workers, the bridge)."""
    if not logger.isEnabledFor(level):
        return
    token = _correlation_id.set(correlation_id)
    try:
        logger.log(level, event, extra=fields)
    finally:
        _correlation_id.reset(token)


READY_FILE_VARIABLE = "ATOMICSEATS_READY_FILE"


def announce_ready() -> None:
    """Tell a supervisor (scripts/platform.sh) this process is ready, whatever the log level."""
    import os

    path = os.environ.get(READY_FILE_VARIABLE)
    if path:
        with open(path, "w") as ready_file:
            ready_file.write(f"{os.getpid()}\n")
