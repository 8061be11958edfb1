"""Fault injection under load: SIGKILL the bridge, the Celery worker, the API or PostgreSQL;
restart Redis empty or the Kafka broker; take the SMTP server away. Whatever happens, every request the API
answered 2xx reaches exactly one final outcome, nothing is oversold, arrival order holds, the
audit is clean and every decision's e-mail arrives once (DESIGN invariants 1-7).

Each test runs a background load (BookingLoad) against a few events of its own, injects the
fault mid-load, restarts what it broke, stops the load, retries (with the same Idempotency-Key)
whatever got no 2xx, and then checks everything through the API, Postgres and the SMTP sink.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from dataclasses import dataclass

import pytest
import redis

from atomicseats.adapters.redis_cache import session_key
from atomicseats.domain import limits
from tests.e2e.support import (
    APP_PROCS,
    FINAL_STATUSES,
    REPO_ROOT,
    BookingLoad,
    Platform,
    decision_message_id,
    poll,
    run,
    unique,
)
from tests.helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EVENTS_PER_TEST = 3
EVENT_CAPACITY = 25
GUESTS = 12
ACCEPTED_BEFORE_FAULT = 20  # the fault hits a pipeline with work in flight
LOAD_AFTER_RECOVERY_S = 2.0
DECIDED_TIMEOUT_S = 60
MAILS_TIMEOUT_S = 40
LEASE_SETTLED_S = 2.0  # a live sender finishes a send well within this
REDIS_OUTAGES = 4
REDIS_DOWN_S = 1.0
POSTGRES_DOWN_S = 3.0  # then the restart's crash recovery adds its own seconds


@dataclass(frozen=True)
class Cast:
    host: Account
    guests: list[Account]


@pytest.fixture(scope="module")
def cast(platform: Platform) -> Cast:
    return Cast(platform.register("host"), platform.seed_guests(GUESTS, prefix="e2efault"))


@dataclass
class Outage:
    started: float = 0.0
    ended: float = 0.0

    def accepted_during(self, load: BookingLoad) -> int:
        return sum(1 for attempt in load.accepted if self.started <= attempt.answered_at <= self.ended)


@pytest.fixture(autouse=True)
def healed(platform: Platform):
    """Whatever a fault test leaves broken (it has failed already if so) is started again,
    so one failure does not cascade into the tests after it."""
    yield
    if run(["bash", "scripts/services.sh", "status"], platform.script_env, 30)[0] != 0:
        platform.start_service()
    if any(not platform.is_running(proc) for proc in APP_PROCS):
        platform.platform_sh("start", *APP_PROCS)


def assert_all_processes_running(platform: Platform) -> None:
    """No app process may die of a fault in another component (nobody would restart it)."""
    dead = [proc for proc in APP_PROCS if not platform.is_running(proc)]
    assert not dead, f"{dead} died during the fault; last lines of its log:\n" + "\n".join(
        platform.app_log(proc)[-3000:] for proc in dead
    )


def fault_events(platform: Platform, cast: Cast, label: str) -> list[int]:
    return [
        platform.create_event(cast.host, EVENT_CAPACITY, name=unique(f"Fault {label} "))["id"]
        for _ in range(EVENTS_PER_TEST)
    ]


def wait_for_accepted(load: BookingLoad, count: int, timeout_s: float = 20) -> None:
    poll(lambda: len(load.accepted) >= count, timeout_s, 0.1, f"{count} accepted requests before the fault")


def settle(platform: Platform, load: BookingLoad, event_ids: list[int]) -> dict[str, tuple]:
    """Retry what got no 2xx, wait for every decision, and check the rows; returns the rows by request id."""
    assert_all_processes_running(platform)
    load.retry_unanswered()
    busy = load.refusals(503)  # a 503 always says when to come back
    assert all(retry_after and retry_after.isdigit() for _, retry_after in busy), busy[:3]
    accepted = {attempt.request_id: attempt for attempt in load.accepted}
    assert len(accepted) == len(load.attempts), "one request id per Idempotency-Key"
    outcomes = platform.wait_until_all_final(accepted, timeout_s=DECIDED_TIMEOUT_S)

    rows = platform.sql(
        "SELECT r.request_id, r.event_id, r.user_id, r.status, r.seats_requested, r.seats_confirmed,"
        " r.seats_waitlisted, COALESCE(sum(b.seats), 0), count(b.id)"
        " FROM booking_requests r LEFT JOIN bookings b ON b.booking_request_id = r.id"
        " WHERE r.event_id = ANY(%s) GROUP BY r.id ORDER BY r.id",
        (event_ids,),
    )
    by_request = {row[0]: row for row in rows}
    assert len(by_request) == len(rows)
    # Exactly the accepted requests, each recorded once: none lost, none invented.
    assert set(by_request) == set(accepted), (
        f"lost: {sorted(set(accepted) - set(by_request))[:5]}, unknown: {sorted(set(by_request) - set(accepted))[:5]}"
    )
    for request_id, (
        _,
        event_id,
        user_id,
        status,
        requested,
        confirmed,
        waitlisted,
        booked,
        bookings,
    ) in by_request.items():
        attempt = accepted[request_id]
        assert (event_id, user_id, requested) == (attempt.event_id, attempt.guest.id, attempt.seats)
        assert status in FINAL_STATUSES
        assert confirmed + waitlisted == requested, request_id
        assert booked == confirmed and bookings == (1 if confirmed else 0), request_id
        seen = outcomes[request_id]
        assert (seen["status"], seen["seatsConfirmed"], seen["seatsWaitlisted"]) == (status, confirmed, waitlisted)

    for event_id in event_ids:
        # Never oversold, and decided in arrival order: confirmed, one partial at most, then waitlisted.
        event_rows = [row for row in rows if row[1] == event_id]
        confirmed_seats = sum(row[5] for row in event_rows)
        reserved, capacity = platform.sql(
            "SELECT reserved_seats, capacity_seats FROM events WHERE id = %s", (event_id,)
        )[0]
        assert confirmed_seats == reserved <= capacity, (event_id, confirmed_seats, reserved, capacity)
        shape = "".join(row[3][0] for row in event_rows)
        assert re.fullmatch(r"c*p?w*", shape), (event_id, shape)
    return by_request


def assert_audit_clean(platform: Platform) -> None:
    code, output = platform.run_audit()
    assert code == 0, output


def expire_dead_leases(platform: Platform, message_ids: set[str]) -> set[str]:
    """Rows a killed sender had leased come back after OUTBOX_SEND_LEASE_S (3 min): longer
    than a test may wait. Fast-forward the clock for exactly those rows (pending, never
    attempted, leased far ahead, and still so after a live send would have finished)."""
    query = (
        "SELECT message_id FROM outbox WHERE message_id = ANY(%s) AND status = 'pending' AND attempts = 0"
        " AND next_attempt_at > now() + interval '60 seconds'"
    )
    leased = {row[0] for row in platform.sql(query, (sorted(message_ids),))}
    if not leased:
        return set()
    time.sleep(LEASE_SETTLED_S)
    still = {row[0] for row in platform.sql(query, (sorted(leased),))} & leased
    if still:
        platform.sql("UPDATE outbox SET next_attempt_at = now() WHERE message_id = ANY(%s)", (sorted(still),))
    return still


def assert_every_decision_mailed_once(
    platform: Platform, by_request: dict[str, tuple], event_ids: list[int], sender_killed: bool = False
) -> None:
    expected = {decision_message_id(row[3], request_id) for request_id, row in by_request.items()}
    outbox = {
        row[0]
        for row in platform.sql(
            "SELECT message_id FROM outbox WHERE event_id = ANY(%s) AND channel = 'email'", (event_ids,)
        )
    }
    assert outbox == expected, "one outbox row per decision, under its stable Message-ID"
    deadline = time.monotonic() + MAILS_TIMEOUT_S
    may_repeat: set[str] = set()
    while True:
        missing = expected - set(platform.mails_by_message_id())
        if not missing:
            break
        if sender_killed:
            may_repeat |= expire_dead_leases(platform, missing)
        if time.monotonic() > deadline:
            platform.wait_for_mails(missing, 0)  # fails with the outbox rows of what is missing
        time.sleep(0.5)
    # No duplicates. Only a send the killed worker made but could not record may go out
    # twice, with the same Message-ID (invariant 7: a resend is recognisable).
    # Read once: the sink holds every e-mail of the session's shared platform (thousands), and
    # each read globs and sorts them all (once per decision, it timed out a slow machine's run).
    mails_by_id = platform.mails_by_message_id()
    repeated = {message_id for message_id in expected if len(mails_by_id[message_id]) > 1}
    print(f"{len(expected)} e-mails; dead leases expired: {len(may_repeat)}; sent twice: {len(repeated)}")
    assert repeated <= may_repeat, f"duplicate e-mails: {sorted(repeated)[:5]}"
    recipients = {row[2] for row in by_request.values()}
    emails = dict(platform.sql("SELECT id, email FROM users WHERE id = ANY(%s)", (sorted(recipients),)))
    for request_id, row in by_request.items():
        mail = mails_by_id[decision_message_id(row[3], request_id)][0]
        assert mail.to == emails[row[2]] and mail.kind == f"booking.{row[3]}"


def run_with_fault(platform: Platform, cast: Cast, label: str, inject) -> tuple[BookingLoad, list[int], Outage]:
    event_ids = fault_events(platform, cast, label)
    load = BookingLoad(platform, cast.guests, event_ids)
    outage = Outage()
    with load:
        wait_for_accepted(load, ACCEPTED_BEFORE_FAULT)
        outage.started = time.monotonic()
        inject()
        outage.ended = time.monotonic()
        time.sleep(LOAD_AFTER_RECOVERY_S)
    # Shown with a failure: what the load saw.
    print(
        f"[{label}] fault took {outage.ended - outage.started:.1f}s; answers {dict(load.outcome_counts())};"
        f" accepted meanwhile {outage.accepted_during(load)}; e.g. {[a.error for a in load.unanswered][:3]}"
    )
    return load, event_ids, outage


# --- the faults ------------------------------------------------------------------------


def test_sigkill_bridge(platform, cast):
    def inject():
        platform.kill("bridge")
        time.sleep(2)  # the API keeps accepting into Kafka meanwhile
        platform.start("bridge")

    load, event_ids, outage = run_with_fault(platform, cast, "bridge", inject)
    assert outage.accepted_during(load) > 0, "no request was accepted while the bridge was down"
    by_request = settle(platform, load, event_ids)
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids)


@pytest.mark.parametrize("celery_worker", ["worker", "mailer"])
def test_sigkill_celery_worker(platform, cast, celery_worker):
    """`worker` decides (allocation queues), `mailer` sends e-mail and domain events."""

    def inject():
        platform.kill(celery_worker)
        time.sleep(2)
        platform.start(celery_worker)

    load, event_ids, outage = run_with_fault(platform, cast, celery_worker, inject)
    assert outage.accepted_during(load) > 0
    by_request = settle(platform, load, event_ids)
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids, sender_killed=celery_worker == "mailer")


def test_sigkill_api(platform, cast):
    def inject():
        platform.kill("api")
        time.sleep(1)
        platform.start("api")

    load, event_ids, _ = run_with_fault(platform, cast, "api", inject)
    assert load.unanswered, "the API was killed yet every request was answered: did the kill happen?"
    by_request = settle(platform, load, event_ids)
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids)


def redis_run_id(platform: Platform) -> str:
    """The server's run id: a new one after every restart (and without persistence, an empty server)."""
    client = redis.Redis.from_url(platform.env["REDIS_URL"])
    try:
        return client.info("server")["run_id"]
    finally:
        client.close()


def test_redis_restarted_empty(platform, cast):
    run_ids = [redis_run_id(platform)]

    def inject():
        # Several outages under load, each once the worker has reconnected after the last one.
        for _ in range(REDIS_OUTAGES):
            worker_log_offset = platform.app_log_size("worker")
            platform.stop_service("redis")
            time.sleep(REDIS_DOWN_S)
            platform.start_service("redis")
            run_ids.append(redis_run_id(platform))
            reconnected = poll(
                lambda offset=worker_log_offset: (
                    "Connected to redis://" in platform.app_log("worker", since=offset)
                    or not platform.is_running("worker")
                ),
                20,
                0.2,
                "the worker to reconnect to Redis (or die)",
            )
            if not platform.is_running("worker"):
                return  # settle() reports it
            assert reconnected
            time.sleep(1.0)

    load, event_ids, _ = run_with_fault(platform, cast, "redis", inject)
    assert len(set(run_ids)) == len(run_ids), f"Redis did not restart every time: {run_ids}"
    by_request = settle(platform, load, event_ids)
    # What the restarts emptied is refilled by later writes, cache misses and beat's own
    # reconcile (every minute), so how much is left for this one to repair depends on timing.
    code, output = platform.flask("reconcile")
    assert code == 0 and re.search(r"\d+ availability entries and \d+ waitlists repaired", output), output
    assert_audit_clean(platform)
    code, output = platform.flask("reconcile")  # nothing left to repair
    assert code == 0 and "0 availability entries and 0 waitlists repaired" in output, output
    assert_every_decision_mailed_once(platform, by_request, event_ids)


def test_kafka_broker_restarted(platform, cast):
    load, event_ids, _ = run_with_fault(platform, cast, "kafka", lambda: platform.restart_service("kafka"))
    by_request = settle(platform, load, event_ids)
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids)


def test_sigkill_postgres(platform, cast):
    """PostgreSQL dies mid-load (the postmaster and every backend at once) and comes back
    through crash recovery. Meanwhile every booking is answered 202 (its session and event are
    known from Redis: into Kafka, the log buffers it) or 503 with Retry-After: never a 500. No
    app process dies; the bridge records the backlog once the database is back, the worker's
    retries and the sweeper decide it, and each decision is mailed once."""
    down = Outage()

    def inject():
        bridge_log_offset = platform.app_log_size("bridge")
        platform.kill_service("postgres")
        down.started = time.monotonic()
        time.sleep(POSTGRES_DOWN_S)
        down.ended = time.monotonic()
        platform.start_service("postgres")
        assert '"bridge.record_failed"' in platform.app_log("bridge", bridge_log_offset), (
            "the bridge never met the dead database: did the kill happen?"
        )

    load, event_ids, _ = run_with_fault(platform, cast, "postgres", inject)
    counts = load.outcome_counts()
    assert set(counts) <= {"202", "503"}, f"every answer is 202 or 503, never a 500: {dict(counts)}"
    assert down.accepted_during(load) > 0, f"nothing accepted while Postgres was down: {dict(counts)}"
    by_request = settle(platform, load, event_ids)  # 503s carried Retry-After; their retries are accepted
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids)


def _session_id(account: Account) -> str:
    payload = account.access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def test_booking_is_accepted_from_redis_while_postgres_is_down(platform, cast):
    """The session and the event are known from Redis: the booking goes into Kafka with
    Postgres down (with and without an Idempotency-Key, and a retry of that key is the same
    request), even once the session's 10-second live answer has run out (Postgres found it
    live a moment ago); what needs the database answers 503 with Retry-After; once Postgres
    is back the requests are recorded and decided."""
    guest = platform.register("guest")
    event_id = fault_events(platform, cast, "accept-from-redis")[0]
    platform.book_accepted(guest, event_id, 1)  # the event's availability is cached
    client = redis.Redis.from_url(platform.env["REDIS_URL"])
    try:
        client.delete(session_key(_session_id(guest)))
        assert platform.http.request("GET", "/api/user/bookings", token=guest.access_token).status == 200  # found live
        platform.kill_service("postgres")
        client.delete(session_key(_session_id(guest)))  # the live answer runs out while Postgres is down
        keyed = platform.book(guest, event_id, 2, idempotency_key="while-postgres-is-down")
        retried = platform.book(guest, event_id, 2, idempotency_key="while-postgres-is-down")
        unkeyed = platform.book(guest, event_id, 1)
        listing = platform.http.request("GET", "/api/events/all")
    finally:
        client.close()
        platform.start_service("postgres")
    for response in (keyed, retried, unkeyed):
        assert response.status == 202, (response.status, response.body)
        assert response.data["status"] == "pending"
    assert retried.data["requestId"] == keyed.data["requestId"]
    assert listing.status == 503 and listing.header("Retry-After") == str(limits.DATABASE_RETRY_AFTER_S), listing
    for response in (keyed, unkeyed):
        assert platform.wait_final(response.data["requestId"])["status"] == "confirmed"
    rows = platform.sql(
        "SELECT count(*) FROM booking_requests WHERE user_id = %s AND idempotency_key = %s",
        (guest.id, "while-postgres-is-down"),
    )
    assert rows == [(1,)]


def test_smtp_server_down_for_a_while(platform, cast):
    def inject():
        platform.stop_service("smtp")
        time.sleep(5)  # decisions keep coming; their e-mails fail and wait for a retry
        platform.start_service("smtp")

    load, event_ids, outage = run_with_fault(platform, cast, "smtp", inject)
    by_request = settle(platform, load, event_ids)
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids)
    retried = platform.sql(
        "SELECT count(*) FROM outbox WHERE event_id = ANY(%s) AND status = 'sent' AND attempts > 1", (event_ids,)
    )[0][0]
    assert retried > 0, "no e-mail needed a retry: the SMTP outage did not bite"


def test_a_second_bridge_joins_mid_load_and_leaves_cleanly(platform, cast):
    """Scaling out: a second bridge joins the consumer group, partitions are rebalanced between
    the two while requests flow, then it stops on SIGTERM; every request is recorded once."""
    second_log = platform.app_run_dir / "bridge-second.log"
    second_log.write_bytes(b"")
    first_log_offset = platform.app_log_size("bridge")

    def inject():
        with second_log.open("ab") as log_file:
            second = subprocess.Popen(
                [str(REPO_ROOT / ".venv/bin/python"), "kafka_bridge.py"],
                env=platform.env,
                cwd=REPO_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            poll(lambda: _assigned_partitions(second_log.read_text()), 40, what="the second bridge's partitions")
            time.sleep(2)  # both bridges consume while the load goes on
        finally:
            second.terminate()
            second.wait(30)
        assert second.returncode == 0, "the second bridge did not stop cleanly on SIGTERM"

    load, event_ids, _outage = run_with_fault(platform, cast, "second-bridge", inject)
    assert _assigned_partitions(second_log.read_text()), "the second bridge never got a partition"
    assert '"bridge.revoked"' in platform.app_log("bridge", first_log_offset), "the first bridge gave up none"
    by_request = settle(platform, load, event_ids)
    assert_audit_clean(platform)
    assert_every_decision_mailed_once(platform, by_request, event_ids)


def _assigned_partitions(log_text: str) -> list[int]:
    partitions: list[int] = []
    for line in log_text.splitlines():
        if '"bridge.assigned"' in line:
            partitions += json.loads(line).get("partitions", [])
    return partitions
