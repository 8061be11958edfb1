"""Browser sign-in: Flask-Login over the platform's own login sessions.

The signed session cookie holds the user id and the id of an AuthSession row (the same
store token logins use, with the Redis session cache in front). Every page asks
`users.is_session_live` about it, so logging out (which revokes the row and forgets the
cached answer) kills the cookie everywhere, a copied one included. Logging in starts from
an empty cookie session (no state, CSRF token included, survives a login) and a new
AuthSession id: the session id rotates on every login.
"""

from __future__ import annotations

from flask import request, session
from flask_login import AnonymousUserMixin, LoginManager, current_user, login_user, logout_user

from atomicseats.errors import ServiceBusy
from atomicseats.services import users

_ID_SEPARATOR = ":"
_UNREADABLE = "atomicseats.session_unreadable"  # set on a request whose session could not be read


class SignedIn:
    """The signed-in visitor: their account, read once per request, and their session id."""

    is_active = True
    is_anonymous = False
    is_authenticated = True

    def __init__(self, account, session_id: str) -> None:
        self.account = account
        self.session_id = session_id

    @property
    def id(self) -> int:
        return self.account.id

    @property
    def role(self) -> str:
        return self.account.role

    @property
    def name(self) -> str:
        return self.account.name

    def get_id(self) -> str:
        return f"{self.account.id}{_ID_SEPARATOR}{self.session_id}"


class Visitor(AnonymousUserMixin):
    role = None
    name = None


def install(login_manager: LoginManager) -> None:
    login_manager.user_loader(_load_signed_in)
    login_manager.anonymous_user = Visitor
    login_manager.login_view = "web.login"
    login_manager.login_message = "Log in to continue."
    login_manager.login_message_category = "info"


def _load_signed_in(cookie_id: str) -> SignedIn | None:
    """The cookie's `<user id>:<session id>`, if that session is still live (not logged out,
    not expired) and the account still exists. The role is read from the account on every
    request, so a role change counts from the user's next page."""
    user_part, _, session_id = cookie_id.partition(_ID_SEPARATOR)
    if not user_part.isdigit() or not session_id:
        return None
    user_id = int(user_part)
    if request.environ.get(_UNREADABLE):  # this request met an outage already: its error page asks no more
        return None
    try:
        if not users.is_session_live(session_id, user_id):
            return None
        account = users.get_user(user_id)
    except ServiceBusy:  # the 503 page in words; rendering it reads the visitor again, as anonymous
        request.environ[_UNREADABLE] = True
        raise
    return None if account is None else SignedIn(account, session_id)


def sign_in(login: str, password: str) -> SignedIn:
    """Check the credentials (NotAuthenticated if wrong), then open a fresh session."""
    account = users.authenticate(login, password)
    session_id = users.login_in_browser(account.id)
    session.clear()  # nothing from before the login carries over (a fixed session, an old CSRF token)
    signed_in = SignedIn(account, session_id)
    login_user(signed_in)
    return signed_in


def sign_out() -> None:
    """End the session server-side, then drop the cookie's content."""
    if current_user.is_authenticated:
        users.logout(current_user.id, current_user.session_id)
    logout_user()
    session.clear()
