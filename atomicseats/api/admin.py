"""/api/admin: platform analytics, the user list and role changes (admins only)."""

from __future__ import annotations

from flask import Blueprint

from atomicseats.api import schemas
from atomicseats.api._io import load_body, load_query, schema
from atomicseats.api.openapi import documented
from atomicseats.auth import current_account, current_session_id, role_required
from atomicseats.http import envelope
from atomicseats.services import analytics, users

ID_MAX = schemas.ID_MAX

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
    query = load_query(schema(schemas.AnalyticsQuery))
    report = analytics.platform_analytics(current_account(), query["limit"], query.get("cursor"))
    return envelope(200, schema(schemas.AnalyticsOut).dump(report), "Analytics")


@bp.get("/users")
@role_required("admin")
@documented(
    "Every account, newest first, searchable by username, name or e-mail (keyset pagination)",
    "admin",
    query=schemas.UsersQuery,
    response=schemas.UserPageOut,
    errors=(403,),
)
def list_users():
    query = load_query(schema(schemas.UsersQuery))
    page = users.list_users(current_account(), query.get("text") or None, query["limit"], query.get("cursor"))
    return envelope(200, schema(schemas.UserPageOut).dump(page), "Users")


@bp.patch(f"/users/<int(max={ID_MAX}):user_id>")
@role_required("admin")
@documented(
    "Change a user's role; ends the user's sessions (browser and tokens), but the caller's own",
    "admin",
    body=schemas.RoleChangeSchema,
    response=schemas.RoleChangeOut,
    errors=(403, 404, 409),
)
def change_role(user_id: int):
    body = load_body(schema(schemas.RoleChangeSchema))
    change = users.change_role(current_account(), user_id, body["role"], current_session_id())
    message = "Role changed" if change.is_changed else "Role unchanged"
    return envelope(200, schema(schemas.RoleChangeOut).dump(change), message)
