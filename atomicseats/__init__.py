"""AtomicSeats: a ticket booking platform that never sells a seat twice.

`create_app` is the one composition root: the API, the CLI, the Celery worker and
the Kafka bridge all start from it.
"""

from __future__ import annotations

import sys

from flask import Flask

from config import load_config

LIMITER_HOOKS_KEY = "atomicseats.limiter_hooks"  # until the blueprints are registered


class AssertionsOff(RuntimeError):
    """Python runs with -O or PYTHONOPTIMIZE, which strips every assert."""


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    _refuse_optimized_python()
    from atomicseats.api import register_blueprints
    from atomicseats.auth import register_auth
    from atomicseats.cli import register_cli
    from atomicseats.cors import register_cors
    from atomicseats.http import CookieSessionOnDemand, register_error_handlers, register_request_hooks
    from atomicseats.observability import configure_logging
    from atomicseats.web import register_web
    from atomicseats.wiring import register_adapters

    app = Flask(__name__, instance_relative_config=False)
    app.session_interface = CookieSessionOnDemand()
    app.config.from_object(load_config(config_name))
    if overrides:
        app.config.update(overrides)
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_JSON"], app.config["LOG_DEBUG"])
    _trust_proxies(app)
    bind_extensions(app)
    register_auth(app)
    register_adapters(app)
    register_request_hooks(app)
    register_blueprints(app)
    register_web(app)
    register_cors(app)
    _check_limits_only_where_declared(app, app.extensions.pop(LIMITER_HOOKS_KEY))
    register_error_handlers(app)
    register_cli(app)
    return app


def _refuse_optimized_python() -> None:
    """The asserts are invariant checks (the allocator's, the services' bounds): a process
    that breaks one must stop, not carry on. `python -O` would strip them, so no process
    (API, bridge, worker, CLI) starts that way. (This is why bandit's B101 is skipped:
    pyproject.toml, [tool.bandit].)"""
    if sys.flags.optimize:
        raise AssertionsOff(
            "AtomicSeats does not run under python -O or PYTHONOPTIMIZE: its asserts check invariants; "
            "unset PYTHONOPTIMIZE and start it without -O"
        )


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXY_HOPS proxies, the client is the address the outermost of them
    saw (ProxyFix takes that many entries from the right of X-Forwarded-For, which a client
    cannot forge); with 0, forwarded headers are ignored and the socket's address counts."""
    hops = app.config.get("TRUSTED_PROXY_HOPS", 0)
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Werkzeug's documented way to wrap the app; Flask types wsgi_app as a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def _check_limits_only_where_declared(app: Flask, limiter_hooks: list) -> None:
    """Every rate limit here is declared on its route (`@limiter.limit`), and those
    decorators check their own limits. Flask-Limiter's global before_request hook would
    only filter an empty list of default limits on every request, the flash-sale hot
    path included, so it is unhooked; a default, application, meta or blueprint limit
    would need it (then it stays). `limiter_hooks`: the before_request functions the
    limiter's init_app added (none when RATELIMIT_ENABLED is off). Public API only: the
    limit manager's limits, the app's config and Flask's before_request_funcs."""
    from atomicseats.extensions import limiter

    manager = limiter.limit_manager
    with app.app_context():
        has_blueprint_limits = any(manager.blueprint_limits(app, name) for name in app.blueprints)
    if manager.default_limits or manager.application_limits or app.config.get("RATELIMIT_META"):
        return
    if has_blueprint_limits:
        return
    hooks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [hook for hook in hooks if hook not in limiter_hooks]


def bind_extensions(app: Flask) -> None:
    from pathlib import Path

    from atomicseats.domain import limits
    from atomicseats.extensions import db, limiter, mail, migrate
    from atomicseats.services.unit_of_work import (
        install_connection_check,
        install_deferred_timeouts,
        install_sqlite_pragmas,
        release_session,
    )

    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith("postgresql"):
        # Batch UPDATEs too (one allocation updates hundreds of request rows), not just INSERTs.
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.setdefault("executemany_mode", "values_plus_batch")
        # Pooled connections are checked before use by install_connection_check below, which
        # pings only those that sat idle; pool_pre_ping would ping before every transaction.
        options.setdefault("pool_pre_ping", False)
        # A database host that does not answer (rather than refusing) fails a connect in seconds:
        # a 503 with Retry-After, not a thread held for the kernel's minutes of SYN retries.
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("connect_timeout", limits.DATABASE_CONNECT_TIMEOUT_S)
        options["connect_args"] = connect_args
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    db.init_app(app)
    # Runs before Flask-SQLAlchemy's own teardown (Flask runs them last-registered first),
    # so removing the session never raises on a connection a database restart dropped.
    app.teardown_appcontext(lambda _error: release_session())
    migrate.init_app(
        app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"), render_as_batch=True
    )
    mail.init_app(app)
    hooks_before = list(app.before_request_funcs.get(None, []))
    limiter.init_app(app)
    app.extensions[LIMITER_HOOKS_KEY] = [
        hook for hook in app.before_request_funcs.get(None, []) if hook not in hooks_before
    ]
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            install_sqlite_pragmas(db.engine)
        else:
            install_deferred_timeouts(db.engine)
            if not app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping"):
                install_connection_check(db.engine)
