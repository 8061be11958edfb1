"""Ticket codes and the check-in outcome (domain/tickets.py): examples and Hypothesis properties."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from atomicseats.domain import tickets
from atomicseats.domain.tickets import BookingFacts, CheckInOutcome, Ticket

KEY = tickets.code_key("test secret")
OTHER_KEY = tickets.code_key("another secret")

ticket_strategy = st.builds(
    Ticket,
    booking_id=st.integers(1, tickets.BOOKING_ID_MAX),
    seat_no=st.integers(1, tickets.SEAT_NO_MAX),
)
keys = st.binary(min_size=1, max_size=64).map(tickets.code_key)


def test_a_code_reads_as_five_groups_of_five_unambiguous_characters():
    code = tickets.ticket_code(KEY, Ticket(42, 3))
    groups = code.split("-")
    assert [len(group) for group in groups] == [5, 5, 5, 5, 5]
    assert not set("".join(groups)) - set(tickets.ALPHABET)
    assert not set(code) & set("ILOU")


@given(keys, ticket_strategy)
def test_a_code_round_trips(key, ticket):
    assert tickets.parse_ticket_code(key, tickets.ticket_code(key, ticket)) == ticket


@given(ticket_strategy)
def test_a_code_reads_back_however_it_is_typed(ticket):
    code = tickets.ticket_code(KEY, ticket)
    typed = f"  {code.lower().replace('-', ' ').replace('0', 'o').replace('1', 'l')}\t"
    assert tickets.parse_ticket_code(KEY, typed) == ticket
    assert tickets.parse_ticket_code(KEY, code.replace("-", "")) == ticket
    assert tickets.normalized_code(typed.strip()) == code


@given(ticket_strategy, st.integers(0, tickets.CODE_CHARS - 1), st.sampled_from(tickets.ALPHABET))
def test_any_single_character_change_is_refused(ticket, position, replacement):
    chars = tickets.ticket_code(KEY, ticket).replace("-", "")
    assume(chars[position] != replacement)
    changed = chars[:position] + replacement + chars[position + 1 :]
    assert tickets.parse_ticket_code(KEY, changed) is None


@given(ticket_strategy, st.integers(0, tickets.CODE_CHARS - 2))
def test_two_swapped_neighbours_are_refused(ticket, position):
    chars = tickets.ticket_code(KEY, ticket).replace("-", "")
    assume(chars[position] != chars[position + 1])
    swapped = chars[:position] + chars[position + 1] + chars[position] + chars[position + 2 :]
    assert tickets.parse_ticket_code(KEY, swapped) is None


@given(ticket_strategy)
def test_another_key_refuses_the_code(ticket):
    assert tickets.parse_ticket_code(OTHER_KEY, tickets.ticket_code(KEY, ticket)) is None


@given(st.lists(ticket_strategy, min_size=2, max_size=50, unique=True))
def test_no_two_tickets_share_a_code(many):
    codes = {tickets.ticket_code(KEY, ticket) for ticket in many}
    assert len(codes) == len(many)


def test_every_seat_of_a_booking_has_its_own_code():
    codes = [tickets.ticket_code(KEY, ticket) for ticket in tickets.tickets_of(7, 10)]
    assert len(set(codes)) == 10
    assert [tickets.parse_ticket_code(KEY, code) for code in codes] == tickets.tickets_of(7, 10)


@given(st.text(max_size=80))
def test_random_text_is_not_a_code(text):
    assert tickets.parse_ticket_code(KEY, text) is None


def test_what_is_not_a_code():
    code = tickets.ticket_code(KEY, Ticket(1, 1))
    for text in ("", "-----", code + "0", code[:-1], "U" + code[1:], code + " " * 100, "é" * 25):
        assert tickets.parse_ticket_code(KEY, text) is None, text


# --- the check-in outcome ----------------------------------------------------------------

facts = st.builds(BookingFacts, event_id=st.integers(1, 5), seats=st.integers(1, 10), is_cancelled=st.booleans())


def reference_outcome(event_id, ticket, booking, was_inserted):
    """Obviously right, in the words of the brief."""
    if ticket is None or booking is None:
        return CheckInOutcome.UNKNOWN
    if booking.event_id != event_id:
        return CheckInOutcome.WRONG_EVENT
    if not 1 <= ticket.seat_no <= booking.seats:
        return CheckInOutcome.UNKNOWN
    if booking.is_cancelled:
        return CheckInOutcome.CANCELLED
    return CheckInOutcome.ADMITTED if was_inserted else CheckInOutcome.ALREADY_CHECKED_IN


@given(st.integers(1, 5), st.none() | ticket_strategy, st.none() | facts, st.booleans())
def test_the_check_in_outcome_agrees_with_the_reference(event_id, ticket, booking, was_inserted):
    refusal = tickets.check_in_refusal(event_id, ticket, booking)
    if refusal is not None:
        assert refusal == reference_outcome(event_id, ticket, booking, False)
        return  # the service never inserts for a refused ticket
    assert tickets.check_in_outcome(event_id, ticket, booking, was_inserted) == reference_outcome(
        event_id, ticket, booking, was_inserted
    )


@given(st.integers(1, 5), ticket_strategy, facts, st.booleans())
def test_only_a_live_ticket_of_this_event_is_ever_admitted(event_id, ticket, booking, was_inserted):
    if tickets.check_in_refusal(event_id, ticket, booking) is None:
        outcome = tickets.check_in_outcome(event_id, ticket, booking, was_inserted)
        assert (outcome is CheckInOutcome.ADMITTED) == was_inserted
        assert booking.event_id == event_id and not booking.is_cancelled and ticket.seat_no <= booking.seats


def test_a_code_shows_neither_the_booking_id_nor_how_many_were_sold():
    codes = [tickets.ticket_code(KEY, Ticket(booking_id, 1)) for booking_id in range(1, 41)]
    assert len({code[:5] for code in codes}) == 40  # no shared prefix: the ids are masked
    assert not any(code.startswith("00000") for code in codes)
