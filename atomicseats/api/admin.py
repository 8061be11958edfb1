"""/api/admin: platform analytics (admins only)."""

from __future__ import annotations

from flask import Blueprint

from atomicseats.api import schemas
from atomicseats.api._io import load_query
from atomicseats.api.openapi import documented
from atomicseats.auth import role_required
from atomicseats.http import envelope
from atomicseats.services import analytics

bp = Blueprint("api_admin", __name__, url_prefix="/api/admin")


@bp.get("/analytics")
@role_required("admin")
@documented(
    "Totals, top events, utilisation, revenue and waitlists over all events; the per-event part a page at a time",
    "admin",
    query=schemas.AnalyticsQuery,
    response=schemas.AnalyticsOut,
    errors=(403,),
)
def platform_analytics():
    query = load_query(schemas.AnalyticsQuery())
    report = analytics.platform_analytics(query["limit"], query.get("cursor"))
    return envelope(200, schemas.AnalyticsOut().dump(report), "Analytics")
