"""The booking pipeline end to end: HTTP → Kafka → bridge → Celery → Postgres → outbox → SMTP
and `booking-events`, through the real processes that scripts/platform.sh starts."""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from atomicseats.names import BOOKING_EVENTS_TOPIC, BOOKING_REQUESTS_TOPIC, BRIDGE_CONSUMER_GROUP
from tests.e2e.support import (
    Platform,
    decision_message_id,
    end_offsets,
    expected_message_id,
    has_consumed_to,
    poll,
    produce_again,
    read_topic,
    unique,
)
from tests.helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FLASH_CAPACITY = 37
FLASH_USERS = 50
FLASH_REQUESTS = 200
FLASH_THREADS = 50


@pytest.fixture(scope="module")
def host(platform: Platform) -> Account:
    return platform.register("host")


@pytest.fixture(scope="module")
def crowd(platform: Platform) -> list[Account]:
    return platform.seed_guests(FLASH_USERS, prefix="e2epipe")


def booked_ids(platform: Platform, request_id: str) -> list[int]:
    return platform.wait_final(request_id)["bookingIds"]


def assert_audit_clean(platform: Platform) -> None:
    code, output = platform.run_audit()
    assert code == 0, output
    assert "audit clean" in output, output


# --- (a) the flash sale over Kafka -----------------------------------------------------


def test_flash_sale_sells_exactly_capacity_and_waitlists_the_rest_in_kafka_order(platform, host, crowd):
    event_id = platform.create_event(host, FLASH_CAPACITY, name=unique("Flash sale "))["id"]
    rng = random.Random(2024)
    plan = [(crowd[index % FLASH_USERS], rng.randint(1, 4)) for index in range(FLASH_REQUESTS)]
    start = threading.Barrier(FLASH_THREADS)
    answers: list[tuple[int, str | None, int]] = []

    def sender(offset: int) -> None:
        start.wait(30)
        for guest, seats in plan[offset::FLASH_THREADS]:
            response = platform.book(guest, event_id, seats)
            request_id = response.data["requestId"] if response.status == 202 else None
            answers.append((response.status, request_id, seats))

    with ThreadPoolExecutor(FLASH_THREADS) as pool:
        list(pool.map(sender, range(FLASH_THREADS)))

    assert [status for status, _, _ in answers] == [202] * FLASH_REQUESTS
    request_ids = [request_id for _, request_id, _ in answers]
    assert len(set(request_ids)) == FLASH_REQUESTS
    outcomes = platform.wait_until_all_final(request_ids, timeout_s=90)

    rows = platform.sql(
        "SELECT id, request_id, status, seats_requested, seats_confirmed, seats_waitlisted, kafka_partition,"
        " kafka_offset FROM booking_requests WHERE event_id = %s ORDER BY id",
        (event_id,),
    )
    assert {row[1] for row in rows} == set(request_ids), "booking_requests rows are not exactly the 202s"
    # Arrival order over Kafka is the order the bridge recorded them (booking_requests.id),
    # which is the order of the event's partition: all on one partition, offsets ascending.
    assert len({row[6] for row in rows}) == 1, "one event's requests must share a partition (key = eventId)"
    offsets = [row[7] for row in rows]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "ids not in Kafka offset order"

    # Decisions in arrival order: confirmed ones, at most one partial, then only waitlisted.
    shape = "".join(row[2][0] for row in rows)
    assert re.fullmatch(r"c+p?w*", shape), shape
    assert sum(row[4] for row in rows) == FLASH_CAPACITY
    for _id, request_id, status, requested, confirmed, waitlisted, _p, _o in rows:
        assert confirmed + waitlisted == requested, (request_id, status)
        seen = outcomes[request_id]
        assert (seen["status"], seen["seatsConfirmed"], seen["seatsWaitlisted"]) == (status, confirmed, waitlisted)
        assert len(seen["bookingIds"]) == (1 if confirmed else 0)

    roster = platform.roster(host, event_id)
    assert sum(booking["numberOfSeats"] for booking in roster["bookings"]) == FLASH_CAPACITY
    assert roster["event"]["reservedSeats"] == FLASH_CAPACITY
    assert roster["event"]["seatsLeft"] == 0
    # The waitlist, head first, is exactly the waitlisted requests in arrival order.
    waitlisted_rows = [row for row in rows if row[5] > 0]
    entry_requests = dict(
        platform.sql("SELECT id, booking_request_id FROM waitlist_entries WHERE event_id = %s", (event_id,))
    )
    assert [entry_requests[entry["id"]] for entry in roster["waitlist"]] == [row[0] for row in waitlisted_rows]
    assert [entry["seatsRemaining"] for entry in roster["waitlist"]] == [row[5] for row in waitlisted_rows]
    # ... and every waiting client is told its place in that queue.
    positions = [outcomes[row[1]]["waitlistPosition"] for row in waitlisted_rows]
    assert positions == list(range(1, len(waitlisted_rows) + 1))
    assert_audit_clean(platform)


# --- (b) cancellation promotes the head of the waitlist --------------------------------


def test_cancellation_promotes_the_waitlist_head_who_keeps_its_place_when_served_in_part(platform, host):
    event = platform.create_event(host, 3, name=unique("Promotion "))
    event_id = event["id"]
    first, second, head, behind = (platform.register() for _ in range(4))
    request_first = platform.book_accepted(first, event_id, 2)
    assert platform.wait_final(request_first)["status"] == "confirmed"
    request_second = platform.book_accepted(second, event_id, 1)
    assert platform.wait_final(request_second)["status"] == "confirmed"
    request_head = platform.book_accepted(head, event_id, 3)
    assert platform.wait_final(request_head)["status"] == "waitlisted"
    request_behind = platform.book_accepted(behind, event_id, 1)
    assert platform.wait_final(request_behind)["waitlistPosition"] == 2

    # Two seats free up: the head (wants 3) gets both and keeps its place with 1 remaining;
    # the one behind it (wants just 1) is not served before the head.
    freed = platform.cancel(first, event_id, booking_id=booked_ids(platform, request_first)[0])
    assert freed["seatsFreed"] == 2
    head_status = platform.status(request_head, token=head.access_token).data
    assert (head_status["seatsConfirmed"], head_status["seatsWaitlisted"]) == (2, 1)
    assert head_status["waitlistPosition"] == 1
    assert head_status["status"] == "partial"  # decided waitlisted; its status follows the promoted seats
    behind_status = platform.status(request_behind, token=behind.access_token).data
    assert (behind_status["seatsConfirmed"], behind_status["waitlistPosition"]) == (0, 2)
    roster = platform.roster(host, event_id)
    assert [(entry["userId"], entry["seatsRemaining"]) for entry in roster["waitlist"]] == [
        (head.id, 1),
        (behind.id, 1),
    ]
    assert roster["event"]["reservedSeats"] == 3

    # One more seat: the head is served in full and leaves the queue.
    platform.cancel(second, event_id, booking_id=booked_ids(platform, request_second)[0])
    head_status = platform.status(request_head, token=head.access_token).data
    assert (head_status["seatsConfirmed"], head_status["seatsWaitlisted"]) == (3, 0)
    assert head_status["waitlistPosition"] is None
    assert (head_status["status"], head_status["seatsHeld"]) == ("confirmed", 3)
    assert len(head_status["bookingIds"]) == 2
    assert platform.status(request_behind, token=behind.access_token).data["waitlistPosition"] == 1
    assert [entry["userId"] for entry in platform.roster(host, event_id)["waitlist"]] == [behind.id]

    # The promoted guest is told, once per promotion, under the booking's stable Message-ID.
    promoted_ids = [
        expected_message_id("booking.promoted", f"booking-{booking_id}") for booking_id in head_status["bookingIds"]
    ]
    mails = platform.wait_for_mails(promoted_ids, timeout_s=30)
    for message_id, expected_text in zip(
        promoted_ids,
        ("stays at the head of the waitlist", "Your whole request is now confirmed"),
        strict=True,
    ):
        (mail,) = mails[message_id]
        assert mail.to == head.email and mail.rcpt_to == head.email
        assert mail.kind == "booking.promoted"
        assert mail.subject == f"Seats confirmed from the waitlist: {event['name']}"
        assert expected_text in mail.text
    assert not [mail for mail in platform.mails() if mail.to == behind.email and mail.kind == "booking.promoted"]
    assert_audit_clean(platform)


# --- (c) exactly the e-mails a small scenario should send ------------------------------


def send_notification_runs(platform: Platform) -> int:
    return len(re.findall(r"Task atomicseats\.send_notifications\[[^\]]+\] succeeded", platform.app_log("mailer")))


def test_a_small_scenario_sends_exactly_its_emails_once_each(platform, host):
    event = platform.create_event(host, 2, name=unique("Mail check "))
    event_id, name = event["id"], event["name"]
    confirmed_guest, partial_guest, waiting_guest = (platform.register() for _ in range(3))
    request_confirmed = platform.book_accepted(confirmed_guest, event_id, 1)
    assert platform.wait_final(request_confirmed)["status"] == "confirmed"
    request_partial = platform.book_accepted(partial_guest, event_id, 2)
    assert platform.wait_final(request_partial)["status"] == "partial"
    request_waiting = platform.book_accepted(waiting_guest, event_id, 1)
    assert platform.wait_final(request_waiting)["status"] == "waitlisted"
    cancelled_booking = booked_ids(platform, request_confirmed)[0]
    platform.cancel(confirmed_guest, event_id, booking_id=cancelled_booking)
    promoted_booking = platform.status(request_partial).data["bookingIds"][-1]

    expected = {  # Message-ID: (recipient, subject, kind)
        decision_message_id("confirmed", request_confirmed): (
            confirmed_guest,
            f"Booking confirmed: {name}",
            "booking.confirmed",
        ),
        decision_message_id("partial", request_partial): (
            partial_guest,
            f"Booking partly confirmed: 1 of 2 seats for {name}",
            "booking.partial",
        ),
        decision_message_id("waitlisted", request_waiting): (
            waiting_guest,
            f"You are on the waitlist for {name}",
            "booking.waitlisted",
        ),
        expected_message_id("booking.cancelled", f"booking-{cancelled_booking}"): (
            confirmed_guest,
            f"Booking cancelled: {name}",
            "booking.cancelled",
        ),
        expected_message_id("booking.promoted", f"booking-{promoted_booking}"): (
            partial_guest,
            f"Seats confirmed from the waitlist: {name}",
            "booking.promoted",
        ),
    }
    outbox = dict(
        platform.sql("SELECT message_id, user_id FROM outbox WHERE event_id = %s AND channel = 'email'", (event_id,))
    )
    assert outbox == {message_id: guest.id for message_id, (guest, _, _) in expected.items()}

    platform.wait_for_mails(expected, timeout_s=30)
    poll(
        lambda: (
            platform.sql("SELECT count(*) FROM outbox WHERE event_id = %s AND status <> 'sent'", (event_id,))[0][0] == 0
        ),
        15,
        what="outbox rows marked sent",
    )
    # A few more outbox cycles must not send anything again.
    runs_before = send_notification_runs(platform)
    poll(lambda: send_notification_runs(platform) >= runs_before + 3, 20, 0.5, "three more outbox runs")

    recipients = {guest.email for guest, _, _ in expected.values()}
    received = [mail for mail in platform.mails() if mail.to in recipients]
    assert sorted(mail.message_id for mail in received) == sorted(expected), "missing, extra or duplicate e-mails"
    for mail in received:
        guest, subject, kind = expected[mail.message_id]
        assert (mail.to, mail.rcpt_to, mail.subject, mail.kind) == (guest.email, guest.email, subject, kind)


# --- (d) a redelivered Kafka message books nothing twice -------------------------------


def table_counts(platform: Platform) -> dict[str, int]:
    tables = ("booking_requests", "bookings", "waitlist_entries", "outbox")
    return {table: platform.sql(f"SELECT count(*) FROM {table}")[0][0] for table in tables}


def test_redelivered_kafka_messages_create_no_second_request_or_booking(platform, host, crowd):
    event_id = platform.create_event(host, 4, name=unique("Redelivery "))["id"]
    request_ids = [platform.book_accepted(guest, event_id, 2) for guest in crowd[:4]]
    platform.wait_until_all_final(request_ids, timeout_s=30)
    brokers = platform.env["KAFKA_BROKERS"]
    ends = end_offsets(brokers, BOOKING_REQUESTS_TOPIC)
    poll(
        lambda: has_consumed_to(brokers, BRIDGE_CONSUMER_GROUP, BOOKING_REQUESTS_TOPIC, ends),
        20,
        what="the bridge to catch up",
    )
    before = table_counts(platform)
    statuses_before = platform.sql("SELECT request_id, status, seats_confirmed FROM booking_requests ORDER BY id")

    originals = read_topic(brokers, BOOKING_REQUESTS_TOPIC)
    ours = [message for message in originals if json.loads(message.value())["request_id"] in request_ids]
    assert len(ours) == len(request_ids)
    produce_again(brokers, originals)
    ends = end_offsets(brokers, BOOKING_REQUESTS_TOPIC)
    assert sum(ends.values()) == 2 * len(originals)
    poll(
        lambda: has_consumed_to(brokers, BRIDGE_CONSUMER_GROUP, BOOKING_REQUESTS_TOPIC, ends),
        30,
        what="the copies consumed",
    )
    # The bridge really handled the copies (recorded again = a no-op) before committing them.
    bridge_log = platform.app_log("bridge")
    for message in ours:
        request_id = json.loads(message.value())["request_id"]
        recorded = [
            json.loads(line)
            for line in bridge_log.splitlines()
            if '"bridge.request.recorded"' in line and request_id in line
        ]
        assert any(entry["offset"] > message.offset() for entry in recorded), f"copy of {request_id} not seen"

    time.sleep(2.5)  # a sweeper and an outbox cycle: nothing may follow from the copies
    assert table_counts(platform) == before
    assert (
        platform.sql("SELECT request_id, status, seats_confirmed FROM booking_requests ORDER BY id") == statuses_before
    )
    assert_audit_clean(platform)


# --- (e) Idempotency-Key over the Kafka path -------------------------------------------


def test_idempotency_key_retry_returns_the_same_request(platform, host, crowd):
    event_id = platform.create_event(host, 10, name=unique("Idempotency "))["id"]
    guest, other = crowd[10], crowd[11]
    key = f"e2e-key-{uuid.uuid4().hex}"
    first = platform.book(guest, event_id, 2, idempotency_key=key)
    again = platform.book(guest, event_id, 2, idempotency_key=key)  # while still in flight
    assert (first.status, again.status) == (202, 202)
    request_id = first.data["requestId"]
    assert again.data["requestId"] == request_id
    assert platform.wait_final(request_id)["status"] == "confirmed"
    after = platform.book(guest, event_id, 2, idempotency_key=key)  # after the decision
    assert after.status == 202 and after.data["requestId"] == request_id
    assert after.data["status"] == "confirmed"
    # A burst of concurrent retries with one new key is still one request.
    burst_key = f"e2e-key-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(10) as pool:
        burst = list(pool.map(lambda _: platform.book(guest, event_id, 1, idempotency_key=burst_key), range(10)))
    assert {response.status for response in burst} == {202}
    burst_ids = {response.data["requestId"] for response in burst}
    assert len(burst_ids) == 1
    platform.wait_until_all_final(burst_ids, timeout_s=30)
    # The key is scoped to its user, and bound to what it first asked for.
    assert platform.book_accepted(other, event_id, 2, idempotency_key=key) != request_id
    assert platform.book(guest, event_id, 3, idempotency_key=key).status == 409

    for one_request in (request_id, *burst_ids):
        rows = platform.sql("SELECT id FROM booking_requests WHERE request_id = %s", (one_request,))
        assert len(rows) == 1
        bookings = platform.sql("SELECT count(*) FROM bookings WHERE booking_request_id = %s", (rows[0][0],))
        assert bookings == [(1,)]


# --- (f) long-poll ---------------------------------------------------------------------


def test_long_poll_returns_the_outcome_as_soon_as_it_is_decided(platform, host, crowd):
    event_id = platform.create_event(host, 100, name=unique("Long poll "))["id"]
    wait_s = 10
    lags_s, waited = [], 0
    for guest in crowd[20:26]:
        request_id = platform.book_accepted(guest, event_id, 1)
        asked_at = datetime.now(UTC)
        response = platform.status(request_id, token=guest.access_token, wait_s=wait_s)
        answered_at = datetime.now(UTC)
        assert response.status == 200 and response.data["status"] == "confirmed", response.body
        assert response.elapsed_s < wait_s / 2
        decided_at = datetime.fromisoformat(response.data["decidedAt"])
        waited += decided_at > asked_at  # still pending when asked: the long-poll really waited
        lags_s.append((answered_at - decided_at).total_seconds())
    assert waited >= 3, f"only {waited} of 6 requests were still pending when polled: nothing was tested"
    # Woken by the outcome channel, not by re-reading every OUTCOME_RECHECK_S (1 s): a polling
    # loop would answer a uniformly random 0-1 s late; six answers all within 0.4 s of the
    # decision would happen by chance with probability 0.4**6 = 0.4%.
    assert max(lags_s) < 0.4, lags_s


# --- (g) one correlation id through every process --------------------------------------


def test_correlation_id_is_logged_by_api_bridge_and_worker(platform, host, crowd):
    event_id = platform.create_event(host, 5, name=unique("Correlation "))["id"]
    correlation_id = f"e2e-corr-{uuid.uuid4().hex}"
    response = platform.book(crowd[30], event_id, 1, correlation_id=correlation_id)
    assert response.status == 202
    assert response.header("X-Request-ID") == correlation_id
    request_id = response.data["requestId"]
    platform.wait_final(request_id)
    assert platform.sql("SELECT correlation_id FROM booking_requests WHERE request_id = %s", (request_id,)) == [
        (correlation_id,)
    ]

    def lines_of(proc: str) -> list[dict]:
        return [
            json.loads(line)
            for line in platform.app_log(proc).splitlines()
            if correlation_id in line and line.startswith("{")
        ]

    for proc, event_name in (
        ("api", "booking.request.accepted"),
        ("bridge", "bridge.request.recorded"),
        ("worker", "booking.request.decided"),
    ):
        lines = poll(lambda proc=proc: lines_of(proc), 10, what=f"{correlation_id} in {proc}.log")
        assert all(line["correlation_id"] == correlation_id for line in lines), lines
        assert event_name in {line["event"] for line in lines}, (proc, lines)


# --- (h) domain events on booking-events -----------------------------------------------


def test_domain_events_reach_booking_events_in_outbox_order(platform, host, crowd):
    event_id = platform.create_event(host, 1, name=unique("Domain events "))["id"]
    guests = crowd[40:43]
    request_ids = []
    for guest in guests:
        request_ids.append(platform.book_accepted(guest, event_id, 1))
        platform.wait_final(request_ids[-1])
    platform.cancel(guests[0], event_id, cancel_all=True)  # the first waiting guest is promoted
    rows = platform.sql("SELECT id, kind, message_id, payload FROM outbox WHERE event_id = %s ORDER BY id", (event_id,))
    assert [row[1] for row in rows] == [
        "booking.confirmed",
        "booking.waitlisted",
        "booking.waitlisted",
        "booking.cancelled",
        "booking.promoted",
    ]
    wanted = {row[2] for row in rows}

    def published():
        seen = {}
        for message in read_topic(platform.env["KAFKA_BROKERS"], BOOKING_EVENTS_TOPIC):
            payload = json.loads(message.value())
            if payload.get("messageId") in wanted:
                seen.setdefault(payload["messageId"], []).append((message, payload))
        return seen if set(seen) == wanted else None

    seen = poll(published, 30, 1.0, "the outbox rows on booking-events")
    for outbox_id, kind, message_id, payload_text in rows:
        copies = seen[message_id]  # at least once: a copy whose ack was lost may come twice
        for message, payload in copies:
            assert message.key() == str(event_id).encode()
            assert (payload["kind"], payload["outboxId"], payload["eventId"]) == (kind, outbox_id, event_id)
            assert payload.get("requestId") == json.loads(payload_text).get("requestId")
    decisions = {seen[row[2]][0][1]["requestId"]: row[1] for row in rows[:3]}
    assert decisions == dict(
        zip(request_ids, ("booking.confirmed", "booking.waitlisted", "booking.waitlisted"), strict=True)
    )
    assert seen[rows[4][2]][0][1]["requestId"] == request_ids[1]
    # One event's rows share a partition and appear there in outbox order.
    firsts = [seen[row[2]][0][0] for row in rows]
    assert len({message.partition() for message in firsts}) == 1
    assert [message.offset() for message in firsts] == sorted(message.offset() for message in firsts)
