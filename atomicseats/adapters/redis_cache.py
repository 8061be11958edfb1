"""Seat availability cached in Redis: a hash per event, rebuilt from Postgres at will.

Redis is never the truth (DESIGN invariant 6): everything here can be lost and
rebuilt by `flask reconcile`. Writes happen only after the transaction commits.
"""

from __future__ import annotations

import logging

import redis

from atomicseats.services.contracts import EventAvailability

log = logging.getLogger(__name__)

KEY_PREFIX = "atomicseats:event:"
KEY_TTL_S = 24 * 3600
SOCKET_TIMEOUT_S = 0.5


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S, decode_responses=True
    )


def availability_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:availability"


class RedisAvailabilityCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def store(self, availability: list[EventAvailability]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for item in availability:
                key = availability_key(item.event_id)
                pipe.hset(key, mapping=_encode(item))
                pipe.expire(key, KEY_TTL_S)
            pipe.execute()
        except redis.RedisError as error:  # best-effort: reconcile repairs it
            log.warning("cache.store_failed", extra={"error": str(error)})

    def load(self, event_id: int) -> EventAvailability | None:
        try:
            fields = self.client.hgetall(availability_key(event_id))
        except redis.RedisError as error:
            log.warning("cache.load_failed", extra={"error": str(error)})
            return None
        return _decode(event_id, fields) if fields else None

    def forget(self, event_id: int) -> None:
        try:
            self.client.delete(availability_key(event_id))
        except redis.RedisError as error:
            log.warning("cache.forget_failed", extra={"error": str(error)})


def _encode(item: EventAvailability) -> dict[str, str]:
    return {
        "capacity_seats": str(item.capacity_seats),
        "reserved_seats": str(item.reserved_seats),
        "is_waitlist_open": "1" if item.is_waitlist_open else "0",
        "is_deleted": "1" if item.is_deleted else "0",
        "waitlist_length": str(item.waitlist_length),
    }


def _decode(event_id: int, fields: dict[str, str]) -> EventAvailability | None:
    try:
        return EventAvailability(
            event_id=event_id,
            capacity_seats=int(fields["capacity_seats"]),
            reserved_seats=int(fields["reserved_seats"]),
            is_waitlist_open=fields["is_waitlist_open"] == "1",
            is_deleted=fields["is_deleted"] == "1",
            waitlist_length=int(fields["waitlist_length"]),
        )
    except (KeyError, ValueError):
        return None  # a damaged entry is a miss, never a wrong answer


SESSION_TTL_S = 10  # how long a "live" answer may be reused; logout deletes it at once
SESSION_TOMBSTONE_TTL_S = 60  # longer than any read that started before the logout committed

# Remember a session as live unless it was revoked meanwhile (a reader that checked
# Postgres just before the logout committed must not resurrect it).
_REMEMBER_UNLESS_REVOKED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def session_key(session_id: str) -> str:
    return f"atomicseats:session:{session_id}:live"


def session_tombstone_key(session_id: str) -> str:
    return f"atomicseats:session:{session_id}:revoked"


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

    def remember(self, session_id: str, user_id: int) -> None:
        try:
            keys = [session_key(session_id), session_tombstone_key(session_id)]
            self._remember(keys=keys, args=[str(user_id), SESSION_TTL_S])
        except redis.RedisError as error:
            log.warning("cache.session_failed", extra={"error": str(error)})

    def forget(self, session_id: str) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(session_tombstone_key(session_id), "1", ex=SESSION_TOMBSTONE_TTL_S)
            pipe.delete(session_key(session_id))
            pipe.execute()
        except redis.RedisError as error:
            log.warning("cache.session_failed", extra={"error": str(error)})
