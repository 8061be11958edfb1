"""Accounts and login sessions.

A login creates an AuthSession; its access and refresh tokens both carry the
session id (`sid`). Logout revokes the session, so both tokens die at once.
Refresh rotation replaces the session's current refresh jti: a rotated-out refresh
token no longer matches and gets 401; presenting one revokes the whole session,
since it means the token was copied.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import time
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import String, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atomicseats.domain import accounts, limits
from atomicseats.errors import (
    AccountDisabled,
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    ServiceBusy,
)
from atomicseats.extensions import db
from atomicseats.models import AuthSession, User, utcnow
from atomicseats.services._pages import Page, cursor_id, decode_cursor, page_of
from atomicseats.services.ports import adapters
from atomicseats.services.tokens import signing_refresh_token
from atomicseats.services.unit_of_work import UnitOfWork, database_errors_as_busy, unit_of_work

log = logging.getLogger(__name__)

SELF_SERVICE_ROLES = ("guest", "host")


@dataclass(frozen=True)
class LoginResult:
    user: User
    access_token: str
    refresh_token: str


def password_hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config.get("ARGON2_TIME_COST", 3),
        memory_cost=config.get("ARGON2_MEMORY_KIB", 65536),
        parallelism=config.get("ARGON2_PARALLELISM", 2),
    )


def register_user(username: str, name: str, email: str, password: str, role: str) -> User:
    """Self-service sign-up: guests and hosts only. Admins come from the CLI."""
    if role not in SELF_SERVICE_ROLES:
        raise Forbidden("Registration can create guest or host accounts only", {"role": ["Must be guest or host."]})
    return _create_user(username, name, email, password, role)


def create_admin(username: str, name: str, email: str, password: str) -> User:
    return _create_user(username, name, email, password, "admin")


def _create_user(username: str, name: str, email: str, password: str, role: str) -> User:
    _check_new_account(username, password)
    password_hash = password_hasher().hash(password)
    email = email.lower()
    try:
        with unit_of_work() as work:
            clash = work.session.execute(
                select(User.id).where(or_(func.lower(User.username) == username.lower(), User.email == email))
            ).first()
            if clash is not None:
                raise _account_exists()
            user = User(username=username, name=name, email=email, password_hash=password_hash, role=role)
            work.session.add(user)
            work.session.flush()
    except IntegrityError as error:  # a concurrent sign-up of a case variant won the unique index
        raise _account_exists() from error
    log.info("user.registered", extra={"user_id": user.id, "role": role})
    return user


def _account_exists() -> Conflict:
    return Conflict("A user with this username or email already exists", code="already_exists")


def _check_new_account(username: str, password: str) -> None:
    """The account rules (domain/accounts.py), applied here to every new account (the API
    schema only documents them; the API, the CLI and the demo seed all end up here)."""
    errors = accounts.new_account_errors(username, password, is_common_password)
    if errors:
        raise InvalidInput("Invalid " + " and ".join(sorted(errors)), errors)


def is_common_password(password: str) -> bool:
    return password.lower() in _common_passwords()


@functools.cache
def _common_passwords() -> frozenset[str]:
    """zxcvbn's list of the 30,000 most common passwords (from leaked password sets),
    loaded on first use: the module is large."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def authenticate(login: str, password: str) -> User:
    """Find a user by username or email and check the password in constant-ish time."""
    user = db.session.execute(
        select(User).where(or_(func.lower(User.username) == login.lower(), User.email == login.lower()))
    ).scalar_one_or_none()
    hasher = password_hasher()
    if user is None:
        _burn_a_verification(hasher)
        raise NotAuthenticated("Invalid credentials", code="invalid_credentials")
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as error:
        raise NotAuthenticated("Invalid credentials", code="invalid_credentials") from error
    return user


def _burn_a_verification(hasher: PasswordHasher) -> None:
    """Spend as long on an unknown login as on a wrong password, so timing tells nothing."""
    with contextlib.suppress(VerificationError, InvalidHashError, KeyError):
        hasher.verify(current_app.extensions["atomicseats.dummy_hash"], "not-the-password")


def login(user_id: int) -> LoginResult:
    with unit_of_work() as work:
        user, session = _open_session(work.session, user_id)
        tokens = _issue_tokens(user, session)
    log.info("user.logged_in", extra={"user_id": user_id, "session_id": session.id})
    return tokens


def login_in_browser(user_id: int) -> str:
    """Open a session for a browser and return its id (the web pages keep it in their signed
    session cookie). The same AuthSession rows as token logins: `is_session_live` checks it
    on every page, `logout` ends it server-side, so a copied cookie dies with it. No tokens:
    a page never shows one."""
    with unit_of_work() as work:
        _user, session = _open_session(work.session, user_id)
    log.info("user.logged_in", extra={"user_id": user_id, "session_id": session.id, "client": "browser"})
    return session.id


def _open_session(session: Session, user_id: int) -> tuple[User, AuthSession]:
    """The account is read under a share lock, so a `flask users disable` running at the same
    moment either comes first (this login is refused) or waits for this session to commit
    and then revokes it too. A disabled account gets a 403 in words, and only after its
    password was checked: the message tells nothing to whoever does not know the password."""
    user = session.execute(select(User).where(User.id == user_id).with_for_update(read=True)).scalar_one_or_none()
    if user is None:
        raise NotAuthenticated("Invalid credentials", code="invalid_credentials")
    if user.disabled_at is not None:
        log.warning("user.login_refused_disabled", extra={"user_id": user_id})
        raise AccountDisabled()
    auth_session = AuthSession(
        id=str(uuid.uuid4()),
        user_id=user.id,
        refresh_jti=str(uuid.uuid4()),
        expires_at=utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
    )
    session.add(auth_session)
    return user, auth_session


def rotate_refresh_token(user_id: int, session_id: str, refresh_jti: str) -> LoginResult:
    """Swap a live refresh token for a new pair; a stale one revokes the session."""
    with unit_of_work() as work:
        session = _live_session(work.session, user_id, session_id)
        if session.refresh_jti != refresh_jti:
            session.revoked_at = utcnow()
            work.after_commit(adapters().sessions.forget, session_id)
            log.warning("user.refresh_reused", extra={"user_id": user_id, "session_id": session_id})
            reused = True
        else:
            reused = False
            session.refresh_jti = str(uuid.uuid4())
            tokens = _issue_tokens(session_user(work.session, user_id), session)
    if reused:
        raise NotAuthenticated("Refresh token is no longer valid")
    return tokens


def logout(user_id: int, session_id: str) -> None:
    with unit_of_work() as work:
        session = work.session.get(AuthSession, session_id)
        if session is not None and session.user_id == user_id and session.revoked_at is None:
            session.revoked_at = utcnow()
        work.after_commit(adapters().sessions.forget, session_id)
    log.info("user.logged_out", extra={"user_id": user_id, "session_id": session_id})


def change_password(user_id: int, session_id: str, current_password: str, new_password: str) -> int:
    """Change a password (the current one is required) and end every other session of the
    user: whoever had the old password, a copied cookie or a stolen token is signed out. The
    session making the change stays. Returns how many sessions ended."""
    user = get_user(user_id)
    if user is None:
        raise NotAuthenticated("Unknown user")
    hasher = password_hasher()
    try:
        hasher.verify(user.password_hash, current_password)
    except (VerificationError, InvalidHashError) as error:
        raise InvalidInput("Invalid current password", {"current_password": ["That is not your password."]}) from error
    if not accounts.is_password_valid(new_password, is_common_password):
        raise InvalidInput("Invalid password", {"password": [f"Must be {accounts.PASSWORD_RULE}."]})
    password_hash = hasher.hash(new_password)
    with unit_of_work() as work:
        account = session_user(work.session, user_id)
        account.password_hash = password_hash
        ended = end_other_sessions(work, user_id, keep_session_id=session_id)
    log.info("user.password_changed", extra={"user_id": user_id, "sessions_ended": ended})
    return ended


def end_other_sessions(work: UnitOfWork, user_id: int, keep_session_id: str | None) -> int:
    """Revoke the user's live sessions but `keep_session_id` (all of them when None), in the
    caller's unit of work; the session cache forgets them once it commits. For every change
    that must reach the user's other sessions at once: a password change, a role change."""
    now = utcnow()
    query = select(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if keep_session_id is not None:
        query = query.where(AuthSession.id != keep_session_id)
    ended = list(work.session.execute(query).scalars())
    for auth_session in ended:
        auth_session.revoked_at = now
        work.after_commit(adapters().sessions.forget, auth_session.id)
    return len(ended)


def is_session_live(session_id: str | None, user_id: int) -> bool:
    """Asked on every authenticated request (API tokens and browser pages alike): the session
    cache first, then one indexed lookup. A session is live when it is not revoked, not
    expired and its account is not disabled (disabling also revokes the sessions and clears
    them from the cache, so the answer changes at once).

    While Postgres is down or recovering, a session it found live in the last few minutes
    (and nobody logged out since) still counts, so a database restart does not sign out
    every buyer whose live answer just expired; one it never saw is a 503 (ServiceBusy)."""
    if not session_id:
        return False
    cache = adapters().sessions
    if cache.is_live(session_id, user_id):
        return True
    try:
        with database_errors_as_busy():
            row = db.session.execute(
                select(AuthSession.expires_at)
                .join(User, User.id == AuthSession.user_id)
                .where(
                    AuthSession.id == session_id,
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    User.disabled_at.is_(None),  # the one place "disabled" reaches tokens and pages
                )
            ).first()
    except ServiceBusy:
        if cache.was_live(session_id, user_id):
            log.warning("user.session_live_from_cache", extra={"user_id": user_id})
            return True
        raise
    is_live = row is not None and row.expires_at > utcnow()
    if is_live:
        cache.remember(session_id, user_id)
    return is_live


DEAD_SESSION_MESSAGE = "Invalid or revoked token"  # the 401 of a token whose session is not live


def require_live_session(session_id: str | None, user_id: int) -> None:
    """`is_session_live`, or NotAuthenticated: an access token's session, checked by the auth
    wiring on every request, or by the booking service in its claim's round trip."""
    if not is_session_live(session_id, user_id):
        raise NotAuthenticated(DEAD_SESSION_MESSAGE)


def session_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotAuthenticated("Unknown user")
    return user


def _live_session(session: Session, user_id: int, session_id: str) -> AuthSession:
    auth_session = session.get(AuthSession, session_id)
    if auth_session is None or auth_session.user_id != user_id or auth_session.revoked_at is not None:
        raise NotAuthenticated("Session has ended")
    if auth_session.expires_at <= utcnow():
        raise NotAuthenticated("Session has expired")
    return auth_session


def _issue_tokens(user: User, session: AuthSession) -> LoginResult:
    claims = {"sid": session.id, "role": user.role}
    access_token = create_access_token(identity=str(user.id), additional_claims=claims)
    with signing_refresh_token():
        refresh_token = create_refresh_token(
            identity=str(user.id), additional_claims={"sid": session.id, "jti": session.refresh_jti}
        )
    return LoginResult(user=user, access_token=access_token, refresh_token=refresh_token)


def get_user(user_id: int) -> User | None:
    return db.session.get(User, user_id)


# --- accounts, for admins -------------------------------------------------------------------


@dataclass(frozen=True)
class RoleChange:
    user: User
    previous_role: str
    sessions_ended: int

    @property
    def is_changed(self) -> bool:
        return self.user.role != self.previous_role


def list_users(
    actor: User, text: str | None = None, limit: int = limits.USERS_PAGE_SIZE_DEFAULT, cursor: str | None = None
) -> Page[User]:
    """Admins only: every account, newest first, a keyset page at a time. `text` is part of
    a username, name or e-mail address in any letter case (lower() folds ASCII letters on
    both backends; PostgreSQL may fold more under its locale)."""
    _require_admin(actor)
    return _user_page(text, limit, cursor)


def list_users_for_operator(
    text: str | None = None, limit: int = limits.USERS_PAGE_SIZE_MAX, cursor: str | None = None
) -> Page[User]:
    """`flask users list`: whoever runs commands on the server, as `create-admin`."""
    return _user_page(text, limit, cursor)


def _user_page(text: str | None, limit: int, cursor: str | None) -> Page[User]:
    assert 1 <= limit <= limits.USERS_PAGE_SIZE_MAX
    statement = select(User).order_by(User.id.desc()).limit(limit + 1)
    if cursor:
        statement = statement.where(User.id < cursor_id(decode_cursor(cursor)))
    if text:
        needle = text.lower()
        statement = statement.where(
            or_(
                func.lower(User.username, type_=String).contains(needle, autoescape=True),
                func.lower(User.name, type_=String).contains(needle, autoescape=True),
                func.lower(User.email, type_=String).contains(needle, autoescape=True),
            )
        )
    with database_errors_as_busy():
        rows = list(db.session.execute(statement).scalars())
    return page_of(rows, limit, lambda user: {"id": user.id})


def get_account(actor: User, user_id: int) -> User:
    """Admins only: one account, as the user list shows it (NotFound if there is none)."""
    _require_admin(actor)
    with database_errors_as_busy():
        user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    return user


def change_role(actor: User, user_id: int, role: str, actor_session_id: str | None = None) -> RoleChange:
    """An admin sets a user's role (guest, host or admin); the pages and the API call this.

    The last admin cannot be demoted (409, domain/accounts.role_change_errors). A change
    ends every session of the user (their browser cookies and API tokens die with them, as
    on a password change), so no request is served under the old role: the user logs in
    again as what they now are. An admin changing their own role keeps the session they
    made the change from (`actor_session_id`); their next request already has the new role."""
    _require_admin(actor)
    keep_session_id = actor_session_id if user_id == actor.id else None
    return _set_role(user_id, role, keep_session_id, actor_id=actor.id)


def set_role_by_operator(login: str, role: str) -> RoleChange:
    """`flask users set-role`: whoever runs commands on the server (as `create-admin`), by
    username or e-mail. The same rule and the same ended sessions as an admin's change."""
    return _set_role(_user_id_of(login), role, keep_session_id=None, actor_id=None)


def _user_id_of(login: str) -> int:
    """The account a command names by username or e-mail address (any letter case)."""
    with database_errors_as_busy():
        user_id = db.session.execute(
            select(User.id).where(or_(func.lower(User.username) == login.lower(), User.email == login.lower()))
        ).scalar_one_or_none()
    if user_id is None:
        raise NotFound("No user has this username or e-mail address")
    return user_id


# --- operator commands (flask users ...) ----------------------------------------------------


@dataclass(frozen=True)
class AccountChange:
    user: User
    is_changed: bool
    sessions_ended: int


def set_disabled_by_operator(login: str, is_disabled: bool) -> AccountChange:
    """`flask users disable|enable`. Disabling ends every session of the account in the same
    transaction (its API tokens and browser cookies stop working at once: the sessions are
    revoked and forgotten by the cache) and refuses its logins from then on (403). Enabling
    lets the user log in again; it revives no old session."""
    user_id = _user_id_of(login)
    with unit_of_work() as work:
        admins_counted = _lock_admins(work.session)  # as a role change does: the same turn
        user = work.session.execute(select(User).where(User.id == user_id).with_for_update()).scalar_one_or_none()
        if user is None:
            raise NotFound("No such user")
        is_changed = (user.disabled_at is None) == is_disabled
        errors = accounts.disable_errors(user.role, admins_counted) if is_changed and is_disabled else {}
        if errors:
            raise Conflict(accounts.LAST_ADMIN_DISABLE_RULE, errors, code="last_admin")
        if is_changed:
            user.disabled_at = utcnow() if is_disabled else None
        # Disabling again still ends any session, so the command always leaves none behind.
        ended = end_other_sessions(work, user_id, keep_session_id=None) if is_disabled else 0
    if is_changed:
        log.info(
            "user.disabled" if is_disabled else "user.enabled", extra={"user_id": user_id, "sessions_ended": ended}
        )
    return AccountChange(user=user, is_changed=is_changed, sessions_ended=ended)


def reset_password_by_operator(login: str, password: str | None = None) -> tuple[AccountChange, str]:
    """`flask users reset-password`: set a new password (a random one when none is given,
    shown once to the operator) and end every session of the account, as a user's own
    password change ends their other sessions. Returns the change and the password."""
    user_id = _user_id_of(login)
    new_password = password if password is not None else _random_password()
    if not accounts.is_password_valid(new_password, is_common_password):
        raise InvalidInput("Invalid password", {"password": [f"Must be {accounts.PASSWORD_RULE}."]})
    password_hash = password_hasher().hash(new_password)
    with unit_of_work() as work:
        user = session_user(work.session, user_id)
        user.password_hash = password_hash
        ended = end_other_sessions(work, user_id, keep_session_id=None)
    log.info("user.password_reset", extra={"user_id": user_id, "sessions_ended": ended})
    return AccountChange(user=user, is_changed=True, sessions_ended=ended), new_password


def _random_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


def revoke_sessions_by_operator(login: str) -> AccountChange:
    """`flask users revoke-sessions`: end every session of the account (a stolen token or
    cookie dies at once); the user can log in again."""
    user_id = _user_id_of(login)
    with unit_of_work() as work:
        user = session_user(work.session, user_id)
        ended = end_other_sessions(work, user_id, keep_session_id=None)
    log.info("user.sessions_revoked", extra={"user_id": user_id, "sessions_ended": ended})
    return AccountChange(user=user, is_changed=ended > 0, sessions_ended=ended)


def _set_role(user_id: int, role: str, keep_session_id: str | None, actor_id: int | None) -> RoleChange:
    if role not in accounts.ROLES:
        raise InvalidInput("Invalid role", {"role": [accounts.ROLE_RULE]})
    with unit_of_work() as work:
        # Every role change locks the first admins (by id) before anything else, so two changes
        # that could together demote the last admins take turns, and the second sees the first's.
        admins_counted = _lock_admins(work.session)
        if actor_id is not None and session_user(work.session, actor_id).role != accounts.ADMIN_ROLE:
            raise _not_admin()  # demoted since this request began
        user = work.session.execute(select(User).where(User.id == user_id).with_for_update()).scalar_one_or_none()
        if user is None:
            raise NotFound("No such user")
        previous_role = user.role
        errors = accounts.role_change_errors(previous_role, role, admins_counted, user.disabled_at is None)
        if errors:
            raise Conflict(accounts.LAST_ADMIN_RULE, errors, code="last_admin")
        ended = 0
        if role != previous_role:
            user.role = role
            ended = end_other_sessions(work, user_id, keep_session_id)
    if role != previous_role:
        log.info(
            "user.role_changed",
            extra={
                "user_id": user_id,
                "by_user_id": actor_id,
                "role": role,
                "previous_role": previous_role,
                "sessions_ended": ended,
            },
        )
    return RoleChange(user=user, previous_role=previous_role, sessions_ended=ended)


def _lock_admins(session: Session) -> int:
    """Lock the first enabled admins by id, up to ADMINS_COUNTED_MAX, and say how many there
    are (a disabled admin cannot act: it does not count). On SQLite the unit of work's BEGIN
    IMMEDIATE serializes the changes instead."""
    config = current_app.config
    statement = (
        select(User.id)
        .where(User.role == accounts.ADMIN_ROLE, User.disabled_at.is_(None))
        .order_by(User.id)
        .limit(accounts.ADMINS_COUNTED_MAX)
    )
    if not config.get("TESTING_SKIP_ADMIN_LOCK"):  # negative control of the concurrency test
        statement = statement.with_for_update()
    admins_counted = len(session.execute(statement).all())
    pause_s = config.get("TESTING_PAUSE_AFTER_ADMINS_S", 0)
    if pause_s:  # the concurrency test widens the window between the count and the change
        time.sleep(pause_s)
    return admins_counted


def _require_admin(actor: User) -> None:
    if actor.role != accounts.ADMIN_ROLE:
        raise _not_admin()


def _not_admin() -> Forbidden:
    return Forbidden("Only admins may see or change other users' accounts")
