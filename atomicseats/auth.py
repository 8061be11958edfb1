"""Token and session wiring: every token is verified, and every failure is a 401.

flask-jwt-extended answers 422 for some malformed tokens by default; DESIGN.md wants
401 for anything that is not a valid, live access token, so every loader is set.
"""

from __future__ import annotations

import functools
import math
import threading
import time

from flask import Flask, current_app, request
from flask_jwt_extended import get_jwt, verify_jwt_in_request

from atomicseats.domain import accounts
from atomicseats.errors import Forbidden, NotAuthenticated
from atomicseats.extensions import jwt, login_manager
from atomicseats.http import error_response
from atomicseats.models import User
from atomicseats.services import users
from atomicseats.services.tokens import decoding_key, encoding_key

_ACCOUNT_KEY = "atomicseats.account"
_CLAIMS_KEY = "atomicseats.claims"
_VERIFIED_TOKENS_KEY = "atomicseats.verified_tokens"
VERIFIED_TOKENS_MAX = 20_000  # per process; ~1 KiB each


class VerifiedTokens:
    """Access tokens this process has already verified (signature, type, claims), until
    they expire. Keyed by the whole token string, so only a byte-identical token hits:
    a forged or altered token is never found and goes through full verification. The
    session's liveness is still checked on every request (logout revokes at once).
    Decoding a JWT is a third of the booking hot path's CPU; this skips it for a client
    that books more than once with the same token."""

    def __init__(self, capacity: int = VERIFIED_TOKENS_MAX) -> None:
        self.capacity = capacity
        self._claims: dict[str, dict] = {}
        self._lock = threading.Lock()

    def claims_of(self, token: str) -> dict | None:
        claims = self._claims.get(token)
        if claims is not None and claims["exp"] <= time.time():
            return None
        return claims

    def remember(self, token: str, claims: dict) -> None:
        if not isinstance(claims.get("exp"), int | float):
            return
        with self._lock:
            if len(self._claims) >= self.capacity:
                del self._claims[next(iter(self._claims))]  # the oldest: dicts keep insertion order
            self._claims[token] = claims


def _drop_remember_cookie_hook(app: Flask) -> None:
    """Flask-Login's after-request hook keeps a "remember me" cookie up to date. There is none
    here: `web.sessions.sign_in` calls `login_user` without `remember`, and `sign_out` clears
    the session after `logout_user`. All the hook did was read the session on every request,
    which marks it accessed: Flask then worked out the session cookie's attributes and added
    `Vary: Cookie` to every answer, bearer-token API calls included (~4 % of the instructions
    a booking runs, README "The runs behind the table", 8615e90)."""
    hook = login_manager._update_remember_cookie  # Flask-Login 0.6 (pinned); gone, this raises
    app.after_request_funcs[None].remove(hook)


def register_auth(app: Flask) -> None:
    jwt.init_app(app)
    login_manager.init_app(app)
    _drop_remember_cookie_hook(app)
    jwt.encode_key_loader(encoding_key)
    jwt.decode_key_loader(decoding_key)
    jwt.token_in_blocklist_loader(_is_token_revoked)
    jwt.token_verification_loader(has_numeric_expiry)
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
    app.extensions[_VERIFIED_TOKENS_KEY] = VerifiedTokens()
    with app.app_context():
        app.extensions["atomicseats.dummy_hash"] = users.password_hasher().hash("dummy-password-for-timing")


def _unauthorized(*args):
    reason = next((arg for arg in args if isinstance(arg, str)), "Authentication required")
    message = _public_reason(reason)
    return error_response(401, message, code="token_expired" if message == _EXPIRED else "not_authenticated")


def _expired(_header: dict, _claims: dict):
    return _unauthorized(_EXPIRED)


_EXPIRED = "Token has expired"


def _public_reason(reason: str) -> str:
    lowered = reason.lower()
    if "expired" in lowered:
        return _EXPIRED
    if "missing" in lowered or "authorization" in lowered and "header" in lowered:
        return "Authentication required"
    return users.DEAD_SESSION_MESSAGE


def has_numeric_expiry(_header: dict, claims: dict) -> bool:
    """Every token we issue expires. PyJWT checks `exp` only when it is there, and takes a
    numeric string ("9999999999") for a number: a token without a JSON-number `exp` is refused."""
    expiry = claims.get("exp")
    return isinstance(expiry, int | float) and not isinstance(expiry, bool) and math.isfinite(expiry)


def _is_token_revoked(_header: dict, claims: dict) -> bool:
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return True
    return not users.is_session_live(claims.get("sid"), user_id)


def login_required(view):
    """Require a valid, live access token (header or cookie)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        _verify_access_token()
        return view(*args, **kwargs)

    return wrapper


def token_required(view):
    """`login_required` for a view whose service confirms the session itself, before it
    counts, claims or reads anything, in a round trip it makes anyway: the booking hot path
    (`booking.submit_request(..., session_id=current_session_id())` confirms it in the
    request registry's claim, one Redis round trip less a booking). The token is verified
    here as everywhere; a token this process has not seen before has its session checked
    here too. A view under this decorator must hand its session on: the service is the
    check."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        _verify_access_token(check_session=False)
        return view(*args, **kwargs)

    return wrapper


def role_required(*roles: str):
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            _verify_access_token()
            if current_account().role not in roles:
                raise Forbidden("You do not have permission to do this")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def signed_in_account() -> User:
    """The caller's account on a public route that shows more to some callers: a valid,
    live access token is then required (401 otherwise), as on `login_required` routes."""
    _verify_access_token()
    return current_account()


def _verify_access_token(check_session: bool = True) -> None:
    """A valid, live access token, or NotAuthenticated. A bearer token this process has
    verified before skips decoding; everything else takes flask-jwt-extended's path (which
    checks the session too). `check_session=False` leaves a remembered token's session to
    the caller (`token_required`)."""
    token = _bearer_token()
    verified = current_app.extensions[_VERIFIED_TOKENS_KEY]
    claims = verified.claims_of(token) if token else None
    if claims is None:
        verify_jwt_in_request()
        claims = get_jwt()
        if token:
            verified.remember(token, claims)
    elif check_session:  # a remembered token's claims passed `_is_token_revoked`: "sub" is a number
        users.require_live_session(claims.get("sid"), int(claims["sub"]))
    request.environ[_CLAIMS_KEY] = claims


def _bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the header wins over the
    cookie in flask-jwt-extended too), or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme == "Bearer" and token and " " not in token else None


def current_claims() -> dict:
    claims = request.environ.get(_CLAIMS_KEY)
    return claims if claims is not None else get_jwt()


def current_session_id() -> str:
    return current_claims()["sid"]


def current_user_id() -> int:
    """The signed-in user's id, from the verified token: no database round trip."""
    return int(current_claims()["sub"])


def current_account_is_admin() -> bool:
    return accounts.is_admin(current_account().role)


def current_account() -> User:
    """The signed-in user, loaded once per request (only where a route needs more than the id)."""
    account = request.environ.get(_ACCOUNT_KEY)  # per request (g lives as long as the app context)
    if account is None:
        account = users.get_user(current_user_id())
        if account is None:  # deleted since the token was issued (its sessions went with it)
            raise NotAuthenticated("Unknown user")
        request.environ[_ACCOUNT_KEY] = account
    return account
