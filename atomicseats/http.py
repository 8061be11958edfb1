"""The HTTP edge: envelope, correlation ids, and the only place errors become responses."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, jsonify, make_response, render_template_string, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from atomicseats.errors import AtomicSeatsError, code_for_status
from atomicseats.names import CORRELATION_HEADER
from atomicseats.observability import (
    accept_correlation_id,
    get_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import release_session, service_busy_for

log = logging.getLogger("atomicseats.http")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_ERROR_PAGE = """<!doctype html><title>{{ status }} · AtomicSeats</title>
<main style="font-family:system-ui;max-width:40rem;margin:4rem auto">
<h1>{{ status }}</h1><p>{{ message }}</p><p><a href="/">Back to events</a></p>
<p style="color:#777;font-size:.8rem">Reference: {{ correlation_id }}</p></main>"""


class CookieSessionOnDemand(SecureCookieSessionInterface):
    """Flask's signed-cookie session, without building its signer for a request that carries
    no session cookie (every JSON API call: those authenticate with bearer tokens). Such a
    request gets a fresh empty session, as Flask would give it after failing to find one,
    and a session nobody touched is not saved (Flask would only compute its cookie's
    attributes to find there is nothing to do)."""

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response) -> None:
        if not (session or session.modified or session.accessed):
            return  # nothing to write, nothing to delete, no Vary: Cookie to add
        super().save_session(app, session, response)


def envelope(status: int, data, message: str, headers: dict | None = None):
    response = jsonify({"statusCode": status, "data": data, "message": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(
    status: int, message: str, errors: dict | None = None, headers: dict | None = None, code: str | None = None
):
    """The error envelope `{statusCode, code, message, errors}` (a page for a browser); `code`
    from errors.ERROR_CODES, by default the one of the status."""
    if request.path.startswith("/api") or request.accept_mimetypes.best == "application/json":
        body = {"statusCode": status, "code": code or code_for_status(status), "message": message}
        response = jsonify({**body, "errors": errors or {}})
    else:
        html = render_template_string(_ERROR_PAGE, status=status, message=message, correlation_id=get_correlation_id())
        response = make_response(html)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


SECURITY_STATUSES = frozenset({401, 403, 429})


def access_log_level(status: int) -> int:
    """One line per request is ~6,000 lines/s in an on-sale: a request that went well (or a
    plain 4xx) is DEBUG; a refusal that may be an attack (401, 403, 429) is INFO; a 5xx is an
    error of ours, WARNING (its exception, if any, is logged at ERROR where it was raised)."""
    if status >= 500:
        return logging.WARNING
    if status in SECURITY_STATUSES:
        return logging.INFO
    return logging.DEBUG


# What every answer carries (pages add theirs: web.SECURITY_HEADERS) unless its route said
# otherwise: (lower-case name, name, value).
_EDGE_HEADERS = (
    ("x-content-type-options", "X-Content-Type-Options", "nosniff"),
    ("referrer-policy", "Referrer-Policy", "same-origin"),
)
_API_EDGE_HEADERS = (*_EDGE_HEADERS, ("cache-control", "Cache-Control", "no-store"))  # API answers: not cached


def _add_edge_headers(response, is_api: bool) -> None:
    """The correlation id (ours wins) and the defaults of `_EDGE_HEADERS` (the route's win), in
    one look at the headers the route set. Werkzeug's `setdefault` raises and catches a
    BadRequestKeyError for each header that is missing: ~3 % of the instructions a booking runs."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    headers.set(CORRELATION_HEADER, get_correlation_id() or "")
    for key, name, value in _API_EDGE_HEADERS if is_api else _EDGE_HEADERS:
        if key not in present:
            headers.add(name, value)


def register_request_hooks(app: Flask) -> None:
    @app.before_request
    def _start_request():
        g.correlation_token = set_correlation_id(accept_correlation_id(request.headers.get(CORRELATION_HEADER)))
        g.started_at = time.perf_counter()

    @app.after_request
    def _finish_request(response):
        _add_edge_headers(response, request.path.startswith("/api"))
        elapsed_s = time.perf_counter() - g.get("started_at", time.perf_counter())
        # The route's rule, not its path: one label value per route, whatever the ids in it.
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        method = request.method if request.method in _METHODS else "other"  # a client may send any token
        adapters().metrics.http_request(route, method, response.status_code, elapsed_s)
        level = access_log_level(response.status_code)
        if log.isEnabledFor(level):
            log.log(
                level,
                "http.request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed_s * 1000, 2),
                },
            )
        return response

    @app.teardown_request
    def _end_request(_error):
        token = g.pop("correlation_token", None)
        if token is not None:
            reset_correlation_id(token)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AtomicSeatsError)
    def _domain_error(error: AtomicSeatsError):
        return error_response(error.status, error.message, error.errors, error.headers, error.code)

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError):
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        return error_response(400, "Invalid input", messages)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        message = _HTTP_MESSAGES.get(status, error.description or error.name)
        valid_methods = getattr(error, "valid_methods", None)  # a 405 (MethodNotAllowed) names them
        headers = {"Allow": ", ".join(valid_methods)} if valid_methods else None
        if status == 429:
            headers = {"Retry-After": error.get_response().headers.get("Retry-After", "60")}
        code = "malformed_request" if status == 400 else None  # a 400 of Werkzeug's: unreadable, not invalid
        return error_response(status, message, None, headers, code)

    @app.errorhandler(SQLAlchemyError)
    def _database_error(error: SQLAlchemyError):
        """A database error outside a unit of work (a read: the session check, a listing):
        down or recovering is a 503 with Retry-After like any busy answer; anything else is a bug.
        The session is rolled back now, so whatever uses it next (teardown removes it; a test
        or CLI context keeps it) starts on a fresh connection, not on the broken one."""
        busy = service_busy_for(error)
        if busy is None:
            return _unexpected(error)
        release_session()
        return _domain_error(busy)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("http.unhandled_error", extra={"path": request.path})
        return error_response(500, f"Internal error (reference {get_correlation_id()})")


_HTTP_MESSAGES = {
    400: "Malformed request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large (64 KiB at most)",
    415: "Request body must be JSON",
    429: "Too many requests, slow down",
}
