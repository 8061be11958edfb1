"""The catalogue (`GET /api/events/all`) and the host roster at any size: keyset pages,
filters, and nothing hidden by a cap. Big setups are bulk-inserted rows, not HTTP calls."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.api.support import (
    assert_error,
    assert_success,
    delete_event,
    insert_bookings,
    insert_events,
    insert_waitlist,
    roster,
    update_event,
)
from tests.helpers import account, create_event, unchanged

PAGES_MAX = 200


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def listing(client, headers: dict | None = None, **params) -> dict:
    return assert_success(client.get("/api/events/all", query_string=params, headers=headers or {}))


def walk(client, between_pages=None, **params) -> list[dict]:
    """Every item of every page, following nextCursor; `between_pages(n)` runs after page n."""
    items: list[dict] = []
    cursor = None
    for number in range(PAGES_MAX):
        page = listing(client, **params, **({"cursor": cursor} if cursor else {}))
        items.extend(page["items"])
        if not page["pageInfo"]["hasMore"]:
            assert page["pageInfo"]["nextCursor"] is None
            return items
        assert len(page["items"]) == params.get("limit", 20)
        cursor = page["pageInfo"]["nextCursor"]
        if between_pages is not None:
            between_pages(number)
    raise AssertionError(f"the catalogue did not end within {PAGES_MAX} pages")


def ids(items: list[dict]) -> list[int]:
    return [item["id"] for item in items]


# --- a catalogue of any size ----------------------------------------------------------------


def test_one_host_with_501_old_events_hides_no_other_hosts_upcoming_event(client):
    spammer, other = account(client, "host"), account(client, "host")
    insert_events(spammer.id, [now() - timedelta(days=400, minutes=minute) for minute in range(501)])
    upcoming = create_event(client, other, name="Still on sale")

    page = listing(client)

    assert ids(page["items"]) == [upcoming["id"]]
    assert page["items"][0] == upcoming
    assert page["pageInfo"] == {"hasMore": False, "nextCursor": None}


def test_a_plain_get_gives_the_first_page_soonest_first(client):
    host = account(client, "host")
    event_ids = insert_events(host.id, [now() + timedelta(days=1 + day) for day in range(30)])

    page = listing(client)

    assert ids(page["items"]) == event_ids[:20]
    assert page["pageInfo"]["hasMore"] is True
    assert page["pageInfo"]["nextCursor"]


def test_walking_every_page_lists_every_event_once_upcoming_then_past(client):
    host = account(client, "host")
    moment = now()
    # Ties on startsAt too: the id breaks them, so no page boundary drops or repeats one.
    upcoming_starts = [moment + timedelta(days=1 + number // 3) for number in range(31)]
    past_starts = [moment - timedelta(days=1 + number // 3) for number in range(29)]
    upcoming = insert_events(host.id, upcoming_starts)
    past = insert_events(host.id, past_starts)
    # Past events latest first, and ties the other way round too (the walk runs backwards).
    past_latest_first = [event_id for _start, event_id in sorted(zip(past_starts, past, strict=True), reverse=True)]

    items = walk(client, when="all", limit=7)

    assert ids(items) == upcoming + past_latest_first
    assert ids(walk(client, limit=7)) == upcoming
    assert ids(walk(client, when="past", limit=7)) == past_latest_first


def test_events_created_while_walking_never_repeat_or_hide_another(client):
    host = account(client, "host")
    moment = now()
    existing = insert_events(host.id, [moment + timedelta(hours=1 + number) for number in range(25)]) + insert_events(
        host.id, [moment - timedelta(hours=1 + number) for number in range(25)]
    )

    def create_more(page_number: int) -> None:
        # Before the cursor, after it, and in the past part: each page boundary sees new rows.
        offsets = (0.5, 12.5, 40, -0.5, -12.5, -40)
        insert_events(host.id, [moment + timedelta(hours=offset + page_number / 100) for offset in offsets])

    items = walk(client, between_pages=create_more, when="all", limit=6)

    listed = ids(items)
    assert len(listed) == len(set(listed)), "an event was listed twice"
    assert set(existing) <= set(listed), "an event that existed all along was skipped"


def test_an_event_that_starts_during_a_walk_is_listed_once(client):
    """The walk keeps the moment it began: an event upcoming then stays in the upcoming
    part, which the cursor has passed, and is not listed again among the past ones."""
    host = account(client, "host")
    moment = now()
    later, started, past = insert_events(
        host.id, [moment + timedelta(hours=1), moment - timedelta(hours=1), moment - timedelta(hours=3)]
    )
    first = listing(client, when="all", limit=1)
    assert ids(first["items"]) == [later]
    # As if the walk had begun two hours ago, when `started` was upcoming and was listed
    # before `later` (a cursor this API issues; only its asOf moved back).
    issued = first["pageInfo"]["nextCursor"]
    position = json.loads(base64.urlsafe_b64decode(issued + "=" * (-len(issued) % 4)))
    cursor = cursor_of({**position, "asOf": (moment - timedelta(hours=2)).isoformat()})

    rest = listing(client, when="all", limit=5, cursor=cursor)

    assert ids(rest["items"]) == [past]


def test_deleted_events_are_never_listed_to_buyers(client):
    host = account(client, "host")
    kept = create_event(client, host)
    gone = create_event(client, host)
    delete_event(client, host, gone["id"])

    assert ids(walk(client, when="all", limit=1)) == [kept["id"]]


# --- filters ----------------------------------------------------------------------------------


def test_q_finds_a_name_or_venue_fragment_in_any_case(client):
    host = account(client, "host")
    jazz = create_event(client, host, name="Late Night JAZZ", venue="Blue Room")
    rock = create_event(client, host, name="Rock", venue="The Jazzhaus")
    create_event(client, host, name="Opera", venue="Grand Hall")
    percent = create_event(client, host, name="100% Techno", venue="Basement")

    assert set(ids(listing(client, q="jazz")["items"])) == {jazz["id"], rock["id"]}
    assert ids(listing(client, q="  blue ROOM ")["items"]) == [jazz["id"]]
    assert ids(listing(client, q="100%")["items"]) == [percent["id"]]  # % is a character, not a wildcard
    assert ids(listing(client, q="r_ck")["items"]) == []  # so is _
    assert len(listing(client, q="")["items"]) == 4  # an empty search box filters nothing


def test_q_folds_case_in_every_script_on_every_database(client):
    """SQLite's LIKE and PostgreSQL's ILIKE under the C locale fold ASCII only."""
    host = account(client, "host")
    zurich = create_event(client, host, name="ZÜRICH OPEN AIR", venue="Dolder")
    street = create_event(client, host, name="Fest", venue="Alte Straße 5")

    assert ids(listing(client, q="zürich")["items"]) == [zurich["id"]]
    assert ids(listing(client, q="Zürich Open")["items"]) == [zurich["id"]]
    assert ids(listing(client, q="STRASSE")["items"]) == [street["id"]]
    assert ids(listing(client, q="Ｆｅｓｔ")["items"]) == [street["id"]]  # full-width letters


def test_q_finds_an_event_by_its_new_name_after_a_change(client):
    host = account(client, "host")
    created = create_event(client, host, name="Working Title", venue="Hall")

    update_event(client, host, created["id"], name="Midsummer Gala")

    assert ids(listing(client, q="midsummer")["items"]) == [created["id"]]
    assert ids(listing(client, q="working")["items"]) == []


def test_from_and_to_bound_the_start(client):
    host = account(client, "host")
    moment = now()
    days = insert_events(host.id, [moment + timedelta(days=day) for day in (1, 2, 3, 4, 5)])

    page = listing(
        client, **{"from": (moment + timedelta(days=2)).isoformat(), "to": (moment + timedelta(days=4)).isoformat()}
    )

    assert ids(page["items"]) == days[1:4]  # both ends included


def test_from_and_to_reach_into_the_past_with_when_all(client):
    host = account(client, "host")
    moment = now()
    events = insert_events(host.id, [moment + timedelta(days=day) for day in (-3, -2, 2, 3)])

    page = listing(
        client,
        when="all",
        **{"from": (moment - timedelta(days=2)).isoformat(), "to": (moment + timedelta(days=2)).isoformat()},
    )

    assert ids(page["items"]) == [events[2], events[1]]


def test_host_id_lists_one_hosts_events(client):
    first, second = account(client, "host"), account(client, "host")
    mine = insert_events(first.id, [now() + timedelta(days=day) for day in (1, 3)])
    insert_events(second.id, [now() + timedelta(days=2)])

    assert ids(walk(client, hostId=first.id, limit=1)) == mine


def test_status_onsale_soldout_and_closed(client):
    host = account(client, "host")
    moment = now()
    [onsale] = insert_events(host.id, [moment + timedelta(days=3)], capacity_seats=10, reserved_seats=9)
    [soldout] = insert_events(host.id, [moment + timedelta(days=4)], capacity_seats=10, reserved_seats=10)
    # Upcoming, but its sales ended yesterday.
    [sales_ended] = insert_events(host.id, [moment + timedelta(days=5)], sales_end_at=moment - timedelta(days=1))
    [started] = insert_events(host.id, [moment - timedelta(hours=1)])

    assert ids(listing(client, status="onsale")["items"]) == [onsale]
    assert ids(listing(client, status="soldout")["items"]) == [soldout]
    assert ids(listing(client, status="closed")["items"]) == [sales_ended]
    assert ids(listing(client, status="closed", when="all")["items"]) == [sales_ended, started]
    assert ids(listing(client, when="all")["items"]) == [onsale, soldout, sales_ended, started]


def test_deleted_events_are_listed_to_admins_only(app, client):
    host = account(client, "host")
    admin = account(client, "admin")
    guest = account(client, "guest")
    create_event(client, host)
    gone = create_event(client, host)
    delete_event(client, host, gone["id"])

    assert ids(listing(client, headers=admin.headers, status="deleted")["items"]) == [gone["id"]]
    with unchanged():
        assert_error(client.get("/api/events/all", query_string={"status": "deleted"}, headers=guest.headers), 403)
        assert_error(client.get("/api/events/all", query_string={"status": "deleted"}, headers=host.headers), 403)
        assert_error(app.test_client().get("/api/events/all", query_string={"status": "deleted"}), 401)


def test_filters_hold_on_every_page(client):
    first, second = account(client, "host"), account(client, "host")
    moment = now()
    mine = insert_events(first.id, [moment + timedelta(hours=number) for number in range(1, 12)], name="Mine")
    insert_events(second.id, [moment + timedelta(hours=number, minutes=30) for number in range(1, 12)], name="Mine")
    insert_events(first.id, [moment + timedelta(hours=number, minutes=15) for number in range(1, 12)], name="Other")

    assert ids(walk(client, hostId=first.id, q="mine", limit=4)) == mine


# --- bad parameters -----------------------------------------------------------------------------


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


GOOD_TIME = "2030-01-01T00:00:00+00:00"
BAD_LIST_QUERIES = [
    ("limit-zero", {"limit": "0"}, "limit"),
    ("limit-over-max", {"limit": "101"}, "limit"),
    ("limit-word", {"limit": "ten"}, "limit"),
    ("cursor-garbage", {"cursor": "!!!"}, "cursor"),
    ("cursor-history-shaped", {"cursor": cursor_of({"id": 5})}, "cursor"),
    ("cursor-bad-time", {"cursor": cursor_of({"id": 5, "at": "soon", "asOf": GOOD_TIME})}, "cursor"),
    ("cursor-naive-time", {"cursor": cursor_of({"id": 5, "at": "2030-01-01T00:00:00", "asOf": GOOD_TIME})}, "cursor"),
    ("cursor-huge-id", {"cursor": cursor_of({"id": 10**30, "at": GOOD_TIME, "asOf": GOOD_TIME})}, "cursor"),
    (
        "cursor-year-one",
        {"cursor": cursor_of({"id": 5, "at": "0001-01-01T00:00:00+01:00", "asOf": GOOD_TIME})},
        "cursor",
    ),
    ("when-unknown", {"when": "soon"}, "when"),
    ("status-unknown", {"status": "cheap"}, "status"),
    ("q-too-long", {"q": "x" * 101}, "q"),
    ("q-nul", {"q": "a\x00b"}, "q"),
    ("q-newline", {"q": "jazz\nnight"}, "q"),
    ("from-garbage", {"from": "tomorrow"}, "from"),
    ("to-before-from", {"from": "2030-02-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "to"),
    ("host-id-zero", {"hostId": "0"}, "hostId"),
    ("unknown-parameter", {"page": "2"}, "page"),
]


@pytest.mark.parametrize(
    ("params", "field"),
    [(params, field) for _case, params, field in BAD_LIST_QUERIES],
    ids=[case for case, _params, _field in BAD_LIST_QUERIES],
)
def test_bad_catalogue_query_is_400_naming_the_parameter(client, params, field):
    with unchanged():
        assert_error(client.get("/api/events/all", query_string=params), 400, field)


# --- the host roster --------------------------------------------------------------------------


def roster_page(client, host, event_id: int, **params) -> dict:
    return assert_success(client.get(f"/api/events/{event_id}/roster", query_string=params, headers=host.headers))


def test_a_roster_of_more_than_1000_attendees_pages_through_all_of_them(client):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=1100, price=500)["id"]
    booking_ids = insert_bookings(event_id, guest.id, [1] * 1100, 500)  # sold out
    waiting_ids = insert_waitlist(event_id, guest.id, [2] * 30)

    first = roster_page(client, host, event_id, limit=1000)
    second = roster_page(client, host, event_id, limit=1000, cursor=first["pageInfo"]["nextCursor"])

    assert [item["id"] for item in first["bookings"]] == booking_ids[:1000]
    assert (first["waitlist"], first["pageInfo"]["hasMore"]) == ([], True)
    assert [item["id"] for item in second["bookings"]] == booking_ids[1000:]
    assert [entry["id"] for entry in second["waitlist"]] == waiting_ids
    assert second["pageInfo"] == {"hasMore": False, "nextCursor": None}
    assert first["event"]["reservedSeats"] == second["event"]["reservedSeats"] == 1100


def test_one_roster_cursor_walks_the_bookings_then_the_waitlist(client):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=7)["id"]
    booking_ids = insert_bookings(event_id, guest.id, [1] * 7, 1500)
    waiting_ids = insert_waitlist(event_id, guest.id, [1, 2, 3, 1, 2])
    bookings, waitlist = [], []
    cursor = None
    for _ in range(PAGES_MAX):
        page = roster_page(client, host, event_id, limit=3, **({"cursor": cursor} if cursor else {}))
        assert len(page["bookings"]) + len(page["waitlist"]) <= 3
        bookings += [item["id"] for item in page["bookings"]]
        waitlist += [entry["id"] for entry in page["waitlist"]]
        cursor = page["pageInfo"]["nextCursor"]
        if not page["pageInfo"]["hasMore"]:
            break

    assert (bookings, waitlist) == (booking_ids, waiting_ids)


def test_a_plain_roster_get_gives_the_first_page(client):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=150)["id"]
    booking_ids = insert_bookings(event_id, guest.id, [1] * 150, 100)

    page = roster(client, host, event_id)

    assert [item["id"] for item in page["bookings"]] == booking_ids[:100]
    assert page["pageInfo"]["hasMore"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "@@"}, "cursor"),
        ({"cursor": cursor_of({"part": "guests", "id": 1})}, "cursor"),
        ({"cursor": cursor_of({"part": "waitlist", "id": 0})}, "cursor"),
        ({"page": "2"}, "page"),
    ],
    ids=["limit-zero", "limit-over-max", "cursor-garbage", "cursor-unknown-part", "cursor-id-zero", "unknown"],
)
def test_bad_roster_query_is_400(client, params, field):
    host = account(client, "host")
    event_id = create_event(client, host)["id"]

    with unchanged():
        response = client.get(f"/api/events/{event_id}/roster", query_string=params, headers=host.headers)

        assert_error(response, 400, field)
