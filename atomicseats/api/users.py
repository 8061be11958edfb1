"""/api/user: register, login, refresh, logout, booking history."""

from __future__ import annotations

from flask import Blueprint, current_app, make_response
from flask_jwt_extended import (
    get_jwt,
    set_access_cookies,
    set_refresh_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)

from atomicseats.api import schemas
from atomicseats.api._io import load_body, load_optional_body, load_query, schema
from atomicseats.api.openapi import documented
from atomicseats.auth import current_session_id, current_user_id, login_required
from atomicseats.extensions import limiter
from atomicseats.http import envelope
from atomicseats.services import history, users

bp = Blueprint("api_users", __name__, url_prefix="/api/user")


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


def _limits_enabled() -> bool:
    return not current_app.config["RATELIMIT_ENABLED"]


@bp.post("/register")
@limiter.limit(_auth_limit, exempt_when=_limits_enabled)
@documented(
    "Create a guest or host account",
    "users",
    body=schemas.RegisterSchema,
    response=schemas.UserOut,
    status=201,
    is_authenticated=False,
    errors=(403, 409),
    is_rate_limited=True,
)
def register():
    body = load_body(schema(schemas.RegisterSchema))
    user = users.register_user(body["username"], body["name"], body["email"], body["password"], body["role"])
    return envelope(201, schema(schemas.UserOut).dump(user), "User created successfully")


@bp.post("/login")
@limiter.limit(_auth_limit, exempt_when=_limits_enabled)
@documented(
    "Log in with username or email",
    "users",
    body=schemas.LoginSchema,
    response=schemas.LoginOut,
    is_authenticated=False,
    errors=(401, 403),
    is_rate_limited=True,
)
def login():
    body = load_body(schema(schemas.LoginSchema))
    user = users.authenticate(body.get("username") or body["email"], body["password"])
    result = users.login(user.id)
    return _token_response(result, "User logged in successfully")


@bp.post("/refresh")
@documented(
    "Swap a refresh token for a new token pair (rotation)",
    "users",
    body=schemas.RefreshSchema,
    response=schemas.LoginOut,
    is_authenticated=False,
    errors=(401,),
    is_body_required=False,
)
def refresh():
    load_optional_body(schema(schemas.RefreshSchema))  # validates a body if one is sent
    verify_jwt_in_request(refresh=True, locations=["headers", "cookies", "json"])
    claims = get_jwt()
    result = users.rotate_refresh_token(int(claims["sub"]), claims.get("sid", ""), claims["jti"])
    return _token_response(result, "Tokens refreshed")


@bp.post("/logout")
@login_required
@documented("Log out: revokes this session's access and refresh tokens", "users", response=schemas.LoggedOutOut)
def logout():
    users.logout(current_user_id(), current_session_id())
    response = envelope(200, {}, "User logged out successfully")
    unset_jwt_cookies(response)
    return response


@bp.get("/bookings")
@login_required
@documented(
    "Your booking history, newest first (keyset pagination): tickets, or one summary per event (view=summary)",
    "bookings",
    query=schemas.HistoryQuery,
    response=(schemas.TicketPageOut, schemas.SummaryPageOut),
)
def booking_history():
    query = load_query(schema(schemas.HistoryQuery))
    filters = history.HistoryFilter(
        event_id=query.get("event_id"),
        status=query.get("status"),
        created_from=query.get("created_from"),
        created_to=query.get("created_to"),
    )
    page = history.booking_history(current_user_id(), query["view"], query["limit"], query.get("cursor"), filters)
    if query["view"] == "summary":
        return envelope(200, schema(schemas.SummaryPageOut).dump(page), "Booking history (summary)")
    return envelope(200, schema(schemas.TicketPageOut).dump(page), "Booking history")


def _token_response(result: users.LoginResult, message: str):
    response = make_response(envelope(200, schema(schemas.LoginOut).dump(result), message))
    set_access_cookies(response, result.access_token)
    set_refresh_cookies(response, result.refresh_token)
    return response
