"""`flask users list|disable|enable|reset-password|revoke-sessions` (issue 11 point 8), on
SQLite and PostgreSQL, with the Redis session cache on (as in full mode): a disabled user's
API tokens and browser session stop working at once, and logging in is refused with a 403
in words on the API and the login page. `create-admin` and `set-role`: tests/api/test_auth.py
and tests/services/test_accounts_admin.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from tests.conftest import fresh_app
from tests.helpers import PASSWORD, account, login

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def server(database_url, redis_url) -> Iterator[Flask]:
    """No app context held around requests (Flask-WTF keeps a request's CSRF token in `g`)."""
    with fresh_app(database_url, hold_context=False, REDIS_URL=redis_url) as application:
        yield application


def users_command(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["users", *args])


def browser_sign_in(client, username: str, password: str = PASSWORD):
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login", data={"csrf_token": token, "login": username, "password": password})


def is_signed_in(client) -> bool:
    return "Signed in as" in client.get("/").get_data(as_text=True)


def bookings_status(client, guest) -> int:
    return client.get("/api/user/bookings", headers=guest.headers).status_code


def test_users_list_shows_every_account_with_its_role_and_status(server):
    client = server.test_client()
    guests = [account(client) for _ in range(3)]
    host = account(client, "host")
    assert users_command(server, "disable", guests[0].username).exit_code == 0

    listed = users_command(server, "list")

    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line.split() for line in listed.output.splitlines()[1:-1]}
    assert set(rows) == {guest.username for guest in guests} | {host.username}
    assert rows[host.username][2:5] == [host.email, "host", "active"]
    assert rows[guests[0].username][3:5] == ["guest", "disabled"]
    assert listed.output.splitlines()[-1] == "4 users"
    searched = users_command(server, "list", "--search", host.username.upper())
    assert [line.split()[1] for line in searched.output.splitlines()[1:-1]] == [host.username]
    newest = users_command(server, "list", "--limit", "2")
    assert [line.split()[1] for line in newest.output.splitlines()[1:-1]] == [host.username, guests[2].username]


def test_disabling_ends_tokens_and_browser_sessions_at_once_and_refuses_logins_in_words(server):
    client, browser = server.test_client(), server.test_client()
    guest = account(client)
    assert bookings_status(client, guest) == 200  # the process has verified (and cached) the token
    assert browser_sign_in(browser, guest.username).status_code == 303
    assert is_signed_in(browser)

    disabled = users_command(server, "disable", guest.email.upper())

    assert disabled.exit_code == 0, disabled.output
    assert disabled.output.strip() == f"{guest.username} disabled (2 sessions ended)"
    assert bookings_status(client, guest) == 401
    assert client.post("/api/user/refresh", json={"refreshToken": guest.refresh_token}).status_code == 401
    assert not is_signed_in(browser)
    refused = client.post("/api/user/login", json={"username": guest.username, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.get_json()["message"] == "This account is disabled. Ask an administrator to enable it."
    page = browser_sign_in(browser, guest.username)
    assert page.status_code == 403
    assert "This account is disabled. Ask an administrator to enable it." in page.get_data(as_text=True)
    assert not is_signed_in(browser)
    wrong = client.post("/api/user/login", json={"username": guest.username, "password": "not the password"})
    assert wrong.status_code == 401  # without the password nobody learns the account is disabled
    again = users_command(server, "disable", guest.username)
    assert again.output.strip() == f"{guest.username} was already disabled (0 sessions ended)"

    enabled = users_command(server, "enable", guest.username)

    assert enabled.output.strip() == f"{guest.username} enabled"
    assert bookings_status(client, guest) == 401  # no old session comes back
    assert bookings_status(client, login(client, guest.username)) == 200
    assert browser_sign_in(browser, guest.username).status_code == 303
    assert users_command(server, "enable", guest.username).output.strip() == f"{guest.username} was already enabled"


def test_reset_password_sets_a_random_or_given_password_and_ends_every_session(server):
    client = server.test_client()
    guest = account(client)

    reset = users_command(server, "reset-password", guest.username)

    assert reset.exit_code == 0, reset.output
    first, second = reset.output.strip().splitlines()
    assert first == f"{guest.username}: password reset (1 session ended)"
    new_password = second.removeprefix("new password: ")
    assert len(new_password) >= 20
    assert bookings_status(client, guest) == 401
    assert client.post("/api/user/login", json={"username": guest.username, "password": PASSWORD}).status_code == 401
    assert bookings_status(client, login(client, guest.username, new_password)) == 200

    chosen = users_command(server, "reset-password", guest.username, "--password", "a chosen long passphrase")
    assert chosen.output.strip() == f"{guest.username}: password reset (1 session ended)"  # no password echoed
    login(client, guest.username, "a chosen long passphrase")
    weak = users_command(server, "reset-password", guest.username, "--password", "password")
    assert weak.exit_code == 1
    assert "Invalid password" in weak.output
    login(client, guest.username, "a chosen long passphrase")  # unchanged by the refused reset


def test_revoke_sessions_ends_every_session_and_the_user_may_log_in_again(server):
    client, browser = server.test_client(), server.test_client()
    guest, other = account(client), account(client)
    second = login(client, guest.username)
    browser_sign_in(browser, guest.username)

    revoked = users_command(server, "revoke-sessions", guest.username)

    assert revoked.exit_code == 0, revoked.output
    assert revoked.output.strip() == f"{guest.username}: 3 sessions ended"
    assert bookings_status(client, guest) == bookings_status(client, second) == 401
    assert not is_signed_in(browser)
    assert bookings_status(client, other) == 200  # nobody else's
    assert bookings_status(client, login(client, guest.username)) == 200


@pytest.mark.parametrize("command", ["disable", "enable", "reset-password", "revoke-sessions", "set-role"])
def test_every_command_names_an_unknown_user_in_words(server, command):
    args = [command, "nobody"] + (["host"] if command == "set-role" else [])
    result = users_command(server, *args)
    assert result.exit_code == 1
    assert "No user has this username or e-mail address" in result.output


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(server):
    """A disabled admin cannot act: disabling the only enabled admin is refused as demoting
    them is, and a disabled admin no longer counts as the one that remains."""
    client = server.test_client()
    with server.app_context():
        first, second = account(client, "admin"), account(client, "admin")
    assert users_command(server, "disable", first.username).exit_code == 0
    refused = users_command(server, "disable", second.username)
    assert refused.exit_code == 1 and "The last admin cannot be disabled" in refused.output, refused.output
    demoted = users_command(server, "set-role", second.username, "guest")
    assert demoted.exit_code == 1 and "The last admin cannot be demoted" in demoted.output, demoted.output
    assert users_command(server, "set-role", first.username, "guest").exit_code == 0  # changes nothing for others
    assert bookings_status(client, second) == 200  # still signed in: nothing happened to the last admin
