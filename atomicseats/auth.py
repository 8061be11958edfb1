"""Token and session wiring: every token is verified, and every failure is a 401.

flask-jwt-extended answers 422 for some malformed tokens by default; DESIGN.md wants
401 for anything that is not a valid, live access token, so every loader is set.
"""

from __future__ import annotations

import functools

from flask import Flask, jsonify
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request

from atomicseats.errors import Forbidden
from atomicseats.extensions import jwt, login_manager
from atomicseats.models import User
from atomicseats.services import users
from atomicseats.services._tokens import decoding_key, encoding_key


def register_auth(app: Flask) -> None:
    jwt.init_app(app)
    login_manager.init_app(app)
    jwt.encode_key_loader(encoding_key)
    jwt.decode_key_loader(decoding_key)
    jwt.user_lookup_loader(_load_user_from_token)
    jwt.token_in_blocklist_loader(_is_token_revoked)
    jwt.expired_token_loader(_expired)
    for register in (
        jwt.invalid_token_loader,
        jwt.unauthorized_loader,
        jwt.revoked_token_loader,
        jwt.needs_fresh_token_loader,
        jwt.user_lookup_error_loader,
        jwt.token_verification_failed_loader,
    ):
        register(_unauthorized)
    login_manager.user_loader(_load_user_for_browser)
    with app.app_context():
        app.extensions["atomicseats.dummy_hash"] = users.password_hasher().hash("dummy-password-for-timing")


def _unauthorized(*args):
    reason = next((arg for arg in args if isinstance(arg, str)), "Authentication required")
    response = jsonify({"statusCode": 401, "message": _public_reason(reason), "errors": {}})
    response.status_code = 401
    return response


def _expired(_header: dict, _claims: dict):
    return _unauthorized("Token has expired")


def _public_reason(reason: str) -> str:
    lowered = reason.lower()
    if "expired" in lowered:
        return "Token has expired"
    if "missing" in lowered or "authorization" in lowered and "header" in lowered:
        return "Authentication required"
    return "Invalid or revoked token"


def _load_user_from_token(_header: dict, claims: dict) -> User | None:
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    return users.get_user(user_id)


def _is_token_revoked(_header: dict, claims: dict) -> bool:
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return True
    return not users.is_session_live(claims.get("sid"), user_id)


def _load_user_for_browser(user_id: str) -> User | None:
    try:
        return users.get_user(int(user_id))
    except ValueError:
        return None


def login_required(view):
    """Require a valid, live access token (header or cookie)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        verify_jwt_in_request()
        return view(*args, **kwargs)

    return wrapper


def role_required(*roles: str):
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request()
            if current_user.role not in roles:
                raise Forbidden("You do not have permission to do this")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_session_id() -> str:
    return get_jwt()["sid"]


def current_account() -> User:
    return current_user
