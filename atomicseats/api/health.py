"""Liveness and readiness probes for load balancers and `make up`, and Prometheus' scrape."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from atomicseats.api import schemas
from atomicseats.api._io import schema
from atomicseats.api.openapi import documented
from atomicseats.services import telemetry
from atomicseats.services.readiness import checks as readiness_checks

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented(
    "Alive: the process answers (it checks no dependency)",
    "operations",
    response=schemas.LivenessOut,
    is_authenticated=False,
    is_enveloped=False,
)
def liveness():
    return jsonify(schema(schemas.LivenessOut).dump({"status": "ok"}))


@bp.get("/readyz")
@documented(
    "Ready: the database answers at the newest migration, and Redis and Kafka where configured; 503 otherwise",
    "operations",
    response=schemas.ReadinessOut,
    is_authenticated=False,
    is_enveloped=False,
    also_answers=(503,),
)
def readiness():
    checks = readiness_checks()
    is_ready = all(checks.values())
    response = jsonify(
        schema(schemas.ReadinessOut).dump({"status": "ready" if is_ready else "not ready", "checks": checks})
    )
    response.status_code = 200 if is_ready else 503
    return response


@bp.get("/metrics")
@documented(
    "Prometheus' scrape: every API worker process's counters, and the platform's gauges",
    "operations",
    response=None,
    is_authenticated=False,
    is_enveloped=False,
    media_type="text/plain",
)
def metrics():
    body, content_type = telemetry.exposition()
    return Response(body, content_type=content_type)
