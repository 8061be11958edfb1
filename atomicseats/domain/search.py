"""Text search keys: the catalogue's `q` matches names and venues in any letter case, in
every script, the same on SQLite and PostgreSQL (whose lower() and ILIKE fold ASCII only
under the C locale: "ZÜRICH" would not find "Zürich").

An event stores the key of its name and venue; a query's key is looked for in it as a
plain substring. Keys are NFKC-normalised case folds (so "Straße" finds "STRASSE", and a
full-width "Ｊａｚｚ" finds "jazz").
"""

from __future__ import annotations

import unicodedata

SEARCH_TEXT_SEPARATOR = "\n"  # never inside a key: names and venues are single lines


def search_key(text: str) -> str:
    """The caseless form of `text`: compare keys, never the texts."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def event_search_text(name: str, venue: str) -> str:
    """What an event is found by: its name's key and its venue's, on separate lines."""
    assert SEARCH_TEXT_SEPARATOR not in name
    assert SEARCH_TEXT_SEPARATOR not in venue
    return search_key(name) + SEARCH_TEXT_SEPARATOR + search_key(venue)
