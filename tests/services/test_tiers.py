"""Price tiers through the services (via the API's test client), on SQLite and PostgreSQL:
the default tier, allocation per tier, the tier choice, windows, quota and capacity changes,
cancellation into the right tier's waitlist, and the audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import select

from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, EventTier, OutboxMessage, WaitlistEntry
from atomicseats.services import audit
from tests.helpers import Account, account, book, create_event, event, event_payload


def tiered_event(client, host: Account, tiers: list[dict], capacity: int = 10, **overrides) -> dict:
    payload = {key: value for key, value in event_payload(capacity=capacity, **overrides).items() if key != "price"}
    response = client.post("/api/events/create", json={**payload, "tiers": tiers}, headers=host.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def book_tier(client, guest: Account, event_id: int, seats: int, tier_id: int | None, expect: int = 202) -> dict:
    body = {"eventId": event_id, "numberOfSeats": seats} | ({} if tier_id is None else {"tierId": tier_id})
    response = client.post("/api/events/book", json=body, headers=guest.headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()["data"] if expect < 300 else response.get_json()


def status(client, guest: Account, request_id: str) -> dict:
    return client.get(f"/api/bookings/requests/{request_id}", headers=guest.headers).get_json()["data"]


def tier_seats(client, event_id: int) -> dict[str, tuple[int, int]]:
    return {tier["name"]: (tier["reservedSeats"], tier["seatsLeft"]) for tier in event(client, event_id)["tiers"]}


def update(client, host: Account, body: dict, expect: int = 200) -> dict:
    response = client.post("/api/events/update", json=body, headers=host.headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


EARLY_STANDARD = [{"name": "Early bird", "price": 1000, "quota": 2}, {"name": "Standard", "price": 2000, "quota": 5}]


def test_an_event_made_without_tiers_has_one_default_tier_and_books_as_before(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=3, price=1500)
    (tier,) = created["tiers"]
    assert (tier["name"], tier["price"], tier["quota"], tier["seatsLeft"], tier["onSale"]) == (
        "Standard",
        1500,
        3,
        3,
        True,
    )
    accepted = book(client, guest, created["id"], 2)
    decided = status(client, guest, accepted["requestId"])
    assert (decided["status"], decided["tierId"], decided["tierName"]) == ("confirmed", tier["id"], "Standard")
    booking = db.session.execute(select(Booking)).scalar_one()
    assert (booking.tier_id, booking.cost_minor) == (tier["id"], 3000)
    update(client, host, {"id": created["id"], "capacity": 5, "price": 1200})  # the one tier follows both
    assert [(t["quota"], t["price"], t["seatsLeft"]) for t in event(client, created["id"])["tiers"]] == [(5, 1200, 3)]
    assert audit.run_audit().is_clean


def test_each_tier_is_allocated_on_its_own_quota_and_price(app, client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(4)]
    created = tiered_event(client, host, EARLY_STANDARD, capacity=8)
    assert created["price"] == 1000  # the cheapest tier's
    early_id, standard_id = (tier["id"] for tier in created["tiers"])
    first = book_tier(client, guests[0], created["id"], 2, None)  # the cheapest that has both seats
    second = book_tier(client, guests[1], created["id"], 1, None)  # early bird is full: standard
    third = book_tier(client, guests[2], created["id"], 1, early_id)  # named: waits in early bird
    fourth = book_tier(client, guests[3], created["id"], 5, standard_id)  # 4 left: partial, 1 waits
    outcomes = [
        status(client, guest, r["requestId"]) for guest, r in zip(guests, [first, second, third, fourth], strict=True)
    ]
    assert [(o["status"], o["tierName"], o["seatsConfirmed"], o["seatsWaitlisted"]) for o in outcomes] == [
        ("confirmed", "Early bird", 2, 0),
        ("confirmed", "Standard", 1, 0),
        ("waitlisted", "Early bird", 0, 1),
        ("partial", "Standard", 4, 1),
    ]
    history = client.get("/api/user/bookings", headers=guests[3].headers).get_json()["data"]["items"]
    assert [(item["tierId"], item["tierName"], item["cost"]) for item in history] == [(standard_id, "Standard", 8000)]
    costs = db.session.execute(select(Booking.tier_id, Booking.cost_minor).order_by(Booking.id)).all()
    assert costs == [(early_id, 2000), (standard_id, 2000), (standard_id, 8000)]
    assert tier_seats(client, created["id"]) == {"Early bird": (2, 0), "Standard": (5, 0)}
    data = event(client, created["id"])
    assert (data["reservedSeats"], data["seatsLeft"]) == (7, 1)  # one seat of the capacity is in no tier
    assert audit.run_audit().is_clean


def two_sold_out_tiers(client) -> tuple[dict, list[Account], int, int]:
    """An event of two one-seat tiers, A (100) and B (200), each sold to a guest; two more
    guests. Returns (event, [four guests], tier A id, tier B id)."""
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(4)]
    created = tiered_event(
        client, host, [{"name": "A", "price": 100, "quota": 1}, {"name": "B", "price": 200, "quota": 1}], capacity=2
    )
    tier_a, tier_b = (tier["id"] for tier in created["tiers"])
    book_tier(client, guests[0], created["id"], 1, tier_a)
    book_tier(client, guests[1], created["id"], 1, tier_b)
    return created, guests, tier_a, tier_b


def test_cancelling_frees_seats_into_its_own_tiers_waitlist(app, client):
    created, guests, tier_a, tier_b = two_sold_out_tiers(client)
    waiting_b = book_tier(client, guests[2], created["id"], 1, tier_b)  # B's queue: earlier than A's
    waiting_a = book_tier(client, guests[3], created["id"], 1, tier_a)
    response = client.delete("/api/events/book", json={"eventId": created["id"]}, headers=guests[0].headers)
    assert response.status_code == 200
    assert status(client, guests[3], waiting_a["requestId"])["status"] == "confirmed"
    assert status(client, guests[2], waiting_b["requestId"])["status"] == "waitlisted"
    promoted = db.session.execute(select(Booking).where(Booking.user_id == guests[3].id)).scalar_one()
    assert (promoted.tier_id, promoted.cost_minor) == (tier_a, 100)
    assert audit.run_audit().is_clean


def test_quota_changes_keep_the_invariants_and_raising_one_serves_its_waitlist(app, client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    created = tiered_event(client, host, EARLY_STANDARD, capacity=8)
    early, standard = created["tiers"]
    book_tier(client, guests[0], created["id"], 2, early["id"])
    waiting = book_tier(client, guests[1], created["id"], 2, early["id"])
    tier_body = {key: early[key] for key in ("id", "name", "price")}
    below = update(client, host, {"id": created["id"], "tiers": [{**tier_body, "quota": 1}]}, expect=409)
    assert below["code"] == "seats_confirmed"
    above = update(client, host, {"id": created["id"], "tiers": [{**tier_body, "quota": 4}]}, expect=409)
    assert (above["code"], above["errors"]) == (
        "conflict",
        {"tiers": ["The tiers' quotas total 9, more than the capacity 8."]},
    )
    smaller = update(client, host, {"id": created["id"], "capacity": 6}, expect=409)
    assert smaller["code"] == "conflict"
    data = update(client, host, {"id": created["id"], "tiers": [{**tier_body, "quota": 3}]})["data"]
    assert [(t["name"], t["quota"], t["reservedSeats"]) for t in data["tiers"]] == [
        ("Early bird", 3, 3),
        ("Standard", 5, 0),
    ]
    after = status(client, guests[1], waiting["requestId"])
    assert (after["status"], after["seatsConfirmed"], after["seatsWaitlisted"]) == ("partial", 1, 1)
    added = update(client, host, {"id": created["id"], "tiers": [{"name": "VIP", "price": 9000, "quota": 0}]})["data"]
    assert [tier["name"] for tier in added["tiers"]] == ["Early bird", "Standard", "VIP"]
    assert audit.run_audit().is_clean


def test_a_tier_outside_its_window_is_refused_and_its_waitlist_expires(app, client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    created = tiered_event(
        client,
        host,
        [{"name": "Now", "price": 100, "quota": 1}, {"name": "Later", "price": 50, "quota": 5, "salesStartAt": later}],
        capacity=6,
    )
    now_tier, later_tier = created["tiers"]
    assert (now_tier["onSale"], later_tier["onSale"]) == (True, False)
    refused = book_tier(client, guests[0], created["id"], 1, later_tier["id"], expect=409)
    assert refused["code"] == "tier_not_on_sale"
    first = book_tier(client, guests[0], created["id"], 1, None)  # the cheapest tier on sale: "Now"
    assert status(client, guests[0], first["requestId"])["tierName"] == "Now"
    waiting = book_tier(client, guests[1], created["id"], 1, now_tier["id"])
    assert status(client, guests[1], waiting["requestId"])["status"] == "waitlisted"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    update(
        client,
        host,
        {
            "id": created["id"],
            "tiers": [{**{k: now_tier[k] for k in ("id", "name", "price", "quota")}, "salesEndAt": past}],
        },
    )
    expired = status(client, guests[1], waiting["requestId"])
    assert (expired["status"], expired["reason"], expired["seatsWaitlisted"]) == ("rejected", "tier_not_on_sale", 0)
    told = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "waitlist.expired")).scalar_one()
    assert json.loads(told.payload)["tierName"] == "Now"  # the e-mail names the tier
    assert audit.run_audit().is_clean


def test_a_named_tier_must_be_the_events_and_not_sold_out_with_the_waitlist_closed(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    created = tiered_event(client, host, EARLY_STANDARD, capacity=8)
    other = create_event(client, host)
    assert book_tier(client, guest, created["id"], 1, other["tiers"][0]["id"], expect=404)["errors"] == {
        "tierId": ["Not a tier of this event."]
    }
    book_tier(client, guest, created["id"], 2, created["tiers"][0]["id"])
    assert client.post(f"/api/events/{created['id']}/waitlist/close", headers=host.headers).status_code == 200
    refused = book_tier(client, guest, created["id"], 1, created["tiers"][0]["id"], expect=409)
    assert refused["code"] == "sold_out"
    assert db.session.execute(select(sa.func.count(BookingRequest.id))).scalar_one() == 1  # nothing else recorded


def test_tiers_are_validated_at_the_edge(app, client):
    host = account(client, "host")
    payload = {key: value for key, value in event_payload(capacity=5).items() if key != "price"}
    sales_end = datetime.fromisoformat(payload["startsAt"]) + timedelta(hours=1)
    cases = [
        ({**payload, "price": 100, "tiers": EARLY_STANDARD}, "price"),  # price or tiers
        ({**payload, "tiers": EARLY_STANDARD}, "tiers"),  # 2 + 5 > 5
        ({**payload, "tiers": []}, "tiers"),
        ({**payload, "tiers": [{"name": "A", "price": 1, "quota": 1}] * 11}, "tiers"),
        ({**payload, "tiers": [{"name": "A", "price": "1", "quota": 1}]}, "tiers"),
        ({**payload, "tiers": [{"name": "A", "price": 1, "quota": 1, "salesEndAt": sales_end.isoformat()}]}, "tiers"),
        ({**payload, "tiers": [{"id": 3, "name": "A", "price": 1, "quota": 1}]}, "tiers"),
        (
            {
                **payload,
                "tiers": [
                    {
                        "name": "A",
                        "price": 1,
                        "quota": 1,
                        "salesStartAt": payload["startsAt"],
                        "salesEndAt": payload["startsAt"],
                    }
                ],
            },
            "tiers",
        ),
    ]
    for body, field in cases:
        response = client.post("/api/events/create", json=body, headers=host.headers)
        assert response.status_code == 400, (body, response.get_json())
        assert field in response.get_json()["errors"], response.get_json()
    created = tiered_event(client, host, EARLY_STANDARD, capacity=8)
    assert update(client, host, {"id": created["id"], "price": 5}, expect=400)["errors"] == {
        "price": ["Set tiers[].price."]
    }
    unknown = update(
        client, host, {"id": created["id"], "tiers": [{"id": 10**9, "name": "X", "price": 1, "quota": 1}]}, expect=400
    )
    assert "tiers" in unknown["errors"]


def test_the_audit_finds_a_tier_oversold_or_out_of_step(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    created = tiered_event(client, host, EARLY_STANDARD, capacity=8)
    book_tier(client, guest, created["id"], 2, created["tiers"][0]["id"])
    early_id = created["tiers"][0]["id"]
    db.session.execute(sa.update(Booking).values(tier_id=created["tiers"][1]["id"]))  # counted in the wrong tier
    db.session.commit()
    invariants = {violation.invariant for violation in audit.run_audit().violations}
    assert "tier-reserved-equals-confirmed" in invariants
    db.session.execute(sa.update(EventTier).where(EventTier.id == early_id).values(quota_seats=7))
    db.session.commit()
    assert "tier-invariants" in {violation.invariant for violation in audit.run_audit().violations}  # 7 + 5 > 8


def test_the_audit_finds_free_tier_seats_while_someone_waits_in_it(app, client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(2)]
    created = tiered_event(client, host, EARLY_STANDARD, capacity=8)
    early_id = created["tiers"][0]["id"]
    book_tier(client, guests[0], created["id"], 2, early_id)
    book_tier(client, guests[1], created["id"], 1, early_id)
    assert audit.run_audit().is_clean  # standard has seats free, but nobody waits in it
    db.session.execute(sa.update(EventTier).where(EventTier.id == early_id).values(quota_seats=3))
    db.session.commit()
    assert "4-fifo" in {violation.invariant for violation in audit.run_audit().violations}
    assert db.session.execute(select(WaitlistEntry.tier_id)).scalar_one() == early_id


def test_a_waiting_places_in_line_are_counted_in_its_own_tiers_queue(app, client):
    created, guests, tier_a, tier_b = two_sold_out_tiers(client)
    first_b = book_tier(client, guests[2], created["id"], 2, tier_b)
    first_a = book_tier(client, guests[3], created["id"], 1, tier_a)  # behind B's waiter, but first in A
    assert status(client, guests[2], first_b["requestId"])["waitlistPosition"] == 1
    assert status(client, guests[3], first_a["requestId"])["waitlistPosition"] == 1
