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
