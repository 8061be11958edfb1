"""/api/admin/users: the user list and role changes over HTTP (both backends). The rules
themselves are tested on the service (tests/services/test_accounts_admin.py); here, the
wire: envelopes, statuses, a token of the changed user dying, the OpenAPI entries."""

from __future__ import annotations

import pytest

from atomicseats.domain.accounts import LAST_ADMIN_RULE
from tests.api.support import assert_error, assert_success
from tests.helpers import account, unchanged


def change(client, admin, user_id: int, **body):
    return client.patch(f"/api/admin/users/{user_id}", json=body, headers=admin.headers)


def test_an_admin_lists_and_searches_users_a_page_at_a_time(client):
    admin = account(client, "admin")
    host = account(client, "host")
    guest = account(client)
    data = assert_success(client.get("/api/admin/users", query_string={"limit": 2}, headers=admin.headers))
    assert [item["username"] for item in data["items"]] == [guest.username, host.username]
    assert set(data["items"][0]) == {"id", "username", "name", "email", "role", "createdAt"}
    assert data["pageInfo"]["hasMore"] is True
    rest = assert_success(
        client.get("/api/admin/users", query_string={"cursor": data["pageInfo"]["nextCursor"]}, headers=admin.headers)
    )
    assert [item["username"] for item in rest["items"]] == [admin.username]
    assert rest["pageInfo"] == {"hasMore": False, "nextCursor": None}
    found = assert_success(
        client.get("/api/admin/users", query_string={"q": host.email.upper()}, headers=admin.headers)
    )
    assert [item["id"] for item in found["items"]] == [host.id]


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"cursor": "nope"}, {"q": "a\nb"}, {"x": "1"}])
def test_a_bad_query_is_a_400(client, query):
    admin = account(client, "admin")
    assert_error(client.get("/api/admin/users", query_string=query, headers=admin.headers), 400)


def test_only_admins_reach_the_user_list_and_role_changes(client):
    host = account(client, "host")
    guest = account(client)
    assert_error(client.application.test_client().get("/api/admin/users"), 401)  # no cookies
    assert_error(client.get("/api/admin/users", headers=host.headers), 403)
    with unchanged():
        assert_error(change(client, host, guest.id, role="admin"), 403)
        assert_error(change(client, guest, guest.id, role="admin"), 403)


def test_a_promotion_ends_the_users_tokens_and_the_next_login_carries_the_role(client):
    admin = account(client, "admin")
    guest = account(client)
    assert_error(client.get("/api/admin/users", headers=guest.headers), 403)

    data = assert_success(change(client, admin, guest.id, role="admin"))
    assert data["previousRole"] == "guest" and data["user"]["role"] == "admin" and data["sessionsEnded"] == 1

    assert_error(client.get("/api/admin/users", headers=guest.headers), 401)  # the old token is dead
    again = client.post("/api/user/login", json={"username": guest.username, "password": "correct-horse-battery"})
    token = assert_success(again)["accessToken"]
    assert_success(client.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"}))
    assert_success(client.get("/api/admin/analytics", headers=admin.headers))  # the admin's own token lives


def test_the_last_admin_cannot_step_down_over_the_api(client):
    admin = account(client, "admin")
    with unchanged():
        body = assert_error(change(client, admin, admin.id, role="guest"), 409, "role")
    assert body["message"] == LAST_ADMIN_RULE
    other = account(client, "admin")
    data = assert_success(change(client, admin, admin.id, role="host"))
    assert data["sessionsEnded"] == 0  # the caller's own session stays
    assert_error(client.get("/api/admin/users", headers=admin.headers), 403)  # a host from this request on
    assert_error(change(client, other, other.id, role="guest"), 409, "role")


@pytest.mark.parametrize("body", [{}, {"role": "root"}, {"role": 1}, {"role": "host", "extra": True}, []])
def test_a_bad_role_change_is_a_400_naming_the_field(client, body):
    admin = account(client, "admin")
    guest = account(client)
    with unchanged():
        response = client.patch(f"/api/admin/users/{guest.id}", json=body, headers=admin.headers)
        assert_error(response, 400)


def test_a_role_change_of_nobody_is_a_404(client):
    admin = account(client, "admin")
    with unchanged():
        assert_error(change(client, admin, 987654, role="host"), 404)
    assert (
        client.patch("/api/admin/users/99999999999999999999", json={"role": "host"}, headers=admin.headers).status_code
        == 404
    )


def test_the_openapi_document_names_both_routes(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "get" in paths["/api/admin/users"]
    patch = paths["/api/admin/users/{user_id}"]["patch"]
    assert {"200", "400", "401", "403", "404", "409"} <= set(patch["responses"])
    assert patch["requestBody"]["required"] is True
