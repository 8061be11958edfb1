"""Price tiers through the real pipeline (HTTP → Kafka → bridge → Celery → Postgres → outbox →
SMTP): a tiered event booked over the API, each request decided in its tier (named, or the
cheapest with the seats), the e-mails naming the tier, the places in each tier's own waitlist, and the audit clean."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.support import Platform, decision_message_id, unique
from tests.helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def create_tiered_event(platform: Platform, host: Account) -> dict:
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    payload = {
        "name": unique("Tiered "),
        "venue": "E2E Hall",
        "startsAt": starts_at.isoformat(),
        "endsAt": (starts_at + timedelta(hours=2)).isoformat(),
        "capacity": 6,
        "tiers": [{"name": "Early bird", "price": 1000, "quota": 2}, {"name": "Standard", "price": 2500, "quota": 4}],
    }
    response = platform.http.request("POST", "/api/events/create", payload, token=host.access_token)
    assert response.status == 201, (response.status, response.body)
    return response.data


def book(platform: Platform, guest: Account, event_id: int, seats: int, tier_id: int | None) -> str:
    body = {"eventId": event_id, "numberOfSeats": seats} | ({} if tier_id is None else {"tierId": tier_id})
    response = platform.http.request("POST", "/api/events/book", body, token=guest.access_token)
    assert response.status == 202, (response.status, response.body)
    return response.data["requestId"]


def test_a_tiered_event_is_decided_per_tier_through_kafka_and_the_e_mails_name_the_tier(platform):
    host = platform.register("host")
    guests = platform.register_many(3, prefix="e2etier")
    event = create_tiered_event(platform, host)
    early, standard = event["tiers"]
    first = book(platform, guests[0], event["id"], 2, None)  # the cheapest that has both seats
    finals = [platform.wait_final(first, token=guests[0].access_token)]
    second = book(platform, guests[1], event["id"], 1, None)  # early bird is sold out: standard
    third = book(platform, guests[2], event["id"], 1, early["id"])  # named: waits in early bird
    finals += [platform.wait_final(second, token=guests[1].access_token)]
    finals += [platform.wait_final(third, token=guests[2].access_token)]
    assert [(final["status"], final["tierName"]) for final in finals] == [
        ("confirmed", "Early bird"),
        ("confirmed", "Standard"),
        ("waitlisted", "Early bird"),
    ]
    seen = platform.http.request("GET", f"/api/events/{event['id']}").data
    assert [(tier["name"], tier["reservedSeats"], tier["seatsLeft"]) for tier in seen["tiers"]] == [
        ("Early bird", 2, 0),
        ("Standard", 1, 3),
    ]
    mails = platform.wait_for_mails(
        [decision_message_id("confirmed", first), decision_message_id("waitlisted", third)], timeout_s=60
    )
    confirmed = mails[decision_message_id("confirmed", first)][0].text
    assert "Price tier:" in confirmed and "Early bird" in confirmed
    assert "Early bird" in mails[decision_message_id("waitlisted", third)][0].text
    assert standard["price"] == 2500

    # Each tier's waitlist is its own FIFO queue: places count only the tier's entries.
    finals = []
    for guest, seats, tier_id in [(guests[0], 3, standard["id"]), (guests[1], 2, standard["id"])]:
        request_id = book(platform, guest, event["id"], seats, tier_id)
        finals.append(platform.wait_final(request_id, token=guest.access_token))
    late_early = book(platform, guests[1], event["id"], 1, early["id"])
    finals.append(platform.wait_final(late_early, token=guests[1].access_token))
    assert [final["status"] for final in finals] == ["confirmed", "waitlisted", "waitlisted"]
    places = [final["placeInLine"] for final in [*finals[1:], platform.wait_final(third, token=guests[2].access_token)]]
    assert places == [
        {"queue": "waitlist", "position": 1, "seatsAhead": 0},  # first in Standard, behind the Early bird entry
        {"queue": "waitlist", "position": 2, "seatsAhead": 1},  # second in Early bird
        {"queue": "waitlist", "position": 1, "seatsAhead": 0},
    ]
    code, output = platform.run_audit()
    assert code == 0, output
