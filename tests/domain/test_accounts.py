"""The account rules (domain/accounts.py): examples at the limits, and Hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.domain.accounts import (
    PASSWORD_RULE,
    USERNAME_RULE,
    is_password_valid,
    is_username_valid,
    new_account_errors,
)
from atomicseats.domain.limits import (
    PASSWORD_LENGTH_MAX,
    PASSWORD_LENGTH_MIN,
    USERNAME_LENGTH_MAX,
    USERNAME_LENGTH_MIN,
)

COMMON = frozenset({"password123", "qwertyuiop"})


def is_common(password: str) -> bool:
    return password in COMMON


def test_usernames_at_and_past_the_limits() -> None:
    assert is_username_valid("g" * USERNAME_LENGTH_MIN)
    assert is_username_valid("g" * USERNAME_LENGTH_MAX)
    assert is_username_valid("gary_b.2-x")
    assert not is_username_valid("g" * (USERNAME_LENGTH_MIN - 1))
    assert not is_username_valid("g" * (USERNAME_LENGTH_MAX + 1))
    assert not is_username_valid("gary\n")
    assert not is_username_valid("gary b")


def test_passwords_at_and_past_the_limits() -> None:
    assert is_password_valid("p" * PASSWORD_LENGTH_MIN, is_common)
    assert is_password_valid("p" * PASSWORD_LENGTH_MAX, is_common)
    assert not is_password_valid("p" * (PASSWORD_LENGTH_MIN - 1), is_common)
    assert not is_password_valid("p" * (PASSWORD_LENGTH_MAX + 1), is_common)
    assert not is_password_valid("qwertyuiop", is_common)


def test_new_account_errors_name_each_broken_rule() -> None:
    assert new_account_errors("gary", "a-long-passphrase", is_common) == {}
    assert new_account_errors("g", "password123", is_common) == {
        "username": [USERNAME_RULE],
        "password": [f"Must be {PASSWORD_RULE}."],
    }


@given(st.text(max_size=PASSWORD_LENGTH_MAX + 20))
def test_the_common_list_is_asked_only_about_passwords_of_an_allowed_length(password: str) -> None:
    asked: list[str] = []

    def recording_is_common(candidate: str) -> bool:
        asked.append(candidate)
        return False

    is_valid = is_password_valid(password, recording_is_common)
    is_length_allowed = PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX
    assert is_valid == is_length_allowed
    assert asked == ([password] if is_length_allowed else [])
