"""Pages for people: server-rendered HTML over the same services as the JSON API.

A view reads a form, calls one service function (the one the API calls), and renders a
template; rules live in the services and the domain, wording and layout here. Every page
carries the security headers below (one after_request for the blueprint); every form
that changes something carries a CSRF token (Flask-WTF); assets are served from
web/static (vendored libraries: static/vendor/README.md), never from a CDN.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from atomicseats.extensions import login_manager

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

# No inline script or style anywhere: every script and stylesheet is a file under /assets.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
# What pages carry besides what every answer does (http._EDGE_HEADERS: nosniff, the referrer policy).
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@bp.after_request
def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if response.mimetype == "text/html":
        # Pages show a signed-in person's data: never from a shared cache, nor the back button after logout.
        response.headers["Cache-Control"] = "no-store"
    return response


def register_web(app: Flask) -> None:
    from atomicseats.web import admin, guest, host, offers, present, sessions, tickets, views  # noqa: F401  (views, admin, guest, host, offers, tickets: the routes)

    sessions.install(login_manager)
    app.register_blueprint(bp)
    app.jinja_env.filters["money"] = present.money
    app.jinja_env.filters["when"] = present.when
    app.jinja_env.filters["iso"] = present.iso
    app.jinja_env.globals["ticket_qr"] = tickets.ticket_qr
    app.jinja_env.filters["wait_words"] = present.wait_words
    app.jinja_env.filters["people_ahead_words"] = present.people_ahead_words
