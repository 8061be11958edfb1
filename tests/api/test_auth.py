"""Accounts and tokens over HTTP: registration, login, token verification, refresh
rotation, logout, the admin CLI and the login rate limit (DESIGN.md, Security baseline)."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from atomicseats.auth import VerifiedTokens
from atomicseats.extensions import db, limiter
from tests.api.support import assert_error, assert_success
from tests.conftest import fresh_app
from tests.helpers import PASSWORD, account, create_admin_args, create_event, login, register, registration, unchanged

USER_FIELDS = {"id", "username", "name", "email", "role"}
REFRESH_PATH = "/api/user/refresh"


def register_response(client, **overrides):
    return client.post("/api/user/register", json={**registration("newuser", name="New User"), **overrides})


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def unverified_claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- registration ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["guest", "host"])
def test_register_creates_a_guest_or_host_in_the_envelope(client, role):
    response = register_response(client, username=f"new{role}", email=f"new{role}@example.test", role=role)

    data = assert_success(response, 201)
    assert set(data) == USER_FIELDS
    assert data["username"] == f"new{role}"
    assert data["email"] == f"new{role}@example.test"
    assert data["role"] == role
    assert isinstance(data["id"], int)


def test_register_without_a_role_makes_a_guest(client):
    response = client.post(
        "/api/user/register",
        json={"username": "norole", "name": "No Role", "email": "norole@example.test", "password": PASSWORD},
    )

    assert assert_success(response, 201)["role"] == "guest"


def test_register_never_returns_the_password_or_its_hash(client):
    response = register_response(client)

    text = response.get_data(as_text=True)
    assert PASSWORD not in text
    assert "argon2" not in text
    assert "password" not in text.lower()


def test_register_as_admin_is_forbidden_and_creates_no_user(app, client):
    with unchanged():
        response = register_response(client, username="sneaky", email="sneaky@example.test", role="admin")

        assert_error(response, 403)
    assert_error(client.post("/api/user/login", json={"username": "sneaky", "password": PASSWORD}), 401)


@pytest.mark.parametrize(
    "clash",
    [
        {"username": "Taken", "email": "other@example.test"},
        {"username": "TAKEN", "email": "other@example.test"},
        {"username": "someoneelse", "email": "taken@example.test"},
        {"username": "someoneelse", "email": "TAKEN@Example.Test"},
    ],
    ids=["same-username", "username-other-case", "same-email", "email-other-case"],
)
def test_register_duplicate_username_or_email_is_a_conflict(app, client, clash):
    assert_success(register_response(client, username="taken", email="taken@example.test"), 201)
    with unchanged():
        response = register_response(client, **clash)

        assert_error(response, 409)


def test_register_stores_the_email_in_lower_case(client):
    data = assert_success(register_response(client, username="mixed", email="Mixed.Case@Example.Test"), 201)

    assert data["email"] == "mixed.case@example.test"


# --- login ----------------------------------------------------------------------------


def test_login_by_username_returns_user_and_token_pair(client):
    user = register(client, "guest")

    response = client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD})

    data = assert_success(response)
    assert set(data) == {"user", "accessToken", "refreshToken"}
    assert data["user"] == user
    assert unverified_claims(data["accessToken"])["type"] == "access"
    assert unverified_claims(data["refreshToken"])["type"] == "refresh"


def test_login_by_email_field(client):
    user = register(client, "host")

    response = client.post("/api/user/login", json={"email": user["email"], "password": PASSWORD})

    assert assert_success(response)["user"]["id"] == user["id"]


def test_login_by_email_in_the_username_field(client):
    user = register(client, "guest")

    response = client.post("/api/user/login", json={"username": user["email"], "password": PASSWORD})

    assert assert_success(response)["user"]["id"] == user["id"]


def test_login_ignores_the_case_of_username_and_email(client):
    user = register(client, "guest")

    by_username = client.post("/api/user/login", json={"username": user["username"].upper(), "password": PASSWORD})
    by_email = client.post("/api/user/login", json={"email": user["email"].upper(), "password": PASSWORD})

    assert assert_success(by_username)["user"]["id"] == user["id"]
    assert assert_success(by_email)["user"]["id"] == user["id"]


def test_login_sets_http_only_same_site_token_cookies(app):
    client = app.test_client()
    user = register(client, "guest")

    response = client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD})

    assert_success(response)
    cookies = {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}
    for name in ("accessToken", "refreshToken"):
        assert "HttpOnly" in cookies[name]
        assert "SameSite=Lax" in cookies[name]
    # The CSRF double-submit cookie is meant to be read by the page's script.
    assert "HttpOnly" not in cookies["csrf_access_token"]


def test_the_refresh_cookie_is_sent_to_the_refresh_route_only(app):
    client = app.test_client()
    user = register(client, "guest")

    response = client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD})

    attributes = {
        header.split("=", 1)[0]: [part.strip() for part in header.split(";")]
        for header in response.headers.getlist("Set-Cookie")
    }
    assert f"Path={REFRESH_PATH}" in attributes["refreshToken"]
    assert "Path=/" in attributes["accessToken"]
    assert client.get_cookie("refreshToken") is None  # not for "/"
    # ... and the browser's cookie still refreshes on its route (CSRF header as a page sends it)
    csrf = client.get_cookie("csrf_refresh_token").value
    assert_success(client.post(REFRESH_PATH, headers={"X-CSRF-TOKEN": csrf}))


def test_wrong_password_and_unknown_user_get_the_same_401(app, client):
    user = register(client, "guest")
    with unchanged():  # no session was opened
        wrong_password = client.post(
            "/api/user/login", json={"username": user["username"], "password": "not-the-password"}
        )
        unknown_user = client.post("/api/user/login", json={"username": "nobody-here", "password": PASSWORD})
        unknown_email = client.post("/api/user/login", json={"email": "nobody@example.test", "password": PASSWORD})

        messages = {
            assert_error(response, 401)["message"] for response in (wrong_password, unknown_user, unknown_email)
        }
        assert len(messages) == 1


# --- using the access token -----------------------------------------------------------


def test_access_token_in_the_authorization_header_authenticates(app):
    guest = account(app.test_client(), "guest")

    response = app.test_client().get("/api/user/bookings", headers=guest.headers)

    assert_success(response)


def test_no_token_at_all_is_401(app):
    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings"), 401)


def test_access_token_cookie_authenticates_a_read(app):
    client = app.test_client()
    login(client, register(client, "guest")["username"])  # leaves the cookies in this client

    response = client.get("/api/user/bookings")

    assert_success(response)


def test_cookie_authenticated_write_with_the_csrf_header_is_accepted(app):
    client = app.test_client()
    host = account(app.test_client(), "host")
    event = create_event(client, host, capacity=5)
    login(client, register(client, "guest")["username"])
    csrf = client.get_cookie("csrf_access_token").value

    response = client.post(
        "/api/events/book", json={"eventId": event["id"], "numberOfSeats": 1}, headers={"X-CSRF-TOKEN": csrf}
    )

    assert assert_success(response, 202)["status"] == "confirmed"


@pytest.mark.parametrize("csrf_header", [None, "", "not-the-csrf-token"], ids=["missing", "empty", "wrong"])
def test_cookie_authenticated_write_without_the_csrf_token_is_401(app, csrf_header):
    """flask-jwt-extended raises CSRFError, which our loaders answer with 401 (never 422)."""
    client = app.test_client()
    host = account(app.test_client(), "host")
    event = create_event(client, host, capacity=5)
    login(client, register(client, "guest")["username"])
    headers = {} if csrf_header is None else {"X-CSRF-TOKEN": csrf_header}
    with unchanged():
        response = client.post("/api/events/book", json={"eventId": event["id"], "numberOfSeats": 1}, headers=headers)

        assert_error(response, 401)


def test_token_with_a_forged_signature_is_401(app, client):
    guest = account(client, "guest")
    claims = unverified_claims(guest.access_token)
    forged = pyjwt.encode(claims, "not-our-secret-but-long-enough-for-hs256!", algorithm="HS256")

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(forged)), 401)


def test_forged_token_is_401_after_the_genuine_one_was_verified(app, client):
    guest = account(client, "guest")
    assert_success(app.test_client().get("/api/user/bookings", headers=guest.headers))  # now verified once
    forged = pyjwt.encode(unverified_claims(guest.access_token), "not-our-secret-but-long-enough-for-hs256!")

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(forged)), 401)


def test_token_whose_claims_were_edited_is_401(app, client):
    guest = account(client, "guest")
    other = account(client, "guest")
    header, _payload, signature = guest.access_token.split(".")
    claims = {**unverified_claims(guest.access_token), "sub": str(other.id), "role": "admin"}
    tampered = f"{header}.{b64url(claims)}.{signature}"

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(tampered)), 401)


def signed_with_exp(app, token: str, secret_name: str, exp) -> str:
    """The token's own claims, re-signed with our real secret, `exp` replaced (or removed)."""
    claims = {key: value for key, value in unverified_claims(token).items() if key != "exp"}
    if exp is not NO_EXP:
        claims["exp"] = exp
    return pyjwt.encode(claims, app.config[secret_name], algorithm="HS256")


NO_EXP = object()
BAD_EXPIRIES = [NO_EXP, str(int(time.time()) + 3600), "soon", True, None, [1]]
BAD_EXPIRY_IDS = ["missing", "numeric-string", "text", "boolean", "null", "list"]


@pytest.mark.parametrize("exp", BAD_EXPIRIES, ids=BAD_EXPIRY_IDS)
def test_access_token_without_a_numeric_exp_is_401_even_when_genuinely_signed(app, client, exp):
    guest = account(client, "guest")
    token = signed_with_exp(app, guest.access_token, "JWT_SECRET_KEY", exp)

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(token)), 401)
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(token)), 401)  # never cached


@pytest.mark.parametrize("exp", BAD_EXPIRIES, ids=BAD_EXPIRY_IDS)
def test_refresh_token_without_a_numeric_exp_is_401(app, client, exp):
    guest = account(client, "guest")
    token = signed_with_exp(app, guest.refresh_token, "REFRESH_TOKEN_SECRET", exp)

    with unchanged():
        assert_error(app.test_client().post("/api/user/refresh", headers=bearer(token)), 401)


def test_a_genuinely_signed_token_with_a_numeric_exp_still_works(app, client):
    guest = account(client, "guest")
    token = signed_with_exp(app, guest.access_token, "JWT_SECRET_KEY", int(time.time()) + 600.5)

    assert_success(app.test_client().get("/api/user/bookings", headers=bearer(token)))


def test_token_signed_with_the_refresh_secret_is_not_an_access_token(app, client):
    guest = account(client, "guest")
    claims = unverified_claims(guest.access_token)
    forged = pyjwt.encode(claims, app.config["REFRESH_TOKEN_SECRET"], algorithm="HS256")

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(forged)), 401)


def test_expired_access_token_is_401(app, client):
    guest = account(client, "guest")
    claims = unverified_claims(guest.access_token)
    expired = create_access_token(
        identity=claims["sub"], additional_claims={"sid": claims["sid"]}, expires_delta=timedelta(seconds=-5)
    )

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(expired)), 401)


def test_expired_access_token_says_it_expired(app, client):
    """A client should learn to refresh, rather than to log in again (atomicseats/auth.py
    has a "Token has expired" branch for this, but the expired-token loader only passes
    dicts, so the branch is never reached)."""
    guest = account(client, "guest")
    claims = unverified_claims(guest.access_token)
    expired = create_access_token(
        identity=claims["sub"], additional_claims={"sid": claims["sid"]}, expires_delta=timedelta(seconds=-5)
    )

    with unchanged():
        body = assert_error(app.test_client().get("/api/user/bookings", headers=bearer(expired)), 401)

    assert "expired" in body["message"].lower()


def test_token_with_alg_none_is_401(app, client):
    guest = account(client, "guest")
    unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(unverified_claims(guest.access_token))}."

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(unsigned)), 401)


def test_refresh_token_used_as_an_access_token_is_401(app, client):
    guest = account(client, "guest")

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(guest.refresh_token)), 401)


def test_access_token_used_as_a_refresh_token_is_401(app, client):
    guest = account(client, "guest")

    with unchanged():
        assert_error(app.test_client().post("/api/user/refresh", headers=bearer(guest.access_token)), 401)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer a.b", "Bearer a.b.c", "Bearer a.b.c.d", "Basic x", "garbage", "Bearer 💥", ""],
    ids=[
        "bare-bearer",
        "bearer-space",
        "two-parts",
        "three-junk-parts",
        "four-parts",
        "basic",
        "garbage",
        "non-ascii",
        "empty",
    ],
)
def test_malformed_authorization_header_is_401(app, authorization):
    with unchanged():
        response = app.test_client().get("/api/user/bookings", headers={"Authorization": authorization})

        assert_error(response, 401)


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer a.b", "Basic x", "garbage"])
def test_malformed_authorization_header_on_a_write_is_401_and_writes_nothing(app, client, authorization):
    host = account(client, "host")
    event = create_event(client, host)
    with unchanged():
        response = app.test_client().post(
            "/api/events/book",
            json={"eventId": event["id"], "numberOfSeats": 1},
            headers={"Authorization": authorization},
        )

        assert_error(response, 401)


# --- refresh and logout ---------------------------------------------------------------


def test_refresh_returns_a_new_working_token_pair(app, client):
    guest = account(client, "guest")

    response = app.test_client().post("/api/user/refresh", headers=bearer(guest.refresh_token))

    data = assert_success(response)
    assert data["user"]["id"] == guest.id
    assert data["accessToken"] != guest.access_token
    assert data["refreshToken"] != guest.refresh_token
    assert_success(app.test_client().get("/api/user/bookings", headers=bearer(data["accessToken"])))


def test_refresh_token_in_the_json_body_is_accepted(app, client):
    guest = account(client, "guest")

    response = app.test_client().post("/api/user/refresh", json={"refreshToken": guest.refresh_token})

    assert assert_success(response)["user"]["id"] == guest.id


def test_rotated_out_refresh_token_is_401_and_revokes_the_new_pair(app, client):
    guest = account(client, "guest")
    fresh = assert_success(app.test_client().post("/api/user/refresh", headers=bearer(guest.refresh_token)))

    reuse = app.test_client().post("/api/user/refresh", headers=bearer(guest.refresh_token))

    assert_error(reuse, 401)  # refused, and (on purpose) it changes something: see below
    # A reused refresh token means it was copied: the whole session is revoked.
    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=bearer(fresh["accessToken"])), 401)
        assert_error(app.test_client().post("/api/user/refresh", headers=bearer(fresh["refreshToken"])), 401)


def test_refresh_rotation_leaves_other_sessions_alive(app, client):
    first = login(client, register(client, "guest")["username"])
    second = login(client, first.username)
    assert_success(app.test_client().post("/api/user/refresh", headers=bearer(first.refresh_token)))
    # Refused, and it revokes that session (a reused refresh token was copied): not the others.
    assert_error(app.test_client().post("/api/user/refresh", headers=bearer(first.refresh_token)), 401)

    assert_success(app.test_client().get("/api/user/bookings", headers=second.headers))


def test_logout_revokes_the_access_and_the_refresh_token(app, client):
    guest = account(client, "guest")

    assert_success(app.test_client().post("/api/user/logout", headers=guest.headers))

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=guest.headers), 401)
        assert_error(app.test_client().post("/api/user/refresh", headers=bearer(guest.refresh_token)), 401)


def test_logout_revokes_a_token_the_process_has_already_verified(app, client):
    guest = account(client, "guest")
    for _ in range(2):
        assert_success(app.test_client().get("/api/user/bookings", headers=guest.headers))
    other = login(client, guest.username)

    assert_success(app.test_client().post("/api/user/logout", headers=other.headers))
    assert_success(app.test_client().get("/api/user/bookings", headers=guest.headers))  # another session
    assert_success(app.test_client().post("/api/user/logout", headers=guest.headers))

    with unchanged():
        assert_error(app.test_client().get("/api/user/bookings", headers=guest.headers), 401)


def test_logout_clears_the_token_cookies(app):
    client = app.test_client()
    guest = login(client, register(client, "guest")["username"])

    assert client.get_cookie("refreshToken", path=REFRESH_PATH) is not None

    assert_success(client.post("/api/user/logout", headers=guest.headers))

    assert client.get_cookie("accessToken") is None
    assert client.get_cookie("refreshToken", path=REFRESH_PATH) is None


def test_logout_of_one_session_keeps_the_others(app, client):
    first = login(client, register(client, "guest")["username"])
    second = login(client, first.username)

    assert_success(app.test_client().post("/api/user/logout", headers=first.headers))

    assert_success(app.test_client().get("/api/user/bookings", headers=second.headers))


def test_logout_with_a_refresh_token_is_401(app, client):
    guest = account(client, "guest")

    with unchanged():
        assert_error(app.test_client().post("/api/user/logout", headers=bearer(guest.refresh_token)), 401)
    assert_success(app.test_client().get("/api/user/bookings", headers=guest.headers))


# --- admins ---------------------------------------------------------------------------


def create_admin_with_cli(app, username: str, password: str = PASSWORD):
    result = app.test_cli_runner().invoke(args=create_admin_args(username, password))
    # The command committed through its own app context; end this test's read
    # transaction so the next request sees the new row (SQLite reads a snapshot).
    db.session.rollback()
    return result


def test_cli_create_admin_makes_an_admin_who_can_read_analytics(app, client):
    result = create_admin_with_cli(app, "rootadmin")
    assert result.exit_code == 0, result.output
    admin = login(client, "rootadmin")
    assert admin.role == "admin"

    response = client.get("/api/admin/analytics", headers=admin.headers)

    data = assert_success(response)
    assert data["totals"]["admins"] == 1


@pytest.mark.parametrize("role", ["host", "guest"])
def test_analytics_is_forbidden_to_hosts_and_guests(app, client, role):
    user = account(client, role)

    with unchanged():
        assert_error(client.get("/api/admin/analytics", headers=user.headers), 403)


def test_analytics_without_a_token_is_401(app):
    with unchanged():
        assert_error(app.test_client().get("/api/admin/analytics"), 401)


def test_cli_create_admin_refuses_a_taken_username(app, client):
    register(client, "guest", username="clashing")
    with unchanged():
        result = create_admin_with_cli(app, "clashing")

        assert result.exit_code != 0
        assert "already exists" in result.output


def test_cli_create_admin_refuses_a_short_password(app):
    with unchanged():
        result = create_admin_with_cli(app, "shortpw", password="short")

        assert result.exit_code != 0


def test_admin_token_works_across_the_api(app, client):
    create_admin_with_cli(app, "opsadmin")
    admin = login(client, "opsadmin")
    host = account(client, "host")
    event = create_event(client, host, capacity=3)

    response = client.post("/api/events/update", json={"id": event["id"], "capacity": 4}, headers=admin.headers)

    assert assert_success(response)["capacity"] == 4


# --- rate limiting --------------------------------------------------------------------


def test_fourth_login_within_a_minute_is_rate_limited(database_url):
    # Counters in this app's own memory: under `make test` the default storage is the shared
    # test Redis, where other tests (and this one on the other backend) count too.
    limits = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "3 per minute", "RATELIMIT_STORAGE_URI": "memory://"}
    with fresh_app(database_url, **limits) as app:
        client = app.test_client()
        # Limits are declared per route and checked by their decorators: no global hook.
        hooks = app.before_request_funcs.get(None, [])
        assert [hook for hook in hooks if getattr(hook, "__self__", None) is limiter] == []
        user = register(client, "guest")
        assert_success(client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD}))
        with unchanged():
            assert_error(
                client.post("/api/user/login", json={"username": user["username"], "password": "wrong-pass"}), 401
            )
        assert_success(client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD}))

        with unchanged():
            response = client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD})

            assert_error(response, 429)
        assert int(response.headers["Retry-After"]) > 0


def test_rate_limit_is_off_when_disabled(client):
    user = register(client, "guest")

    for _ in range(12):
        assert_success(client.post("/api/user/login", json={"username": user["username"], "password": PASSWORD}))


# --- verified-token memo (pure) ---------------------------------------------------------


def test_verified_tokens_forget_a_token_once_it_expires():
    tokens = VerifiedTokens()
    tokens.remember("live", {"sub": "1", "exp": time.time() + 60})
    tokens.remember("expired", {"sub": "1", "exp": time.time() - 1})
    tokens.remember("no-expiry", {"sub": "1"})

    assert tokens.claims_of("live")["sub"] == "1"
    assert tokens.claims_of("expired") is None
    assert tokens.claims_of("no-expiry") is None
    assert tokens.claims_of("live ") is None  # only the identical string hits


def test_verified_tokens_keep_at_most_their_capacity_dropping_the_oldest():
    tokens = VerifiedTokens(capacity=3)
    for name in "abcd":
        tokens.remember(name, {"exp": time.time() + 60})

    assert [tokens.claims_of(name) is not None for name in "abcd"] == [False, True, True, True]
