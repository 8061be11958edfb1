"""Price tiers on the guest's event page (both backends): the tiers listed with price, seats
left and whether each is on sale, the tier chosen in the booking form, and the e-mail naming it."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from atomicseats.extensions import db
from atomicseats.models import Booking, OutboxMessage
from atomicseats.services import notifications
from tests.helpers import account, create_event, event_payload
from tests.web.test_pages import CSRF, IDEMPOTENCY_KEY, sign_in

TIERS = [
    {"name": "Early bird", "price": 1000, "quota": 1},
    {"name": "Standard", "price": 2500, "quota": 4},
    {"name": "Later", "price": 500, "quota": 2, "salesStartAt": "2099-01-01T00:00:00Z"},
]


def tiered_event(client, host) -> dict:
    payload = {key: value for key, value in event_payload(capacity=8).items() if key != "price"}
    response = client.post("/api/events/create", json={**payload, "tiers": TIERS}, headers=host.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def test_the_event_page_lists_the_tiers_and_books_the_one_chosen(app):
    client = app.test_client()
    host, guest = account(client, "host"), account(client)
    created = tiered_event(client, host)
    early, standard, later = created["tiers"]
    sign_in(client, guest.username)
    page = client.get(f"/events/{created['id']}").get_data(as_text=True)
    table = page[page.index('data-testid="tiers"') :]
    assert [name for name in re.findall(r'<th scope="row">([^<]+)</th>', table)] == ["Early bird", "Standard", "Later"]
    assert "€25.00" in table and "1 of 1" in table and "Not on sale" not in table and "From " in table
    options = re.findall(r'<option[^>]*value="(\d*)"', page)
    assert options == ["", str(early["id"]), str(standard["id"])]  # "Later" is not on sale yet
    data = {
        "csrf_token": CSRF.search(page).group(1),
        "idempotency_key": IDEMPOTENCY_KEY.search(page).group(1),
        "seats": "2",
        "tier_id": str(standard["id"]),
    }
    assert client.post(f"/events/{created['id']}/book", data=data).status_code == 303
    with app.app_context():
        booking = db.session.execute(select(Booking)).scalar_one()
        assert (booking.tier_id, booking.seats, booking.cost_minor) == (standard["id"], 2, 5000)
        row = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "booking.confirmed")).scalar_one()
        kind, payload = row.kind, json.loads(row.payload)
    assert payload["tierName"] == "Standard"
    _subject, text, html = notifications.render(kind, payload, "Grace", "https://seats.example")
    assert "Price tier:" in text and "Standard" in text
    assert "<th align='left'>Price tier</th><td>Standard</td>" in html
    assert later["onSale"] is False


def test_an_untiered_event_page_and_e_mail_are_as_before(app):
    client = app.test_client()
    host, guest = account(client, "host"), account(client)
    event_id = create_event(client, host, capacity=3)["id"]
    sign_in(client, guest.username)
    page = client.get(f"/events/{event_id}").get_data(as_text=True)
    assert 'data-testid="tiers"' not in page and 'name="tier_id"' not in page
    data = {
        "csrf_token": CSRF.search(page).group(1),
        "idempotency_key": IDEMPOTENCY_KEY.search(page).group(1),
        "seats": "1",
    }
    assert client.post(f"/events/{event_id}/book", data=data).status_code == 303
    with app.app_context():
        row = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "booking.confirmed")).scalar_one()
        kind, payload = row.kind, json.loads(row.payload)
    assert "tierName" not in payload
    assert "Price tier" not in notifications.render(kind, payload, "Grace", "https://seats.example")[1]


def test_a_tier_refused_at_the_page_is_said_next_to_the_field(app):
    client = app.test_client()
    host, guest = account(client, "host"), account(client)
    created = tiered_event(client, host)
    sign_in(client, guest.username)
    page = client.get(f"/events/{created['id']}").get_data(as_text=True)
    data = {
        "csrf_token": CSRF.search(page).group(1),
        "idempotency_key": IDEMPOTENCY_KEY.search(page).group(1),
        "seats": "1",
        "tier_id": str(created["tiers"][2]["id"]),  # not on sale: not among the choices
    }
    response = client.post(f"/events/{created['id']}/book", data=data)
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)


def test_the_host_changes_a_tier_and_adds_one_from_the_management_page(app):
    client = app.test_client()
    host = account(client, "host")
    event_id = create_event(client, host, capacity=8, price=1500)["id"]
    sign_in(client, host.username)
    page = client.get(f"/host/events/{event_id}").get_data(as_text=True)
    (standard_id,) = re.findall(r'name="tier(\d+)-tier_id"', page)
    token = re.search(rf'name="tier{standard_id}-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    changed = {
        f"tier{standard_id}-csrf_token": token,
        f"tier{standard_id}-tier_id": standard_id,
        f"tier{standard_id}-name": "Standard",
        f"tier{standard_id}-price": "15.00",
        f"tier{standard_id}-quota": "5",
    }
    assert client.post(f"/host/events/{event_id}/tiers", data=changed).status_code == 303
    page = client.get(f"/host/events/{event_id}").get_data(as_text=True)
    token = re.search(r'name="tiernew-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    added = {
        "tiernew-csrf_token": token,
        "tiernew-tier_id": "",
        "tiernew-name": "VIP",
        "tiernew-price": "90",
        "tiernew-quota": "4",
    }
    refused = client.post(f"/host/events/{event_id}/tiers", data=added)  # 5 + 4 > 8
    assert refused.status_code == 409
    assert "The tiers’ quotas total 9, more than the capacity 8." in refused.get_data(as_text=True).replace(
        "&#39;", "’"
    ).replace("'", "’")
    token = re.search(r'name="tiernew-csrf_token" type="hidden" value="([^"]+)"', refused.get_data(as_text=True)).group(
        1
    )
    assert (
        client.post(
            f"/host/events/{event_id}/tiers", data={**added, "tiernew-csrf_token": token, "tiernew-quota": "3"}
        ).status_code
        == 303
    )
    tiers = client.get(f"/api/events/{event_id}").get_json()["data"]["tiers"]
    assert [(tier["name"], tier["price"], tier["quota"]) for tier in tiers] == [("Standard", 1500, 5), ("VIP", 9000, 3)]
