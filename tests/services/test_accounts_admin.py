"""Admins' user list and role changes (services/users.py), on SQLite and PostgreSQL: search
by username, name or e-mail, keyset pages, the last-admin rule, and a change ending the
user's sessions (browser and API alike: the same session rows)."""

from __future__ import annotations

import pytest

from atomicseats.domain.accounts import LAST_ADMIN_RULE
from atomicseats.errors import Conflict, Forbidden, InvalidInput, NotFound
from atomicseats.models import User
from atomicseats.services import users
from tests.helpers import PASSWORD


def make_user(username: str, role: str = "guest", name: str | None = None) -> User:
    if role == "admin":
        return users.create_admin(username, name or f"Admin {username}", f"{username}@example.test", PASSWORD)
    return users.register_user(username, name or f"User {username}", f"{username}@example.test", PASSWORD, role)


def every_user(actor: User, text: str | None = None, limit: int = 2) -> list[str]:
    seen, cursor = [], None
    for _ in range(100):
        page = users.list_users(actor, text, limit, cursor)
        seen += [user.username for user in page.items]
        if not page.has_more:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the list did not end")


def test_the_list_walks_every_user_newest_first_a_page_at_a_time(app):
    admin = make_user("root", "admin")
    for number in range(5):
        make_user(f"walker{number}")
    assert every_user(admin) == ["walker4", "walker3", "walker2", "walker1", "walker0", "root"]
    first = users.list_users(admin, limit=5)
    assert first.has_more and len(first.items) == 5
    assert not users.list_users(admin, limit=6).has_more


def test_the_list_searches_usernames_names_and_emails_in_any_letter_case(app):
    admin = make_user("root", "admin")
    make_user("Gary_b", name="Gary Brown")
    make_user("hedda", "host", name="Hedda Gabler")
    make_user("percent", name="100% Sure")
    assert every_user(admin, "GARY") == ["Gary_b"]
    assert every_user(admin, "gabler") == ["hedda"]
    assert every_user(admin, "hedda@EXAMPLE") == ["hedda"]
    assert every_user(admin, "%") == ["percent"]  # a LIKE wildcard is a plain character
    assert every_user(admin, "_b") == ["Gary_b"]
    assert every_user(admin, "nobody-at-all") == []


def test_only_admins_list_users_and_a_foreign_cursor_is_refused(app):
    host = make_user("hedda", "host")
    with pytest.raises(Forbidden):
        users.list_users(host)
    admin = make_user("root", "admin")
    with pytest.raises(InvalidInput) as refused:
        users.list_users(admin, cursor="not-a-cursor")
    assert "cursor" in refused.value.errors


def test_a_role_change_ends_every_session_of_the_user(app):
    admin = make_user("root", "admin")
    guest = make_user("gail")
    token_login = users.login(guest.id)
    browser_session = users.login_in_browser(guest.id)
    token_session = users.login(guest.id)
    del token_login

    change = users.change_role(admin, guest.id, "host")

    assert (change.previous_role, change.user.role, change.sessions_ended) == ("guest", "host", 3)
    assert users.get_user(guest.id).role == "host"
    assert not users.is_session_live(browser_session, guest.id)
    fresh = users.login_in_browser(guest.id)  # logging in again works, as a host
    assert users.is_session_live(fresh, guest.id)
    del token_session


def test_the_last_admin_cannot_be_demoted_and_nothing_changes(app):
    admin = make_user("root", "admin")
    session_id = users.login_in_browser(admin.id)
    for role in ("host", "guest"):
        with pytest.raises(Conflict) as refused:
            users.change_role(admin, admin.id, role, session_id)
        assert refused.value.message == LAST_ADMIN_RULE
        assert refused.value.errors == {"role": [LAST_ADMIN_RULE]}
    assert users.get_user(admin.id).role == "admin"
    assert users.is_session_live(session_id, admin.id)


def test_an_admin_may_step_down_while_another_remains_keeping_this_session_only(app):
    first = make_user("root", "admin")
    second = make_user("deputy", "admin")
    here = users.login_in_browser(first.id)
    elsewhere = users.login_in_browser(first.id)

    change = users.change_role(first, first.id, "host", here)

    assert change.sessions_ended == 1
    assert users.is_session_live(here, first.id)
    assert not users.is_session_live(elsewhere, first.id)
    with pytest.raises(Forbidden):  # a host now: no more role changes
        users.change_role(users.get_user(first.id), second.id, "guest")
    with pytest.raises(Conflict):  # and the deputy is the last admin
        users.change_role(second, second.id, "guest")


def test_the_same_role_again_changes_nothing_and_keeps_the_sessions(app):
    admin = make_user("root", "admin")
    host = make_user("hedda", "host")
    session_id = users.login_in_browser(host.id)
    change = users.change_role(admin, host.id, "host")
    assert not change.is_changed and change.sessions_ended == 0
    assert users.is_session_live(session_id, host.id)


def test_a_role_change_is_refused_to_non_admins_for_unknown_roles_and_users(app):
    admin = make_user("root", "admin")
    host = make_user("hedda", "host")
    guest = make_user("gail")
    with pytest.raises(Forbidden):
        users.change_role(host, guest.id, "host")
    with pytest.raises(Forbidden):  # not even themselves
        users.change_role(host, host.id, "admin")
    with pytest.raises(InvalidInput) as refused:
        users.change_role(admin, guest.id, "superuser")
    assert list(refused.value.errors) == ["role"]
    with pytest.raises(NotFound):
        users.change_role(admin, 987654, "host")
    assert [users.get_user(user.id).role for user in (host, guest)] == ["host", "guest"]


def test_the_command_line_shares_the_rule(app):
    admin = make_user("root", "admin")
    make_user("gail")
    runner = app.test_cli_runner()
    promoted = runner.invoke(args=["users", "set-role", "GAIL@example.test", "admin"])
    assert promoted.exit_code == 0, promoted.output
    assert "gail: guest -> admin (0 sessions ended)" in promoted.output
    assert runner.invoke(args=["users", "set-role", "root", "guest"]).exit_code == 0
    refused = runner.invoke(args=["users", "set-role", "gail", "host"])
    assert refused.exit_code != 0 and LAST_ADMIN_RULE in refused.output
    unknown = runner.invoke(args=["users", "set-role", "nobody", "host"])
    assert unknown.exit_code != 0 and "No user" in unknown.output
    assert users.get_user(admin.id).role == "guest"


def test_only_admins_read_the_platform_analytics(app):
    from atomicseats.services import analytics

    with pytest.raises(Forbidden):
        analytics.platform_analytics(make_user("hedda", "host"))
    assert analytics.platform_analytics(make_user("root", "admin")).totals["admins"] == 1
