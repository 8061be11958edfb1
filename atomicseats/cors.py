"""Cross-origin access to the JSON API (CORS), through flask-cors, for the web origins in
CORS_ALLOWED_ORIGINS (config.py checks them at start-up). None configured, the default: the
extension is not even registered, so no response carries a CORS header.

- Only `/api/...`: the pages (session cookie, CSRF-protected forms) never answer another origin.
- Never credentials (no `Access-Control-Allow-Credentials`): a page of another origin cannot use
  a buyer's cookies, so cookie auth stays same-origin and its CSRF defence is not widened. A
  cross-origin client sends `Authorization: Bearer …`, which it must hold itself.
- A preflight (OPTIONS) is answered by Flask's automatic OPTIONS response before any view runs:
  no token check, no rate limit (both are on the views), one metrics label per route as ever.
- Error answers (401, 429, 503) carry the headers too (flask-cors wraps the error handlers), so
  the client can read the error and its `Retry-After`.
"""

from __future__ import annotations

import re

from flask import Flask
from flask_cors import CORS
from flask_limiter.constants import ConfigVars, HeaderNames

from atomicseats.names import CORRELATION_HEADER, IDEMPOTENCY_HEADER
from config import CORS_ANY_ORIGIN

API_PATHS = r"/api/.*"
# How long a browser may reuse a preflight's answer: Chromium's ceiling (Firefox allows 24 h).
# Dropping an origin still takes effect at once: its responses lose Access-Control-Allow-Origin.
PREFLIGHT_MAX_AGE_S = 7200
REQUEST_HEADERS = ("Authorization", "Content-Type", IDEMPOTENCY_HEADER, CORRELATION_HEADER)
_NOT_ASKED_FOR = frozenset({"HEAD", "OPTIONS"})  # HEAD is always allowed; OPTIONS is the preflight itself


def register_cors(app: Flask) -> None:
    """After the blueprints (the methods come from their routes) and the limiter's settings."""
    origins = app.config.get("CORS_ALLOWED_ORIGINS") or ()
    if not origins:
        return
    CORS(
        app,
        resources=API_PATHS,
        origins=_origin_patterns(origins),
        send_wildcard=origins == (CORS_ANY_ORIGIN,),
        methods=api_methods(app),
        allow_headers=list(REQUEST_HEADERS),
        expose_headers=exposed_headers(app),
        supports_credentials=False,
        max_age=PREFLIGHT_MAX_AGE_S,
        # Without an Origin header a request is not a CORS request: nothing to add (flask-cors
        # would otherwise list every allowed origin to any caller).
        always_send=False,
    )


def _origin_patterns(origins: tuple[str, ...]) -> str | list[re.Pattern[str]]:
    """Exact matches (an IPv6 origin's brackets are not a character class). As patterns,
    flask-cors also answers `Vary: Origin` alongside each Access-Control-Allow-Origin."""
    if origins == (CORS_ANY_ORIGIN,):
        return CORS_ANY_ORIGIN
    return [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]


def api_methods(app: Flask) -> list[str]:
    """The methods the JSON API's routes answer: what a preflight may ask for."""
    methods: set[str] = set()
    for rule in app.url_map.iter_rules():
        if re.match(API_PATHS, rule.rule):
            methods |= set(rule.methods or ()) - _NOT_ASKED_FOR
    return sorted(methods)


def exposed_headers(app: Flask) -> list[str]:
    """Response headers a cross-origin script may read, beyond the CORS-safelisted ones: the
    correlation id, Retry-After (429, 503), and Flask-Limiter's headers when it sends them (under
    the names it is configured with)."""
    headers = [CORRELATION_HEADER, HeaderNames.RETRY_AFTER.value]
    if app.config.get(ConfigVars.HEADERS_ENABLED):
        headers += [
            app.config.get(ConfigVars.HEADER_LIMIT, HeaderNames.LIMIT.value),
            app.config.get(ConfigVars.HEADER_REMAINING, HeaderNames.REMAINING.value),
            app.config.get(ConfigVars.HEADER_RESET, HeaderNames.RESET.value),
            app.config.get(ConfigVars.HEADER_RETRY_AFTER, HeaderNames.RETRY_AFTER.value),
        ]
    return sorted(set(headers))
