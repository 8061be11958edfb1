from tests.helpers import account, book, create_event, event


def test_booking_round_trip(client):
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host, capacity=3)
    accepted = book(client, guest, created["id"], 2)
    assert accepted["status"] == "confirmed"
    assert event(client, created["id"])["seatsLeft"] == 1
