"""The role rule (domain/accounts.role_change_errors): the last admin cannot be demoted.
Examples, then Hypothesis: any run of changes the rule allows keeps at least one admin, and
the rule refuses only what would leave none."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.domain.accounts import (
    ADMINS_COUNTED_MAX,
    LAST_ADMIN_DISABLE_RULE,
    LAST_ADMIN_RULE,
    ROLE_RULE,
    ROLES,
    disable_errors,
    role_change_errors,
)

roles = st.sampled_from(ROLES)


def test_the_only_admin_cannot_be_demoted_but_may_stay_admin() -> None:
    assert role_change_errors("admin", "host", admins_counted=1) == {"role": [LAST_ADMIN_RULE]}
    assert role_change_errors("admin", "guest", admins_counted=1) == {"role": [LAST_ADMIN_RULE]}
    assert role_change_errors("admin", "admin", admins_counted=1) == {}


def test_with_another_admin_either_may_be_demoted() -> None:
    assert role_change_errors("admin", "guest", admins_counted=2) == {}
    assert role_change_errors("guest", "admin", admins_counted=1) == {}
    assert role_change_errors("host", "guest", admins_counted=1) == {}


def test_an_unknown_role_is_refused_by_name() -> None:
    assert role_change_errors("guest", "superuser", admins_counted=1) == {"role": [ROLE_RULE]}
    assert role_change_errors("guest", "Admin", admins_counted=1) == {"role": [ROLE_RULE]}


@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5), roles), max_size=60))
def test_any_run_of_allowed_changes_keeps_an_admin_and_only_emptying_changes_are_refused(users_count, changes):
    accounts = ["admin"] + ["guest"] * (users_count - 1)  # the platform starts with one admin
    for index, new_role in changes:
        index %= users_count
        admins = accounts.count("admin")
        # The service counts at most ADMINS_COUNTED_MAX admins (those it locks).
        errors = role_change_errors(accounts[index], new_role, min(admins, ADMINS_COUNTED_MAX))
        after = [*accounts[:index], new_role, *accounts[index + 1 :]]
        assert (errors == {}) == (after.count("admin") >= 1)  # the reference: refused iff no admin would remain
        if not errors:
            accounts = after
        assert accounts.count("admin") >= 1


@given(roles, roles, st.integers(1, 1000))
def test_counting_at_most_two_admins_decides_as_counting_them_all(current_role, new_role, admins):
    capped = min(admins, ADMINS_COUNTED_MAX)
    assert role_change_errors(current_role, new_role, capped) == role_change_errors(current_role, new_role, admins)


def test_the_only_enabled_admin_cannot_be_disabled() -> None:
    assert disable_errors("admin", admins_counted=1) == {"login": [LAST_ADMIN_DISABLE_RULE]}
    assert disable_errors("admin", admins_counted=2) == {}
    assert disable_errors("host", admins_counted=1) == {}


def test_a_disabled_admin_may_be_demoted_whatever_the_count() -> None:
    assert role_change_errors("admin", "guest", admins_counted=1, is_enabled=False) == {}


# One account: (role, enabled). An action: ("role", new role) or ("disable",) or ("enable",).
actions = st.one_of(st.tuples(st.just("role"), roles), st.tuples(st.just("disable")), st.tuples(st.just("enable")))


@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5), actions), max_size=60))
def test_any_run_of_allowed_role_changes_and_disables_keeps_an_enabled_admin(users_count, changes):
    accounts = [("admin", True)] + [("guest", True)] * (users_count - 1)

    def enabled_admins(state) -> int:
        return sum(1 for role, enabled in state if role == "admin" and enabled)

    for index, action in changes:
        index %= users_count
        role, enabled = accounts[index]
        counted = min(enabled_admins(accounts), ADMINS_COUNTED_MAX)
        if action[0] == "role":
            errors = role_change_errors(role, action[1], counted, enabled)
            after = [*accounts[:index], (action[1], enabled), *accounts[index + 1 :]]
        elif action[0] == "disable":
            errors = disable_errors(role, counted) if enabled else {}
            after = [*accounts[:index], (role, False), *accounts[index + 1 :]]
        else:
            errors, after = {}, [*accounts[:index], (role, True), *accounts[index + 1 :]]
        assert (errors == {}) == (enabled_admins(after) >= 1)  # refused iff no enabled admin would remain
        if not errors:
            accounts = after
