"""/api/admin: platform analytics (admins only)."""

from __future__ import annotations

from flask import Blueprint

from atomicseats.api import schemas
from atomicseats.api.openapi import documented
from atomicseats.auth import role_required
from atomicseats.http import envelope
from atomicseats.services import analytics

bp = Blueprint("api_admin", __name__, url_prefix="/api/admin")


@bp.get("/analytics")
@role_required("admin")
@documented(
    "Totals, top events, utilisation, revenue and waitlists", "admin", response=schemas.AnalyticsOut, errors=(403,)
)
def platform_analytics():
    return envelope(200, schemas.AnalyticsOut().dump(analytics.platform_analytics()), "Analytics")
