"""Seat availability cached in Redis: a hash per event, rebuilt from Postgres at will.

Redis is never the truth (DESIGN invariant 6): everything here can be lost and
rebuilt by `flask reconcile`. Writers store an entry only after their transaction
commits, and never over a newer version of it (the event row's `version`: their stores
can arrive in the other order than their commits); readers that missed fill absent
entries from Postgres, never overwrite one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis

from atomicseats.services.contracts import EventAvailability

log = logging.getLogger(__name__)

KEY_PREFIX = "atomicseats:event:"
KEY_TTL_S = 24 * 3600
SOCKET_TIMEOUT_S = 0.5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# The event row's version of the entry; also the field added last: an entry without it was
# written by older code and counts as absent.
VERSION_FIELD = "version"


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S, decode_responses=True
    )


class RedisProbe:
    """The Probe port for the Redis server every Redis adapter here shares."""

    name = "redis"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False


def availability_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:availability"


# Write entries whole. ARGV: ttl, number of fields, mode, the field names (the version first:
# _encode), then each key's values in that order.
# Mode "newer" (writers, after their commit): unless the stored version is higher, since two
# writers of an event can reach Redis in the other order than their row lock let them commit.
# Mode "missing" (readers filling from Postgres): only where no entry is, never over what a
# writer stored after a newer commit. An entry without a version (written by older code) is
# absent to both, else it would stay a miss until its TTL. Mode "replace" (a repair under the
# row lock): always.
_STORE_ENTRIES = """
local width = tonumber(ARGV[2])
local mode = ARGV[3]
local version_field = ARGV[4]
local written = 0
for index, key in ipairs(KEYS) do
  local first = 3 + width * index
  local stored = redis.call('HGET', key, version_field)
  local write = mode == 'replace' or not stored
  if stored and mode == 'newer' then
    write = tonumber(stored) == nil or tonumber(stored) <= tonumber(ARGV[first + 1])
  end
  if write then
    local entry = {}
    for field = 1, width do
      entry[#entry + 1] = ARGV[3 + field]
      entry[#entry + 1] = ARGV[first + field]
    end
    redis.call('HSET', key, unpack(entry))
    redis.call('EXPIRE', key, ARGV[1])
    written = written + 1
  end
end
return written
"""


class RedisAvailabilityCache:
    keeps_entries = True

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._store_entries = client.register_script(_STORE_ENTRIES)

    def store(self, availability: list[EventAvailability]) -> None:
        """Each entry, unless Redis holds a newer version of it (best-effort: reconcile repairs)."""
        self._store(availability, "newer")

    def replace(self, availability: list[EventAvailability]) -> None:
        """Each entry, whatever version Redis holds (the caller holds the events' row locks)."""
        self._store(availability, "replace")

    def store_missing(self, availability: list[EventAvailability]) -> None:
        """Each entry that is absent (best-effort: the next reader fills it)."""
        self._store(availability, "missing")

    def _store(self, availability: list[EventAvailability], mode: str) -> None:
        if not availability:
            return
        names = list(_encode(availability[0]))
        values = [value for item in availability for value in _encode(item).values()]
        try:
            keys = [availability_key(item.event_id) for item in availability]
            self._store_entries(keys=keys, args=[KEY_TTL_S, len(names), mode, *names, *values])
        except redis.RedisError as error:
            log.warning("cache.store_failed", extra={"error": str(error), "mode": mode})

    def load(self, event_id: int) -> EventAvailability | None:
        return self.load_many([event_id]).get(event_id)

    def load_many(self, event_ids: list[int]) -> dict[int, EventAvailability]:
        """One pipeline of HGETALLs; a missing, damaged or unreadable entry is a miss."""
        if not event_ids:
            return {}
        try:
            pipe = self.client.pipeline(transaction=False)
            for event_id in event_ids:
                pipe.hgetall(availability_key(event_id))
            replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as error:
            log.warning("cache.load_failed", extra={"error": str(error)})
            return {}
        found = {}
        for event_id, fields in zip(event_ids, replies, strict=True):
            availability = decode_availability(event_id, fields) if isinstance(fields, dict) and fields else None
            if availability is not None:
                found[event_id] = availability
        return found

    def forget(self, event_id: int) -> None:
        try:
            self.client.delete(availability_key(event_id))
        except redis.RedisError as error:
            log.warning("cache.forget_failed", extra={"error": str(error)})


def _encode(item: EventAvailability) -> dict[str, str]:
    return {  # the version first: _STORE_ENTRIES reads it there
        VERSION_FIELD: str(item.version),
        "capacity_seats": str(item.capacity_seats),
        "reserved_seats": str(item.reserved_seats),
        "seats_offered": str(item.seats_offered),
        "is_waitlist_open": "1" if item.is_waitlist_open else "0",
        "is_deleted": "1" if item.is_deleted else "0",
        "waitlist_length": str(item.waitlist_length),
        "sales_end_us": str((item.sales_end_at - EPOCH) // MICROSECOND),  # exact, unlike a float
    }


def decode_availability(event_id: int, fields: dict[str, str]) -> EventAvailability | None:
    """A damaged entry is a miss, never a wrong answer: unreadable, or counts no commit
    could have left (the same bounds the events table's CHECK constraints hold)."""
    try:
        availability = EventAvailability(
            event_id=event_id,
            capacity_seats=int(fields["capacity_seats"]),
            reserved_seats=int(fields["reserved_seats"]),
            is_waitlist_open=fields["is_waitlist_open"] == "1",
            is_deleted=fields["is_deleted"] == "1",
            waitlist_length=int(fields["waitlist_length"]),
            sales_end_at=EPOCH + int(fields["sales_end_us"]) * MICROSECOND,
            seats_offered=int(fields["seats_offered"]),
            version=int(fields[VERSION_FIELD]),
        )
    except (KeyError, ValueError, OverflowError):
        return None
    if availability.reserved_seats < 0 or availability.seats_offered < 0:
        return None
    if availability.seats_left < 0 or availability.waitlist_length < 0:
        return None
    return availability


SESSION_TTL_S = 10  # how long a "live" answer may be reused; logout deletes it at once
SESSION_TOMBSTONE_TTL_S = 60  # longer than any read that started before the logout committed
# How long a session Postgres last found live still counts while Postgres cannot be asked
# (down or recovering); logout deletes it at once, like the live answer.
SESSION_KNOWN_TTL_S = 300

# Remember a session as live (and as known) unless it was revoked meanwhile (a reader that
# checked Postgres just before the logout committed must not resurrect it).
_REMEMBER_UNLESS_REVOKED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
return 1
"""


def session_key(session_id: str) -> str:
    return f"atomicseats:session:{session_id}:live"


def session_tombstone_key(session_id: str) -> str:
    return f"atomicseats:session:{session_id}:revoked"


def session_known_key(session_id: str) -> str:
    return f"atomicseats:session:{session_id}:known"


class RedisSessionCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._remember = client.register_script(_REMEMBER_UNLESS_REVOKED)

    def is_live(self, session_id: str, user_id: int) -> bool:
        try:
            return self.client.get(session_key(session_id)) == str(user_id)
        except redis.RedisError as error:
            log.warning("cache.session_failed", extra={"error": str(error)})
            return False

    def was_live(self, session_id: str, user_id: int) -> bool:
        try:
            return self.client.get(session_known_key(session_id)) == str(user_id)
        except redis.RedisError as error:
            log.warning("cache.session_failed", extra={"error": str(error)})
            return False

    def remember(self, session_id: str, user_id: int) -> None:
        try:
            keys = [session_key(session_id), session_tombstone_key(session_id), session_known_key(session_id)]
            self._remember(keys=keys, args=[str(user_id), SESSION_TTL_S, SESSION_KNOWN_TTL_S])
        except redis.RedisError as error:
            log.warning("cache.session_failed", extra={"error": str(error)})

    def forget(self, session_id: str) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(session_tombstone_key(session_id), "1", ex=SESSION_TOMBSTONE_TTL_S)
            pipe.delete(session_key(session_id), session_known_key(session_id))
            pipe.execute()
        except redis.RedisError as error:
            log.warning("cache.session_failed", extra={"error": str(error)})
