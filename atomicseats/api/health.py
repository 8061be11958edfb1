"""Liveness and readiness probes for load balancers and `make up`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from atomicseats.services import telemetry
from atomicseats.services.readiness import checks as readiness_checks

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def liveness():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readiness():
    checks = readiness_checks()
    is_ready = all(checks.values())
    response = jsonify({"status": "ready" if is_ready else "not ready", "checks": checks})
    response.status_code = 200 if is_ready else 503
    return response


@bp.get("/metrics")
def metrics():
    """Prometheus' scrape: every API worker process's counters, and the platform's gauges."""
    body, content_type = telemetry.exposition()
    return Response(body, content_type=content_type)
