"""Liveness and readiness probes for load balancers and `make up`."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, url_for
from sqlalchemy import text

from atomicseats.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/")
def home():
    return redirect(url_for("api_docs.docs_page"))


@bp.get("/healthz")
def liveness():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readiness():
    checks = {"database": _database_ok()}
    if current_app.config.get("REDIS_URL"):
        checks["redis"] = _redis_ok()
    is_ready = all(checks.values())
    response = jsonify({"status": "ready" if is_ready else "not ready", "checks": checks})
    response.status_code = 200 if is_ready else 503
    return response


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # a probe reports, it never raises
        db.session.rollback()
        return False


def _redis_ok() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=0.5, socket_connect_timeout=0.5)
        return bool(client.ping())
    except redis.RedisError:
        return False
