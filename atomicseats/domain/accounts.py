"""The account rules: what a username and a password must be. The one home of both.

Pure: no I/O. services/users.py applies them to every account however it is created
(API, CLI, demo seed); the API schema documents them from here; the users table's
column lengths are the limits in domain/limits.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from atomicseats.domain.limits import (
    PASSWORD_LENGTH_MAX,
    PASSWORD_LENGTH_MIN,
    USERNAME_LENGTH_MAX,
    USERNAME_LENGTH_MIN,
)

# Matched in full (`fullmatch`): "gary\n" is not a username.
USERNAME_PATTERN = re.compile(rf"[A-Za-z0-9_.-]{{{USERNAME_LENGTH_MIN},{USERNAME_LENGTH_MAX}}}")
USERNAME_RULE = f"{USERNAME_LENGTH_MIN}-{USERNAME_LENGTH_MAX} letters, digits, _ . -"
PASSWORD_RULE = f"{PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters, not a commonly used password"


def is_username_valid(username: str) -> bool:
    return USERNAME_PATTERN.fullmatch(username) is not None


def is_password_valid(password: str, is_common: Callable[[str], bool]) -> bool:
    """Long enough, not too long, and not common. `is_common` is the caller's list of
    common passwords; it is asked only about a password of an allowed length."""
    return PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX and not is_common(password)


def new_account_errors(username: str, password: str, is_common: Callable[[str], bool]) -> dict[str, list[str]]:
    """The field errors of a new account (empty when it may be created)."""
    errors = {}
    if not is_username_valid(username):
        errors["username"] = [USERNAME_RULE]
    if not is_password_valid(password, is_common):
        errors["password"] = [f"Must be {PASSWORD_RULE}."]
    return errors


# --- roles ----------------------------------------------------------------------------------

ROLES = ("guest", "host", "admin")
ADMIN_ROLE = "admin"
ROLE_RULE = "Must be guest, host or admin."
LAST_ADMIN_RULE = "The last admin cannot be demoted: make another user an admin first."
LAST_ADMIN_DISABLE_RULE = "The last admin cannot be disabled: make another user an admin first."
# A role change needs to know only whether another admin would remain: counting (and
# locking) this many admins is enough to decide, however many there are.
ADMINS_COUNTED_MAX = 2


def role_change_errors(
    current_role: str, new_role: str, admins_counted: int, is_enabled: bool = True
) -> dict[str, list[str]]:
    """The field errors of changing a user's role (empty when it may be made).

    `admins_counted` is how many enabled admins there are now, counted up to
    ADMINS_COUNTED_MAX (the answer is the same for any larger count). Demoting the only one is
    refused: the platform would be left with nobody who can change a role. A disabled admin
    is not one of them: demoting it changes nothing for the others."""
    if new_role not in ROLES:
        return {"role": [ROLE_RULE]}
    assert current_role in ROLES
    if is_enabled and leaves_no_admin(current_role, new_role == ADMIN_ROLE, admins_counted):
        return {"role": [LAST_ADMIN_RULE]}
    return {}


def disable_errors(current_role: str, admins_counted: int) -> dict[str, list[str]]:
    """The errors of disabling an account: a disabled admin cannot act, so disabling the only
    enabled admin is refused as demoting them is."""
    assert current_role in ROLES
    if leaves_no_admin(current_role, False, admins_counted):
        return {"login": [LAST_ADMIN_DISABLE_RULE]}
    return {}


def leaves_no_admin(current_role: str, remains_admin: bool, admins_counted: int) -> bool:
    """Whether a change to one enabled user (a new role, or being disabled) leaves no enabled
    admin: the one rule behind both refusals."""
    assert admins_counted >= 0
    assert current_role != ADMIN_ROLE or admins_counted >= 1  # an enabled admin counts itself
    return current_role == ADMIN_ROLE and not remains_admin and min(admins_counted, ADMINS_COUNTED_MAX) <= 1


def is_admin(role: str) -> bool:
    """Whether an account of this role sees and manages everything (every request, booking and
    event)."""
    return role == ADMIN_ROLE


def may_manage_event(role: str, user_id: int, host_id: int) -> bool:
    """An event's host, or an admin, manages it (edits, roster, check-in); nobody else."""
    return is_admin(role) or user_id == host_id
