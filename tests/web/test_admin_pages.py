"""The admin pages over Flask's test client (both backends): who reaches them, the user
list, a role change with its confirmation step (CSRF, no JavaScript needed), the last
admin refused in words, and a change that counts from the user's next request in the
browser and over the API. The same flows in Chromium: tests/browser/test_admin_pages.py."""

from __future__ import annotations

import re

import pytest

from atomicseats.domain.accounts import LAST_ADMIN_RULE
from atomicseats.services import users
from tests.conftest import fresh_app
from tests.helpers import account, create_event
from tests.web.test_pages import CSRF, form_token, sign_in

USER_ROW = re.compile(r'<span class="who-name">[^<]*</span> <span class="meta">([^<]+)</span>')
NEXT_PAGE = re.compile(r'<a class="button secondary" rel="next" href="([^"]+)"')


def in_app(app, function, *args):
    with app.app_context():
        return function(*args)


def role_of(app, user_id: int) -> str:
    return in_app(app, lambda: users.get_user(user_id).role)


def make_admin(app, client):
    return in_app(app, account, client, "admin")


def browser(app):
    """A second browser: its own cookie jar."""
    return app.test_client()


def change_role(client, user_id: int, role: str, csrf: bool = True):
    page = client.get(f"/admin/users/{user_id}/role?role={role}")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    data = {"role": role}
    if csrf:
        data["csrf_token"] = CSRF.search(page.get_data(as_text=True)).group(1)
    return client.post(f"/admin/users/{user_id}/role", data=data)


@pytest.mark.parametrize("path", ["/admin", "/admin/users", "/admin/users/1/role?role=host"])
def test_only_admins_reach_the_admin_pages_and_others_are_told_in_words(app, path):
    client = app.test_client()
    anonymous = client.get(path)
    assert anonymous.status_code == 302 and "/login?next=" in anonymous.headers["Location"]
    for role in ("guest", "host"):
        visitor = browser(app)
        sign_in(visitor, account(visitor, role).username)
        refused = visitor.get(path)
        assert refused.status_code == 403
        assert "This page is for admins only" in refused.get_data(as_text=True)
        assert ">Admin</a>" not in visitor.get("/").get_data(as_text=True)
    admin = browser(app)
    sign_in(admin, make_admin(app, admin).username)
    assert ">Admin</a>" in admin.get("/").get_data(as_text=True)


def test_a_role_change_post_from_a_non_admin_changes_nothing(app):
    host = browser(app)
    sign_in(host, account(host, "host").username)
    guest = account(host)
    token = form_token(host, "/account/password")
    assert host.post(f"/admin/users/{guest.id}/role", data={"csrf_token": token, "role": "admin"}).status_code == 403
    assert role_of(app, guest.id) == "guest"


def test_the_user_list_searches_and_walks_its_pages(app):
    client = app.test_client()
    admin = make_admin(app, client)
    names = [account(client).username for _ in range(22)]
    sign_in(client, admin.username)
    seen, url = [], "/admin/users"
    while url:
        html = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
        seen += USER_ROW.findall(html)
        match = NEXT_PAGE.search(html)
        url = match.group(1) if match else None
    assert seen == [*reversed(names), admin.username]  # newest first, each once, over two pages
    found = client.get("/admin/users", query_string={"q": names[3].upper()}).get_data(as_text=True)
    assert USER_ROW.findall(found) == [names[3]]
    nothing = client.get("/admin/users?q=no-such-person").get_data(as_text=True)
    assert "No users match" in nothing
    tampered = client.get("/admin/users?cursor=abc")
    assert tampered.status_code == 200 and "Invalid cursor" in tampered.get_data(as_text=True)
    too_long = client.get("/admin/users", query_string={"q": "x" * 101})
    assert too_long.status_code == 200 and 'id="q-error"' in too_long.get_data(as_text=True)


def test_a_promotion_counts_from_the_users_next_request_in_the_browser_and_over_the_api(app):
    admin_client = app.test_client()
    admin = make_admin(app, admin_client)
    sign_in(admin_client, admin.username)
    user_client = browser(app)
    guest = account(user_client)  # an API token, and below a browser session: both end
    sign_in(user_client, guest.username)
    assert user_client.get("/account/password").status_code == 200
    assert user_client.get("/api/user/bookings", headers=guest.headers).status_code == 200

    confirm = admin_client.get(f"/admin/users/{guest.id}/role?role=host").get_data(as_text=True)
    assert "Change the role of" in confirm and re.search(r'<input checked [^>]*value="host"', confirm)
    done = change_role(admin_client, guest.id, "host")
    assert done.status_code == 303
    listed = admin_client.get(done.headers["Location"]).get_data(as_text=True)
    assert listed.count("is now a host. They were signed out of 2 sessions") == 1

    next_page = user_client.get("/account/password")  # the next request: signed out
    assert next_page.status_code == 302 and "/login" in next_page.headers["Location"]
    assert user_client.get("/api/user/bookings", headers=guest.headers).status_code == 401
    sign_in(user_client, guest.username)
    assert '<span class="role">host</span>' in user_client.get("/").get_data(as_text=True)


def test_the_last_admin_is_refused_in_words_and_stays_signed_in(app):
    client = app.test_client()
    admin = make_admin(app, client)
    sign_in(client, admin.username)
    refused = change_role(client, admin.id, "guest")
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    assert LAST_ADMIN_RULE in html and 'id="role-error"' in html
    assert role_of(app, admin.id) == "admin"
    assert client.get("/admin/users").status_code == 200


def test_an_admin_stepping_down_keeps_this_session_and_loses_the_pages(app):
    client = app.test_client()
    admin = make_admin(app, client)
    make_admin(app, client)  # another admin remains
    sign_in(client, admin.username)
    done = change_role(client, admin.id, "host")
    assert done.status_code == 303 and done.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert home.count("are now a host") == 1 and "Signed in as" in home
    assert client.get("/admin").status_code == 403
    assert client.get("/api/admin/users", headers=admin.headers).status_code == 401  # the API login ended


def test_a_role_change_without_its_csrf_token_or_role_is_refused_in_words(app):
    client = app.test_client()
    admin = make_admin(app, client)
    guest = account(client)
    sign_in(client, admin.username)
    refused = change_role(client, guest.id, "host", csrf=False)
    assert refused.status_code == 400 and "This form expired" in refused.get_data(as_text=True)
    token = form_token(client, f"/admin/users/{guest.id}/role")
    for role in ("", "root"):
        response = client.post(f"/admin/users/{guest.id}/role", data={"csrf_token": token, "role": role})
        assert response.status_code == 400 and 'id="role-error"' in response.get_data(as_text=True)
    assert role_of(app, guest.id) == "guest"
    assert client.get("/admin/users/987654/role").status_code == 404


def test_the_analytics_page_shows_money_utilisation_top_events_and_waitlists(app):
    client = app.test_client()
    admin = make_admin(app, client)
    host = account(client, "host")
    event_id = create_event(client, host, name="Harbour lights", capacity=4, price=123456)["id"]
    for seats in (3, 2):  # 3 confirmed, then 1 confirmed and 1 waitlisted
        guest = account(client)
        response = client.post(
            "/api/events/book", json={"eventId": event_id, "numberOfSeats": seats}, headers=guest.headers
        )
        assert response.status_code == 202, response.get_json()
    sign_in(client, admin.username)
    html = client.get("/admin").get_data(as_text=True)
    assert "€4,938.24" in html  # 4 seats at €1,234.56
    assert "100.0%" in html
    assert "Harbour lights" in html and 'data-chart="top-events-data"' in html
    assert "1 waiting (1 seats)" in html or "1 waiting (1 seat" in html
    assert "Task monitor" not in html


def test_the_analytics_page_links_to_flower_when_configured(database_url):
    with fresh_app(database_url, hold_context=False, FLOWER_URL="http://127.0.0.1:5555") as application:
        client = application.test_client()
        sign_in(client, make_admin(application, client).username)
        html = client.get("/admin").get_data(as_text=True)
        assert 'href="http://127.0.0.1:5555"' in html and "Task monitor (Flower)" in html


def test_flower_url_must_be_a_web_address(monkeypatch):
    from config import ConfigError, load_config

    monkeypatch.setenv("FLOWER_URL", "javascript:alert(1)")
    with pytest.raises(ConfigError, match="FLOWER_URL"):
        load_config("testing")
    monkeypatch.setenv("FLOWER_URL", "https://flower.example.com/")
    assert load_config("testing").FLOWER_URL == "https://flower.example.com/"
    monkeypatch.delenv("FLOWER_URL")
    assert load_config("testing").FLOWER_URL == ""


EVENT_ROW = re.compile(r'<th scope="row" data-label="Event"><a href="/events/(\d+)">')


def test_the_analytics_walk_every_event_a_page_at_a_time(app):
    client = app.test_client()
    admin = make_admin(app, client)
    host = account(client, "host")
    event_ids = [create_event(client, host, name=f"Gig {number}")["id"] for number in range(23)]
    sign_in(client, admin.username)
    seen, url = [], "/admin"
    while url:
        html = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
        seen += [int(event_id) for event_id in EVENT_ROW.findall(html)]
        match = NEXT_PAGE.search(html)
        url = match.group(1) if match else None
    assert seen == event_ids  # by id, each once, over two pages
    tampered = client.get("/admin?cursor=abc")
    assert tampered.status_code == 303 and tampered.headers["Location"] == "/admin"


def test_the_user_list_marks_a_disabled_account(app):
    client = app.test_client()
    admin = make_admin(app, client)
    guest = account(client)
    sign_in(client, admin.username)

    def row_of_guest() -> str:
        return client.get("/admin/users", query_string={"q": guest.username}).get_data(as_text=True)

    assert ">disabled</span>" not in row_of_guest()
    in_app(app, users.set_disabled_by_operator, guest.username, True)
    assert USER_ROW.findall(row_of_guest()) == [guest.username] and ">disabled</span>" in row_of_guest()
