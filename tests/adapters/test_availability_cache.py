"""The availability cache's batch read and miss fill, which listings use (real Redis from `make test`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atomicseats.adapters.embedded import NoAvailabilityCache
from atomicseats.adapters.redis_cache import KEY_TTL_S, RedisAvailabilityCache, availability_key, connect
from atomicseats.services.contracts import EventAvailability

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
SALES_END_AT = datetime(2031, 5, 1, 18, 0, 0, 123456, tzinfo=UTC)


def availability(
    event_id: int, reserved_seats: int = 0, waitlist_length: int = 0, version: int = 1
) -> EventAvailability:
    return EventAvailability(
        event_id=event_id,
        capacity_seats=10,
        reserved_seats=reserved_seats,
        is_waitlist_open=True,
        is_deleted=False,
        waitlist_length=waitlist_length,
        sales_end_at=SALES_END_AT,
        version=version,
    )


@pytest.fixture
def connection(redis_url):
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_load_many_returns_the_entries_it_holds_and_leaves_out_the_rest(connection):
    cache = RedisAvailabilityCache(connection)
    cache.store([availability(1, reserved_seats=3), availability(3, waitlist_length=2)])

    assert cache.load_many([1, 2, 3]) == {1: availability(1, reserved_seats=3), 3: availability(3, waitlist_length=2)}
    assert cache.load_many([]) == {}
    assert cache.load(1) == availability(1, reserved_seats=3)
    assert cache.load(2) is None


def test_load_many_treats_damaged_entries_as_misses_and_still_reads_the_others(connection):
    cache = RedisAvailabilityCache(connection)
    cache.store([availability(event_id) for event_id in (1, 2, 3, 4)])
    connection.hset(availability_key(1), "reserved_seats", "eleven")
    connection.hset(availability_key(2), "reserved_seats", "11")  # above the capacity
    connection.delete(availability_key(3))
    connection.set(availability_key(3), "not a hash")  # WRONGTYPE for HGETALL

    assert cache.load_many([1, 2, 3, 4]) == {4: availability(4)}


def test_store_missing_fills_absent_entries_and_never_overwrites_one(connection):
    cache = RedisAvailabilityCache(connection)
    cache.store([availability(1, reserved_seats=5)])  # a writer's entry, after a newer commit

    cache.store_missing([availability(1, reserved_seats=2), availability(2, reserved_seats=7)])

    assert cache.load_many([1, 2]) == {1: availability(1, reserved_seats=5), 2: availability(2, reserved_seats=7)}
    assert 0 < connection.ttl(availability_key(2)) <= KEY_TTL_S
    cache.store_missing([])


def test_store_keeps_the_newest_version_whatever_order_the_writes_arrive_in(connection):
    """Two writers of one event commit in the row lock's order, but their after-commit stores can
    reach Redis the other way round: the older figures must not replace the newer."""
    cache = RedisAvailabilityCache(connection)
    cache.store([availability(1, reserved_seats=5, version=8), availability(2, reserved_seats=1, version=3)])

    cache.store([availability(1, reserved_seats=4, version=7), availability(2, reserved_seats=2, version=4)])

    assert cache.load_many([1, 2]) == {1: availability(1, reserved_seats=5), 2: availability(2, reserved_seats=2)}
    assert cache.load(1).version == 8 and cache.load(2).version == 4
    cache.store([availability(1, reserved_seats=6, version=8)])  # the same version again (reconcile): written
    assert cache.load(1) == availability(1, reserved_seats=6)


def test_an_entry_without_a_version_is_a_miss_and_any_write_replaces_it(connection):
    """Written by the code before versions: read as absent, filled by a reader, replaced by a writer."""
    cache = RedisAvailabilityCache(connection)
    cache.store([availability(1, reserved_seats=5), availability(2, reserved_seats=5)])
    connection.hdel(availability_key(1), "version")
    connection.hdel(availability_key(2), "version")
    assert cache.load_many([1, 2]) == {}

    cache.store_missing([availability(1, reserved_seats=2)])
    cache.store([availability(2, reserved_seats=3, version=0)])

    assert cache.load_many([1, 2]) == {1: availability(1, reserved_seats=2), 2: availability(2, reserved_seats=3)}


def test_with_redis_unreachable_reads_miss_and_writes_are_dropped():
    cache = RedisAvailabilityCache(connect(CLOSED_PORT_URL))

    assert cache.load_many([1, 2]) == {}
    assert cache.load(1) is None
    cache.store_missing([availability(1)])
    cache.store([availability(1)])


def test_the_embedded_cache_holds_nothing():
    cache = NoAvailabilityCache()
    cache.store([availability(1)])
    cache.store_missing([availability(2)])

    assert cache.load_many([1, 2]) == {}
    assert cache.load(1) is None
