"""The host pages over Flask's test client (both backends): who may reach them, the event
form's field-level errors (the form's and the events service's, next to their field), time
zones and money, capacity and the waitlist, the roster a page at a time."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from atomicseats.extensions import db
from atomicseats.models import Event
from atomicseats.web import host
from tests.conftest import fresh_app
from tests.helpers import account, book, create_event, event
from tests.outage import database_down
from tests.web.test_pages import form_token, sign_in

NEXT_YEAR = datetime.now(UTC).year + 1


def field_error(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def event_form(**overrides) -> dict:
    data = {
        "name": "Harbour lights",
        "venue": "Pier 4",
        "description": "Lanterns on the water.",
        "timezone": "UTC",
        "starts_at": f"{NEXT_YEAR}-06-01T19:00",
        "ends_at": f"{NEXT_YEAR}-06-01T22:00",
        "sales_end_at": "",
        "capacity": "120",
        "price": "25.50",
        "waitlist_open": "y",
        "waitlist_mode": "auto",
        "offer_window_minutes": "1440",
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def post_form(client, path: str, data: dict, form_path: str | None = None):
    return client.post(path, data={"csrf_token": form_token(client, form_path or path), **data})


def events_stored(app) -> int:
    with app.app_context():
        return db.session.query(Event).count()


@pytest.fixture
def host_client(client):
    host_account = account(client, "host")
    sign_in(client, host_account.username)
    return client, host_account


def test_a_guest_is_told_in_words_that_the_host_pages_are_not_theirs(client):
    guest = account(client)
    host_account = account(client, "host")
    event_id = create_event(client, host_account)["id"]
    sign_in(client, guest.username)
    for path in ("/host", "/host/events/new", f"/host/events/{event_id}", f"/host/events/{event_id}/edit"):
        response = client.get(path)
        assert response.status_code == 403, path
        page = html.unescape(response.get_data(as_text=True))
        assert "Not allowed" in page and ("Only hosts" in page or "Only the event's host" in page), path
    assert ">Host</a>" not in client.get("/").get_data(as_text=True)


def test_another_host_cannot_see_or_change_an_event(host_client):
    client, _ = host_client
    owner = account(client, "host")
    event_id = create_event(client, owner, capacity=5)["id"]
    assert client.get(f"/host/events/{event_id}").status_code == 403
    assert client.get(f"/host/events/{event_id}/edit").status_code == 403
    response = post_form(client, f"/host/events/{event_id}/capacity", {"capacity": "50"}, "/host")
    assert response.status_code == 403
    response = post_form(client, f"/host/events/{event_id}/waitlist", {"action": "close"}, "/host")
    assert response.status_code == 403
    assert event(client, event_id)["capacity"] == 5 and event(client, event_id)["waitlistOpen"] is True
    assert client.get("/host/events/999999").status_code == 404


def test_a_signed_out_visitor_is_sent_to_log_in(client):
    response = client.get("/host")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_host_creates_an_event_with_money_and_a_time_zone(host_client):
    client, host_account = host_client
    assert ">Host</a>" in client.get("/").get_data(as_text=True)
    form = event_form(timezone="Europe/Paris", price="1,250.5", starts_at=f"{NEXT_YEAR}-12-01T20:00")
    form["ends_at"] = f"{NEXT_YEAR}-12-01T23:30"
    form["sales_end_at"] = f"{NEXT_YEAR}-12-01T18:00"
    response = post_form(client, "/host/events/new", form)
    assert response.status_code == 303, field_errors_of(response)
    event_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    created = event(client, event_id)
    assert created["price"] == 125050 and created["capacity"] == 120 and created["hostId"] == host_account.id
    assert created["startsAt"].startswith(f"{NEXT_YEAR}-12-01T19:00")  # Paris is UTC+1 in December
    assert created["salesEndAt"].startswith(f"{NEXT_YEAR}-12-01T17:00")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "is published" in page and "Harbour lights" in page
    dashboard = client.get("/host").get_data(as_text=True)
    assert "Harbour lights" in dashboard and "0 / 120" in dashboard and "0%" in dashboard


def field_errors_of(response) -> dict:
    return dict(re.findall(r'id="(\w+)-error">(.*?)</p>', response.get_data(as_text=True), re.S))


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"name": ""}, "name", "This field is required"),
        ({"venue": "x" * 201}, "venue", "200 characters"),
        ({"price": "ten euros"}, "price", "Enter a price like 25 or 25.50"),
        ({"price": "1000000.01"}, "price", "At most 1,000,000 a seat"),
        ({"capacity": "0"}, "capacity", "From 1 to 1,000,000 seats"),
        ({"capacity": ""}, "capacity", "Enter how many seats"),
        ({"starts_at": ""}, "starts_at", "Enter when the event starts"),
        ({"starts_at": "next tuesday"}, "starts_at", "Not a valid datetime value"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Choose a time zone"),
        ({"waitlist_mode": "sometimes"}, "waitlist_mode", "Choose what freed seats do"),
        ({"offer_window_minutes": "4"}, "offer_window_minutes", "From 5 minutes to 20,160 (14 days)"),
        ({"offer_window_minutes": "20161"}, "offer_window_minutes", "From 5 minutes to 20,160 (14 days)"),
        ({"offer_window_minutes": ""}, "offer_window_minutes", "Enter how many minutes"),
        ({"offer_window_minutes": "an hour"}, "offer_window_minutes", "Not a valid integer value"),
        # The events service's rules, shown next to the field they concern:
        ({"ends_at": f"{NEXT_YEAR}-06-01T18:00"}, "ends_at", "Must be after the start"),
        ({"sales_end_at": f"{NEXT_YEAR}-06-02T10:00"}, "sales_end_at", "Must not be after the start"),
        ({"starts_at": "2020-01-01T10:00", "ends_at": "2020-01-01T12:00"}, "starts_at", "Must be in the future"),
        # 02:30 on the day New York's clocks go forward does not exist:
        (
            {"timezone": "America/New_York", "starts_at": f"{NEXT_YEAR}-03-14T02:30"},
            "starts_at",
            "does not exist in America/New_York",
        ),
    ],
)
def test_each_mistake_is_shown_next_to_its_field_and_nothing_is_created(app, host_client, overrides, field, words):
    client, _ = host_client
    if field == "starts_at" and "America/New_York" in overrides.get("timezone", ""):
        overrides["starts_at"] = _second_sunday_of_march(NEXT_YEAR) + "T02:30"
        overrides["ends_at"] = _second_sunday_of_march(NEXT_YEAR) + "T05:00"
    response = post_form(client, "/host/events/new", event_form(**overrides))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert words in (field_error(page, field) or ""), field_errors_of(response)
    assert f'aria-describedby="{field}-error"' in page or f"{field}-hint {field}-error" in page
    assert events_stored(app) == 0


def _second_sunday_of_march(year: int) -> str:
    day = datetime(year, 3, 1)
    sundays = [day + timedelta(days=offset) for offset in range(31) if (day + timedelta(days=offset)).weekday() == 6]
    return sundays[1].date().isoformat()


def test_a_form_without_its_csrf_token_changes_nothing(app, host_client):
    client, _ = host_client
    response = client.post("/host/events/new", data=event_form())
    assert response.status_code == 400 and "This form expired" in response.get_data(as_text=True)
    assert events_stored(app) == 0


def test_editing_shows_the_event_in_utc_and_saves_only_what_changed(host_client):
    client, host_account = host_client
    starts = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=20)
    event_id = create_event(
        client, host_account, startsAt=starts.isoformat(), endsAt=(starts + timedelta(hours=2)).isoformat()
    )["id"]
    page = client.get(f"/host/events/{event_id}/edit").get_data(as_text=True)
    assert f'value="{starts.strftime("%Y-%m-%dT%H:%M")}"' in page and 'value="15.00"' in page
    form = event_form(
        name="Test Concert, late show",
        venue="Test Hall",
        description="A test event",
        starts_at=starts.strftime("%Y-%m-%dT%H:%M"),
        ends_at=(starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        capacity="10",
        price="15",
    )
    response = post_form(client, f"/host/events/{event_id}/edit", form)
    assert response.status_code == 303, field_errors_of(response)
    assert event(client, event_id)["name"] == "Test Concert, late show"
    assert "Your changes are saved" in client.get(f"/host/events/{event_id}").get_data(as_text=True)


def test_a_host_sets_the_waitlist_offers_and_their_window_on_create_and_edit(host_client):
    client, _ = host_client
    response = post_form(
        client, "/host/events/new", event_form(waitlist_mode="offer", offer_window_minutes="90"), "/host/events/new"
    )
    assert response.status_code == 303, field_errors_of(response)
    event_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    created = event(client, event_id)
    assert created["waitlistMode"] == "offer" and created["offerWindowMinutes"] == 90
    manage = client.get(f"/host/events/{event_id}").get_data(as_text=True)
    assert "who has 90 minutes to accept or decline" in manage
    edit_path = f"/host/events/{event_id}/edit"
    page = client.get(edit_path).get_data(as_text=True)
    assert re.search(r'<option selected value="offer">|<option value="offer" selected>', page), page
    assert 'name="offer_window_minutes"' in page and 'value="90"' in page
    starts = datetime.fromisoformat(created["startsAt"]).astimezone(UTC)
    form = event_form(
        starts_at=starts.strftime("%Y-%m-%dT%H:%M"),
        ends_at=datetime.fromisoformat(created["endsAt"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        sales_end_at=datetime.fromisoformat(created["salesEndAt"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        waitlist_mode="offer",
        offer_window_minutes="20160",
    )
    response = post_form(client, edit_path, form)
    assert response.status_code == 303, field_errors_of(response)
    assert event(client, event_id)["offerWindowMinutes"] == 20160
    response = post_form(client, edit_path, {**form, "waitlist_mode": "auto"})
    assert response.status_code == 303, field_errors_of(response)
    assert event(client, event_id)["waitlistMode"] == "auto"
    assert "Freed seats are confirmed to the next in line at once" in client.get(f"/host/events/{event_id}").get_data(
        as_text=True
    )
    refused = post_form(client, edit_path, {**form, "offer_window_minutes": "2"})
    assert refused.status_code == 400
    assert "From 5 minutes" in field_error(refused.get_data(as_text=True), "offer_window_minutes")
    assert event(client, event_id)["offerWindowMinutes"] == 20160


def test_capacity_below_the_seats_sold_is_refused_next_to_the_field(host_client):
    client, host_account = host_client
    event_id = create_event(client, host_account, capacity=10)["id"]
    book(client, account(client), event_id, 4)
    response = post_form(client, f"/host/events/{event_id}/capacity", {"capacity": "3"}, f"/host/events/{event_id}")
    assert response.status_code == 409
    assert "4 seats are confirmed or offered" in field_error(response.get_data(as_text=True), "capacity")
    form = event_form(capacity="2")
    response = post_form(client, f"/host/events/{event_id}/edit", form)
    assert response.status_code == 409
    assert "4 seats are confirmed or offered" in field_error(response.get_data(as_text=True), "capacity")
    assert event(client, event_id)["capacity"] == 10
    response = post_form(client, f"/host/events/{event_id}/capacity", {"capacity": "0"}, f"/host/events/{event_id}")
    assert response.status_code == 400
    assert "From 1 to 1,000,000 seats" in field_error(response.get_data(as_text=True), "capacity")


def test_raising_capacity_promotes_the_waitlist_and_the_page_says_so(host_client):
    client, host_account = host_client
    event_id = create_event(client, host_account, capacity=2)["id"]
    guests = [account(client) for _ in range(4)]
    for guest in guests:
        book(client, guest, event_id, 1)
    page = client.get(f"/host/events/{event_id}").get_data(as_text=True)
    assert re.search(r'data-testid="waitlist-length">2<', page)

    response = post_form(client, f"/host/events/{event_id}/capacity", {"capacity": "3"}, f"/host/events/{event_id}")
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert page.count("Capacity is now 3 seats. 1 waiting guest got their seats.") == 1  # said once
    assert re.search(r'data-testid="seats-sold">3<', page) and re.search(r'data-testid="waitlist-length">1<', page)

    chart = json.loads(re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page, re.S)[1])
    assert chart["series"][0]["label"] == "Seats held" and chart["series"][0]["data"][-1] == 3


def test_the_waitlist_closes_and_reopens(host_client):
    client, host_account = host_client
    event_id = create_event(client, host_account, capacity=1)["id"]
    path = f"/host/events/{event_id}"
    response = post_form(client, f"{path}/waitlist", {"action": "close"}, path)
    assert response.status_code == 303
    page = client.get(path).get_data(as_text=True)
    assert "The waitlist is closed" in page and "Reopen the waitlist" in page
    assert event(client, event_id)["waitlistOpen"] is False
    post_form(client, f"{path}/waitlist", {"action": "open"}, path)
    assert event(client, event_id)["waitlistOpen"] is True
    assert post_form(client, f"{path}/waitlist", {"action": "explode"}, path).status_code == 303
    assert event(client, event_id)["waitlistOpen"] is True


def test_the_roster_walks_bookings_then_the_waitlist_a_page_at_a_time(host_client, monkeypatch):
    monkeypatch.setattr(host, "ROSTER_PAGE_SIZE", 2)
    client, host_account = host_client
    event_id = create_event(client, host_account, capacity=3)["id"]
    guests = [account(client) for _ in range(5)]
    for guest in guests:
        book(client, guest, event_id, 1)
    seen, url = [], f"/host/events/{event_id}"
    while url:
        page = client.get(html.unescape(url)).get_data(as_text=True)
        seen += re.findall(r'<th scope="row">#?(\d+)</th>\s*<td data-label="Guest">([^<]+)</td>', page)
        match = re.search(r'rel="next" href="([^"]+)"', page)
        url = match.group(1) if match else None
    assert [name for _, name in seen] == [f"User {guest.username.removeprefix('guest')}" for guest in guests]
    assert [place for place, _ in seen[3:]] == ["1", "2"]  # the waitlist's places in line, across pages
    assert client.get(f"/host/events/{event_id}?cursor=garbage").status_code == 303


def test_with_the_database_down_publishing_is_a_503_in_words_with_a_retry(postgres_url):
    with fresh_app(postgres_url, hold_context=False, REDIS_URL="") as application:
        client = application.test_client()
        host_account = account(client, "host")
        sign_in(client, host_account.username)
        token = form_token(client, "/host/events/new")
        with database_down(postgres_url):
            response = client.post("/host/events/new", data={"csrf_token": token, **event_form()})
        assert response.status_code == 503 and response.headers["Retry-After"]
        page = response.get_data(as_text=True)
        assert "We are very busy" in page and "Please try again in" in page
        assert events_stored(application) == 0
