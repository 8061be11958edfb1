"""Search keys: a text is found by any part of it, in any letter case, in any script."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.domain.search import SEARCH_TEXT_SEPARATOR, event_search_text, search_key

# One line of text, as names, venues and queries are (no control characters).
line = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)
# Letters whose upper and lower cases map back and forth (the Turkish dotless i does not).
cased = st.text(st.sampled_from(string.ascii_letters + "äöüéèàçñøåæœßÄÖÜÉÈÀÇÑØÅÆŒ ΑΒΓαβγДЖЯджя"), max_size=40)


@given(line)
def test_a_key_is_its_own_key(text):
    assert search_key(search_key(text)) == search_key(text)


@given(cased)
def test_letter_case_never_matters(text):
    assert search_key(text.upper()) == search_key(text.lower()) == search_key(text)


@given(cased, cased, cased)
def test_every_part_of_a_name_finds_the_event(before, part, after):
    assert search_key(part) in event_search_text(before + part.upper() + after, "Hall")


@given(line, line)
def test_name_and_venue_stay_apart(name, venue):
    stored = event_search_text(name, venue)

    assert stored.split(SEARCH_TEXT_SEPARATOR) == [search_key(name), search_key(venue)]


def test_examples():
    assert search_key("ZÜRICH") == search_key("zürich")
    assert search_key("Straße") == search_key("STRASSE")
    assert search_key("Ｊａｚｚ") == "jazz"
