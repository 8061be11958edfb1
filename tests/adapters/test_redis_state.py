"""Request registry, waitlist mirror and outcome channel against the real Redis of `make test`."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from atomicseats.adapters import redis_state
from atomicseats.adapters.redis_cache import RedisAvailabilityCache, connect, session_key
from atomicseats.adapters.redis_state import (
    RedisOutcomeChannel,
    RedisRequestRegistry,
    RedisWaitlistMirror,
    idempotency_key_of,
    queue_member,
    request_key,
    waitlist_length_key,
    waitlist_members_key,
    waitlist_queue_key,
    waitlist_seats_key,
)
from atomicseats.domain import limits
from atomicseats.services.contracts import AcceptedRequest, EventAvailability, Quota
from atomicseats.services.ports import Claim, MirroredEntry, RegistryUnavailable, SessionUnconfirmed

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call fails fast
WAKE_UP_S_MAX = 1.0  # a published outcome must wake its waiter well inside this


@pytest.fixture
def redis_client(redis_url) -> redis.Redis:
    connection = connect(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


def accepted(user_id: int = 1, idempotency_key: str | None = None, seats: int = 2) -> AcceptedRequest:
    return AcceptedRequest(
        request_id=str(uuid.uuid4()),
        user_id=user_id,
        event_id=7,
        seats=seats,
        idempotency_key=idempotency_key,
        correlation_id="test-correlation",
        accepted_at=datetime.now(UTC),
    )


# --- request registry ------------------------------------------------------------------


def test_a_claimed_request_is_found_by_id_until_its_ttl(redis_client):
    registry = RedisRequestRegistry(redis_client, ttl_s=600)
    request = accepted()
    assert registry.claim(request) is None
    assert registry.find(request.request_id) == request
    assert 0 < redis_client.ttl(request_key(request.request_id)) <= 600
    assert registry.find(str(uuid.uuid4())) is None


def test_a_retry_with_the_same_key_gets_the_first_request_and_keys_are_per_user(redis_client):
    registry = RedisRequestRegistry(redis_client)
    first = accepted(user_id=1, idempotency_key="order-42")
    retry = accepted(user_id=1, idempotency_key="order-42", seats=3)
    other_user = accepted(user_id=2, idempotency_key="order-42")
    assert registry.claim(first) is None
    assert registry.claim(retry) == first
    assert registry.claim(other_user) is None  # another user's key never returns their request
    assert registry.find(retry.request_id) is None  # the retry stored nothing
    stored_key = idempotency_key_of(1, "order-42")
    assert "order-42" not in stored_key  # hashed: the raw client key never lands in Redis
    assert 0 < redis_client.ttl(stored_key) <= redis_state.REQUEST_TTL_S_DEFAULT


def test_claim_and_read_claims_and_returns_the_cached_availability_in_one_go(redis_client):
    registry = RedisRequestRegistry(redis_client)
    availability = EventAvailability(
        event_id=7,
        capacity_seats=10,
        reserved_seats=4,
        is_waitlist_open=False,
        is_deleted=False,
        waitlist_length=2,
        sales_end_at=datetime(2031, 5, 1, 18, 0, 0, 654321, tzinfo=UTC),
    )
    first = accepted(idempotency_key="order-9")

    assert registry.claim_and_read(first) == Claim()  # nothing cached for event 7 yet, no mark
    RedisAvailabilityCache(redis_client).store([availability])
    retry = accepted(idempotency_key="order-9", seats=3)

    assert registry.claim_and_read(retry) == Claim(first, availability)
    assert registry.find(first.request_id) == first
    assert registry.find(retry.request_id) is None


def test_the_keys_held_mark_is_set_once_read_with_each_keyed_claim_and_lost_with_redis(redis_client):
    """`hold_keys_after` marks since when the registry holds every key: the first mark stays
    (a later one cannot move it), a keyed claim reads it in its round trip, a flush loses it
    with the claims, and a damaged one reads as none and is dropped (the database is asked
    again, and the next mark can be set)."""
    registry = RedisRequestRegistry(redis_client)
    since = datetime(2026, 12, 1, 6, 30, 15, 250000, tzinfo=UTC)
    registry.hold_keys_after(lambda: since)
    registry.hold_keys_after(lambda: since + timedelta(hours=1))

    assert registry.claim_and_read(accepted(idempotency_key="order-1")).keys_held_after == since
    assert registry.claim_and_read(accepted()).keys_held_after is None  # without a key: not read

    redis_client.flushdb()
    assert registry.claim_and_read(accepted(idempotency_key="order-2")).keys_held_after is None
    redis_client.set(redis_state.KEYS_HELD_AFTER_KEY, "not a time")
    assert registry.claim_and_read(accepted(idempotency_key="order-3")).keys_held_after is None
    registry.hold_keys_after(lambda: since)  # the damaged mark was dropped: a new one can be set
    assert registry.claim_and_read(accepted(idempotency_key="order-4")).keys_held_after == since


@pytest.fixture
def eviction_settings(redis_client):
    """The test Redis's memory limit and policy, put back after the test changed them."""
    saved = redis_client.config_get("maxmemory*")
    yield redis_client
    redis_client.config_set("maxmemory-policy", saved["maxmemory-policy"])
    redis_client.config_set("maxmemory", saved["maxmemory"])


@pytest.mark.parametrize(
    ("maxmemory", "policy", "is_marked"),
    [
        ("0", "allkeys-lru", True),  # no memory limit: nothing is ever evicted
        ("1gb", "noeviction", True),  # a limit, but writes are refused rather than keys dropped
        ("1gb", "allkeys-lru", False),
        ("1gb", "volatile-ttl", False),  # every claim has a TTL: volatile policies evict them too
    ],
)
def test_the_keys_held_mark_is_set_only_where_redis_never_evicts_a_claim(
    eviction_settings, maxmemory, policy, is_marked
):
    """A Redis that may evict keys could drop a claim and keep the mark (it has no TTL): the
    registry would vouch for a key it lost. There, no mark, and the database is not read for
    one (`since` is not called): it answers for each key instead."""
    redis_client = eviction_settings
    redis_client.config_set("maxmemory-policy", policy)
    redis_client.config_set("maxmemory", maxmemory)
    registry = RedisRequestRegistry(redis_client)
    since = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    reads: list[datetime] = []

    registry.hold_keys_after(lambda: reads.append(since) or since)

    expected = since if is_marked else None
    assert registry.claim_and_read(accepted(idempotency_key="order-1")).keys_held_after == expected
    assert len(reads) == (1 if is_marked else 0)


def test_no_mark_when_the_database_cannot_say_since_when(redis_client):
    registry = RedisRequestRegistry(redis_client)

    registry.hold_keys_after(lambda: None)  # Postgres down: the next keyed claim tries again

    assert registry.claim_and_read(accepted(idempotency_key="order-1")).keys_held_after is None


def test_a_redis_found_evicting_is_asked_again_only_after_a_while(eviction_settings, monkeypatch):
    redis_client = eviction_settings
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    redis_client.config_set("maxmemory", "1gb")
    registry = RedisRequestRegistry(redis_client)
    since = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    registry.hold_keys_after(lambda: since)
    redis_client.config_set("maxmemory-policy", "noeviction")  # fixed by its operator

    registry.hold_keys_after(lambda: since)  # within the minute: not asked again, no mark
    assert redis_client.get(redis_state.KEYS_HELD_AFTER_KEY) is None
    a_minute_later = time.monotonic() + redis_state.EVICTION_RECHECK_S + 1
    monkeypatch.setattr(time, "monotonic", lambda: a_minute_later)
    registry.hold_keys_after(lambda: since)
    assert redis_client.get(redis_state.KEYS_HELD_AFTER_KEY) is not None


def test_claim_and_read_counts_quotas_first_and_claims_nothing_once_one_is_used_up(redis_client, redis_url):
    """The per-user booking limit rides the claim's round trip, in `limits`' own keys: a hit
    over a quota is RateLimited with the window's seconds left, and holds no key."""
    from limits import parse_many
    from limits.storage import storage_from_string

    from atomicseats.errors import RateLimited

    registry = RedisRequestRegistry(redis_client, counts_quotas=True)
    wide, narrow = parse_many("100 per hour; 2 per minute")
    quotas = [Quota(rate.key_for("booking", "7"), rate.amount, rate.get_expiry()) for rate in (wide, narrow)]
    first, second = accepted(idempotency_key="order-1"), accepted(idempotency_key="order-2")
    registry.claim_and_read(first, quotas)
    registry.claim_and_read(second, quotas)
    refused = accepted(idempotency_key="order-3")

    with pytest.raises(RateLimited) as raised:
        registry.claim_and_read(refused, quotas)

    assert 1 <= int(raised.value.headers["Retry-After"]) <= 60
    assert registry.find(refused.request_id) is None
    assert registry.claim(accepted(idempotency_key="order-3")) is None  # the key was never held
    assert registry.find(second.request_id) == second
    # Counted where and as Flask-Limiter's storage counts: it reads the same windows.
    limiter_storage = storage_from_string(redis_url)
    assert limiter_storage.get(quotas[0].key) == 3
    assert limiter_storage.get(quotas[1].key) == 3
    assert 0 < redis_client.ttl(f"LIMITS:{quotas[1].key}") <= 60
    assert 3000 < redis_client.ttl(f"LIMITS:{quotas[0].key}") <= 3600


def test_claim_and_read_confirms_a_session_live_for_that_user_before_counting_or_claiming(redis_client):
    """The booking route's session check rides the claim (services/booking.py): a session the
    cache does not hold live for the request's user is SessionUnconfirmed, nothing counted."""
    registry = RedisRequestRegistry(redis_client, counts_quotas=True)
    request = accepted(idempotency_key="order-1")
    quotas = [Quota(key="LIMITER/booking/1/5/1/minute", amount=5, window_s=60)]
    for holder in (None, str(request.user_id + 1)):  # no live answer, another user's
        if holder is not None:
            redis_client.set(session_key("s-1"), holder)
        with pytest.raises(SessionUnconfirmed):
            registry.claim_and_read(request, quotas, session_id="s-1")
        assert redis_client.keys("atomicseats:[ri]*") == redis_client.keys("LIMITS:*") == []

    redis_client.set(session_key("s-1"), str(request.user_id))
    assert registry.claim_and_read(request, quotas, session_id="s-1").earlier is None
    assert registry.claim_and_read(request, quotas, session_id="s-1").earlier == request  # the key's first claim
    assert len(redis_client.keys("LIMITS:*")) == 1
    assert registry.claim_and_read(accepted(), quotas).earlier is None  # no session to confirm: not asked


def test_claim_and_read_without_redis_says_so_rather_than_claiming_nothing():
    """The caller must know the key was not held: a silent miss let two bodies race on one key."""
    registry = RedisRequestRegistry(connect(CLOSED_PORT_URL))
    with pytest.raises(RegistryUnavailable):
        registry.claim_and_read(accepted(idempotency_key="order-7"))


def test_release_undoes_a_claim_but_never_a_later_one(redis_client):
    registry = RedisRequestRegistry(redis_client)
    first = accepted(idempotency_key="order-7")
    registry.claim(first)
    registry.release(first)
    assert registry.find(first.request_id) is None
    second = accepted(idempotency_key="order-7")
    assert registry.claim(second) is None  # the key is free again
    registry.release(first)  # a stale release: the key now holds another request
    assert registry.claim(accepted(idempotency_key="order-7")) == second
    assert registry.find(second.request_id) == second


def test_a_flushed_redis_is_a_miss_and_claims_start_over(redis_client):
    registry = RedisRequestRegistry(redis_client)
    request = accepted(idempotency_key="order-9")
    registry.claim(request)
    redis_client.flushdb()
    assert registry.find(request.request_id) is None
    assert registry.claim(accepted(idempotency_key="order-9")) is None  # Postgres decides from here


def test_a_damaged_entry_is_a_miss(redis_client):
    registry = RedisRequestRegistry(redis_client)
    redis_client.set(request_key("not-json"), "{oops")
    redis_client.set(request_key("incomplete"), '{"request_id": "x"}')
    assert registry.find("not-json") is None
    assert registry.find("incomplete") is None


def test_a_redis_that_is_down_fails_fast_and_raises_only_where_the_caller_must_know():
    down = connect(CLOSED_PORT_URL)
    registry, mirror = RedisRequestRegistry(down), RedisWaitlistMirror(down)
    outcomes = RedisOutcomeChannel(down)
    request = accepted(idempotency_key="order-1")
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):  # a key it cannot hold: the caller decides
        registry.claim(request)
    registry.release(request)
    assert registry.find(request.request_id) is None
    mirror.replace(1, waiting([1, 2, 3]))
    mirror.apply(1, waiting([4]), [1], 3)
    assert mirror.load(1) is None
    assert mirror.place(1, 2, TIER) is None
    outcomes.publish([request.request_id])
    outcomes.wait(request.request_id, 5)  # degraded: returns early so the caller re-reads Postgres
    with outcomes.subscribe(request.request_id) as subscription:
        subscription.wait(5)
    assert time.monotonic() - started < 3.0


@pytest.fixture
def hung_redis_url():
    """A server that accepts connections and never answers (a stopped or wedged Redis)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted_sockets: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                accepted_sockets.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()
    for accepted_socket in accepted_sockets:
        accepted_socket.close()


def test_a_hung_redis_costs_each_call_only_the_short_timeout(hung_redis_url):
    hung = connect(hung_redis_url)
    registry, outcomes = RedisRequestRegistry(hung), RedisOutcomeChannel(hung)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        registry.claim(accepted())
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    outcomes.wait(str(uuid.uuid4()), 10)  # the subscriber's handshake must not wait a whole long poll
    assert time.monotonic() - started < 2.0


# --- waitlist mirror -------------------------------------------------------------------


TIER, OTHER_TIER = 7, 8


def waiting(entry_ids, seats=1, tier_id=TIER):
    return {entry_id: MirroredEntry(seats, tier_id) for entry_id in entry_ids}


def test_the_mirror_holds_ten_thousand_entries_in_a_fifo_queue_per_tier(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    entries = {entry_id: MirroredEntry(1, TIER if entry_id % 2 else OTHER_TIER) for entry_id in range(1_000, 11_000)}
    mirror.replace(5, entries)
    assert mirror.load(5) == {entry_id: entry.tier_id for entry_id, entry in entries.items()}
    assert mirror.place(5, 1_000, OTHER_TIER) == (1, 0)
    assert mirror.place(5, 1_001, TIER) == (1, 0)
    assert mirror.place(5, 10_999, TIER) == (5_000, None)  # far back: the place alone
    assert mirror.place(5, 1_010, OTHER_TIER) == (6, 5)  # 1000, 1002, .. 1008 ahead in its tier
    assert mirror.place(5, 1_010, TIER) is None  # not in that tier's queue: the caller asks Postgres
    assert mirror.place(5, 999, OTHER_TIER) is None  # not waiting
    mirror.replace(5, waiting([3, 1, 2], tier_id=None))  # a replace overwrites the whole waitlist
    assert mirror.load(5) == {1: None, 2: None, 3: None}  # FIFO (id) order whatever the order given
    assert mirror.place(5, 3, None) == (3, 2)
    for key in (waitlist_queue_key(5), waitlist_seats_key(5), waitlist_members_key(5)):
        assert 0 < redis_client.ttl(key) <= redis_state.WAITLIST_TTL_S


def test_an_empty_mirror_is_not_a_missing_one(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    assert mirror.load(3) is None
    assert mirror.place(3, 1, TIER) is None
    mirror.replace(3, {})
    assert mirror.load(3) == {}
    redis_client.flushdb()
    assert mirror.load(3) is None


def test_a_damaged_mirror_is_a_miss_never_a_wrong_answer(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    mirror.replace(6, waiting([1, 2]))
    redis_client.hset(waitlist_members_key(6), "2", queue_member(3, TIER))  # names another entry
    assert mirror.load(6) is None
    mirror.replace(6, waiting([1, 2]))
    redis_client.zrem(waitlist_queue_key(6), queue_member(2, TIER))  # the queue lost one
    assert mirror.load(6) is None
    mirror.replace(6, waiting([1, 2]))
    redis_client.hset(waitlist_members_key(6), "2", "not a member")
    assert mirror.load(6) is None


def test_apply_appends_and_removes_and_drops_a_mirror_that_disagrees(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    mirror.apply(4, waiting([1, 2]), [], 2)
    assert mirror.load(4) is None  # a missing mirror stays missing: it would be partial
    mirror.replace(4, waiting([1, 2, 3]))
    mirror.apply(4, {4: MirroredEntry(1, OTHER_TIER), 5: MirroredEntry(1, TIER)}, [1, 3], 3)
    assert mirror.load(4) == {2: TIER, 4: OTHER_TIER, 5: TIER}
    assert mirror.place(4, 5, TIER) == (2, 1)
    assert mirror.place(4, 4, OTHER_TIER) == (1, 0)
    mirror.apply(4, {}, [99], 3)  # removing what it does not hold changes nothing
    assert mirror.load(4) == {2: TIER, 4: OTHER_TIER, 5: TIER}
    mirror.apply(4, waiting([6]), [], 5)  # Postgres counts 5 waiting, the mirror would hold 4
    assert mirror.load(4) is None
    keys = (waitlist_queue_key(4), waitlist_length_key(4), waitlist_seats_key(4), waitlist_members_key(4))
    assert redis_client.exists(*keys) == 0


def test_a_place_counts_the_seats_asked_ahead_in_its_tier_and_keeps_them_through_apply(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    mirror.replace(9, {1: MirroredEntry(4, TIER), 2: MirroredEntry(1, TIER), 3: MirroredEntry(2, TIER)})
    assert [mirror.place(9, entry_id, TIER) for entry_id in (1, 2, 3)] == [(1, 0), (2, 4), (3, 5)]
    mirror.apply(9, {4: MirroredEntry(6, TIER), 5: MirroredEntry(9, OTHER_TIER)}, [2], 4, {1: 3})
    # the head partly served (3 left), 2 gone, 4 joined its queue, 5 another tier's (not ahead of anyone)
    assert [mirror.place(9, entry_id, TIER) for entry_id in (1, 3, 4)] == [(1, 0), (2, 3), (3, 5)]
    assert mirror.place(9, 5, OTHER_TIER) == (1, 0)
    assert mirror.place(9, 2, TIER) is None  # gone: the caller asks Postgres
    assert redis_client.hexists(waitlist_seats_key(9), "2") == 0  # its seats went with it
    redis_client.hdel(waitlist_seats_key(9), "3")  # a seat count missing: unknown behind it, never wrong
    assert mirror.place(9, 4, TIER) == (3, None)
    assert mirror.place(9, 1, TIER) == (1, 0)


def test_seats_ahead_are_counted_over_a_bounded_stretch_of_the_queue(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    bound = limits.WAITLIST_SEATS_AHEAD_ENTRIES_MAX
    mirror.replace(10, waiting(range(1, bound + 3), seats=2))
    assert mirror.place(10, bound + 1, TIER) == (bound + 1, 2 * bound)  # exactly `bound` entries ahead
    assert mirror.place(10, bound + 2, TIER) == (bound + 2, None)  # further back: the place alone
    assert mirror.place(10, 999_999, TIER) is None


def test_a_queue_too_long_to_mirror_is_dropped(redis_client):
    mirror = RedisWaitlistMirror(redis_client)
    mirror.replace(8, waiting([1, 2]))
    mirror.replace(8, waiting(range(1, limits.WAITLIST_MIRROR_ENTRIES_MAX + 2)))
    assert mirror.load(8) is None
    assert mirror.place(8, 1, TIER) is None


# --- outcome channel -------------------------------------------------------------------


def test_a_publish_wakes_a_waiter_well_before_its_timeout(redis_client):
    outcomes = RedisOutcomeChannel(redis_client)
    request_id = str(uuid.uuid4())
    woken_after_s: list[float] = []

    def waiter() -> None:
        started = time.monotonic()
        outcomes.wait(request_id, 10)
        woken_after_s.append(time.monotonic() - started)

    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_for_subscriber(redis_client, request_id)
    outcomes.publish([str(uuid.uuid4()), request_id])
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert woken_after_s[0] < WAKE_UP_S_MAX
    assert redis_client.pubsub_numsub(redis_state.outcome_channel(request_id))[0][1] == 0  # unsubscribed


def test_wait_times_out_when_nothing_is_published(redis_client):
    outcomes = RedisOutcomeChannel(redis_client)
    started = time.monotonic()
    outcomes.wait(str(uuid.uuid4()), 0.6)  # longer than the command client's 0.5 s socket timeout
    assert 0.55 <= time.monotonic() - started < 2.0
    outcomes.publish([str(uuid.uuid4())])  # nobody listening: harmless


def test_subscribe_first_then_read_then_wait_misses_no_outcome(redis_client):
    """The race: the outcome is published after the reader's Postgres read but before its wait."""
    outcomes = RedisOutcomeChannel(redis_client)
    request_id = str(uuid.uuid4())
    with outcomes.subscribe(request_id) as subscription:
        # ... the reader reads Postgres here and finds the request still pending ...
        outcomes.publish([request_id])  # ... the allocation commits and announces it ...
        started = time.monotonic()
        subscription.wait(10)
        assert time.monotonic() - started < WAKE_UP_S_MAX
        subscription.wait(10)  # announced once: every later wait returns at once
        assert time.monotonic() - started < WAKE_UP_S_MAX
    started = time.monotonic()
    outcomes.wait(request_id, 0.3)  # the simple form subscribes too late for that publish
    assert time.monotonic() - started >= 0.25


def test_the_subscriber_socket_outlasts_the_longest_poll(redis_client):
    outcomes = RedisOutcomeChannel(redis_client)
    socket_timeout_s = outcomes.subscriber.connection_pool.connection_kwargs["socket_timeout"]
    assert socket_timeout_s > limits.LONG_POLL_WAIT_S_MAX
    assert redis_client.connection_pool.connection_kwargs["socket_timeout"] < 1  # commands stay fast


def _wait_for_subscriber(redis_client: redis.Redis, request_id: str) -> None:
    channel = redis_state.outcome_channel(request_id)
    for _ in range(200):
        if redis_client.pubsub_numsub(channel)[0][1]:
            return
        time.sleep(0.01)
    pytest.fail("the waiter never subscribed")
