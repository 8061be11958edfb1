"""Keyset pagination shared by every list (history, catalogue, roster, analytics).

A page is at most `limit` rows read in a fixed order, plus whether more follow. The
cursor names the last row shown by its sort key (never an offset), so rows created or
removed between two pages neither repeat nor shift the rest. On the wire it is opaque:
unpadded base64url of a small JSON object, say {"id": 42}; each list decodes the keys
it wrote with `cursor_id` / `cursor_time` / `cursor_choice`, and anything else is a
400 naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from atomicseats.errors import InvalidInput

CURSOR_ID_MAX = 2**63 - 1  # a BIGINT: SQLite and PostgreSQL bind nothing wider
CURSOR_TEXT_CHARS_MAX = 64  # a cursor's text values are short keys and ISO times

Item = TypeVar("Item")
Position = Mapping[str, int | str | datetime]  # what a cursor names: the last row's sort key


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: list[Item]
    has_more: bool
    next_cursor: str | None

    @property
    def page_info(self) -> Page[Item]:
        """What `pageInfo` shows (has_more, next_cursor): the page itself, for the schemas."""
        return self


def page_of(rows: Sequence[Item], limit: int, position_of: Callable[[Item], Position]) -> Page[Item]:
    """The first `limit` of `rows` (read with `limit + 1`, so one more says a next page exists)."""
    assert limit >= 1
    has_more = len(rows) > limit
    items = list(rows[:limit])
    return Page(items=items, has_more=has_more, next_cursor=encode_cursor(position_of(items[-1])) if has_more else None)


def encode_cursor(position: Position) -> str:
    values = {
        key: value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
        for key, value in position.items()
    }
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, object]:
    """The JSON object a cursor carries; not one this API issued → 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise _invalid() from error
    if not isinstance(value, dict):
        raise _invalid()
    return value


def cursor_id(position: Mapping[str, object], key: str = "id") -> int:
    value = position.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= CURSOR_ID_MAX:
        raise _invalid()
    return value


def cursor_time(position: Mapping[str, object], key: str) -> datetime:
    value = position.get(key)
    if not isinstance(value, str) or len(value) > CURSOR_TEXT_CHARS_MAX:
        raise _invalid()
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment.astimezone(UTC)
    except (OverflowError, ValueError) as error:
        raise _invalid() from error


def cursor_choice(position: Mapping[str, object], key: str, choices: tuple[str, ...]) -> str:
    value = position.get(key)
    if value not in choices or not isinstance(value, str):
        raise _invalid()
    return value


def _invalid() -> InvalidInput:
    return InvalidInput("Invalid cursor", {"cursor": ["Not a cursor this API issued."]})
