"""Request registry, waitlist mirror and outcome pub/sub in Redis: all best-effort.

Postgres is the only truth (DESIGN invariant 6). Everything here may vanish at any
moment (Redis runs without persistence; where it may evict keys, a memory limit and a policy
other than noeviction, the registry sets no mark: see `hold_keys_after`) and every caller has a
Postgres answer to fall back on: a failed or missing read returns None, a failed write logs a warning
and is repaired by `flask reconcile`. Nothing here raises a Redis error to a caller.

Keys:
  atomicseats:request:{request_id}                   accepted request (JSON), with a TTL
  atomicseats:idem:{user_id}:{sha256(key)}           first request accepted for that key
  atomicseats:registry:keys-held-after               the registry's mark (epoch seconds, no TTL): it
                                                     holds every key claimed after it (hold_keys_after);
                                                     lost with the claims, or a claim falls back on Postgres
  atomicseats:event:{event_id}:waitlist:queue        sorted set of "{tier id}:{entry id}" (zero-padded,
                                                     all score 0): each tier's FIFO queue, in id order
  atomicseats:event:{event_id}:waitlist:length       marker: the mirror exists, and its length
  atomicseats:event:{event_id}:waitlist:seats        hash: entry id -> seats it still waits for
  atomicseats:event:{event_id}:waitlist:members      hash: entry id -> its member of the queue
  atomicseats:outcome:{request_id}                   pub/sub channel: "this request is final"
  atomicseats:outcome-hub                            pub/sub channel every AsyncOutcomeHub listens on
  LIMITS:LIMITER/{scope}/{user_id}/{amount}/{n}/{unit}  a user's quota counter (`limits`' fixed window)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis

from atomicseats.adapters import redis_cache, request_message
from atomicseats.adapters.redis_cache import KEY_PREFIX, KEY_TTL_S, SOCKET_TIMEOUT_S
from atomicseats.adapters.request_message import message_of
from atomicseats.domain import limits
from atomicseats.errors import RateLimited
from atomicseats.services.contracts import AcceptedRequest, Quota
from atomicseats.services.ports import Claim, MirroredEntry, RegistryUnavailable, SessionUnconfirmed

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub as AsyncPubSub

log = logging.getLogger(__name__)

REQUEST_KEY_PREFIX = "atomicseats:request:"
IDEMPOTENCY_KEY_PREFIX = "atomicseats:idem:"
KEYS_HELD_AFTER_KEY = "atomicseats:registry:keys-held-after"  # epoch seconds (RequestRegistry.hold_keys_after)
EVICTION_RECHECK_S = 60.0  # a Redis found evicting keys is asked again after this long (hold_keys_after)
OUTCOME_CHANNEL_PREFIX = "atomicseats:outcome:"
QUOTA_KEY_PREFIX = "LIMITS:"  # `limits`' RedisStorage prefix: a quota counts where Flask-Limiter counts
REQUEST_TTL_S_DEFAULT = 24 * 3600
WAITLIST_TTL_S = KEY_TTL_S
# Entries per ZADD/HSET of a replace: keeps each command small however long the queue.
WAITLIST_PUSH_CHUNK_SIZE = 1000
# A queue member's widths: a tier id, then an entry id (a PostgreSQL bigint has 19 digits).
# Zero-padded, the members of one tier sort together and by entry id, so a place is a ZLEXCOUNT.
_TIER_DIGITS, _ENTRY_DIGITS = 12, 19
# The subscriber's reads may legitimately block for a whole long poll.
SUBSCRIBER_SOCKET_TIMEOUT_S = limits.LONG_POLL_WAIT_S_MAX + 5
SUBSCRIBE_CONFIRM_TIMEOUT_S = 1.0
PUBSUB_MESSAGES_PER_WAIT_MAX = 64  # replies read in one wait before it gives up early
DEGRADED_WAIT_S = 0.25  # without pub/sub, a waiter sleeps this long and lets the caller re-read
OUTCOME_MESSAGE = "final"

assert SUBSCRIBER_SOCKET_TIMEOUT_S > limits.LONG_POLL_WAIT_S_MAX
assert SUBSCRIBE_CONFIRM_TIMEOUT_S < SUBSCRIBER_SOCKET_TIMEOUT_S
assert DEGRADED_WAIT_S <= limits.LONG_POLL_WAIT_S_MAX
assert WAITLIST_PUSH_CHUNK_SIZE <= limits.WAITLIST_MIRROR_ENTRIES_MAX

REDIS_FAILURES = (redis.RedisError, OSError)


def _handshake_quickly(connection: redis.Connection) -> None:
    """Run the connect handshake (AUTH, SELECT, CLIENT SETINFO) under the short command timeout.

    Only pub/sub reads may wait a whole long poll; a hung server must fail a new
    subscriber in SOCKET_TIMEOUT_S, not in SUBSCRIBER_SOCKET_TIMEOUT_S.
    """
    sock = connection._sock  # the hook runs right after the socket connected
    assert sock is not None
    sock.settimeout(SOCKET_TIMEOUT_S)
    connection.on_connect()
    sock.settimeout(connection.socket_timeout)


def request_key(request_id: str) -> str:
    return f"{REQUEST_KEY_PREFIX}{request_id}"


def idempotency_key_of(user_id: int, idempotency_key: str) -> str:
    """The key is hashed: clients choose it, so it never lands in Redis (or its logs) raw."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{IDEMPOTENCY_KEY_PREFIX}{user_id}:{digest}"


def waitlist_queue_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:waitlist:queue"


def waitlist_length_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:waitlist:length"


def waitlist_seats_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:waitlist:seats"


def waitlist_members_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:waitlist:members"


def _waitlist_keys(event_id: int) -> list[str]:
    """The mirror's keys, in the order its scripts take them."""
    return [
        waitlist_queue_key(event_id),
        waitlist_length_key(event_id),
        waitlist_seats_key(event_id),
        waitlist_members_key(event_id),
    ]


def _tier_prefix(tier_id: int | None) -> str:
    return f"{tier_id or 0:0{_TIER_DIGITS}d}:"


def queue_member(entry_id: int, tier_id: int | None) -> str:
    """The entry's member of the event's queue (see the module's doc; tier None queues as 0)."""
    assert 0 < entry_id < 10**_ENTRY_DIGITS and (tier_id is None or 0 < tier_id < 10**_TIER_DIGITS)
    return f"{_tier_prefix(tier_id)}{entry_id:0{_ENTRY_DIGITS}d}"


def _split_member(member: str | bytes) -> tuple[int, int]:
    """(tier id, entry id) of a queue member; ValueError when it is not one."""
    text = member.decode() if isinstance(member, bytes) else member
    tier, entry = text.split(":")
    return int(tier), int(entry)


def _tier_of_member(member: str | bytes) -> int | None:
    return _split_member(member)[0] or None


def _entry_of_member(member: str | bytes) -> int:
    return _split_member(member)[1]


def outcome_channel(request_id: str) -> str:
    return f"{OUTCOME_CHANNEL_PREFIX}{request_id}"


# --- request registry ------------------------------------------------------------------

# KEYS: the request key, the idempotency key (when ARGV[3] is 1), the session's live key (when
# ARGV[4] is not empty), then one counter key per quota. ARGV[1] request JSON, ARGV[2] TTL,
# ARGV[3] 1 with an idempotency key else 0, ARGV[4] the user id the session must be live for
# (empty: no session to confirm), then (amount, window s) per quota. Atomic. A session the
# cache does not hold live for that user answers 0, and nothing is counted or claimed. Then
# the quotas are counted, as `limits`' fixed window counts them (INCRBY, EXPIRE on the first
# hit); the first one used up answers its seconds left (a number, at least 1) and nothing is
# claimed. Else either the key was free and both are written, or the first request's JSON is
# returned.
_CLAIM_SCRIPT = """
local keyed = tonumber(ARGV[3])
local first_counter = 2 + keyed
if ARGV[4] ~= '' then
  if redis.call('GET', KEYS[first_counter]) ~= ARGV[4] then return 0 end
  first_counter = first_counter + 1
end
for i = first_counter, #KEYS do
  local slot = 5 + 2 * (i - first_counter)
  local count = redis.call('INCRBY', KEYS[i], 1)
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[slot + 1]) end
  if count > tonumber(ARGV[slot]) then
    return math.max(redis.call('TTL', KEYS[i]), 1)
  end
end
if keyed == 1 then
  local earlier = redis.call('GET', KEYS[2])
  if earlier then return earlier end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

# Delete each key only while it still holds request ARGV[1] (a later claim is left alone).
_RELEASE_SCRIPT = """
local released = 0
for _, key in ipairs(KEYS) do
  local stored = redis.call('GET', key)
  if stored then
    local ok, decoded = pcall(cjson.decode, stored)
    if ok and type(decoded) == 'table' and decoded['request_id'] == ARGV[1] then
      redis.call('DEL', key)
      released = released + 1
    end
  end
end
return released
"""


class RedisRequestRegistry:
    """Accepted requests the database may not have recorded yet (the Kafka path).

    `claim` returns the request first accepted for the same (user, Idempotency-Key),
    or None: None also when Redis fails, and the caller then relies on Postgres (the
    request id derived from the key keeps a retry idempotent there anyway).
    """

    def __init__(self, client: redis.Redis, ttl_s: int = REQUEST_TTL_S_DEFAULT, counts_quotas: bool = False) -> None:
        assert ttl_s > 0
        self.client = client
        self.ttl_s = ttl_s
        self.counts_quotas = counts_quotas  # True when this Redis is also the rate limiter's storage
        self.confirms_sessions = True  # the session cache is in this Redis too (wiring)
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._eviction_checked_until = 0.0  # monotonic: `hold_keys_after` found Redis evicting until then

    @property
    def key_ttl_s(self) -> int:
        return self.ttl_s

    def claim(self, accepted: AcceptedRequest) -> AcceptedRequest | None:
        return self.claim_and_read(accepted).earlier

    def claim_and_read(
        self, accepted: AcceptedRequest, quotas: Sequence[Quota] = (), session_id: str | None = None
    ) -> Claim:
        """`claim`, plus the event's cached availability (and, for a keyed request, the mark of
        `hold_keys_after`), in one round trip (the booking hot path), confirming `session_id`
        live for the user first (SessionUnconfirmed, nothing counted or claimed, when the
        session cache does not hold it) and counting the user's `quotas` next (RateLimited,
        nothing claimed, when one is used up). A Redis failure raises RegistryUnavailable: the
        caller decides whether Postgres can stand in (it can for a request without a key, or
        one recorded before answering); the quotas then go uncounted (they fail open)."""
        keys = self._keys_of(accepted)
        keyed = len(keys) - 1
        if session_id is not None:
            keys.append(redis_cache.session_key(session_id))
        quota_args: list[int] = []
        for quota in quotas:
            keys.append(f"{QUOTA_KEY_PREFIX}{quota.key}")
            quota_args += (quota.amount, quota.window_s)
        session_user = "" if session_id is None else str(accepted.user_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(redis_cache.availability_key(accepted.event_id))
        # EVAL rather than a registered Script: in a pipeline a Script first asks SCRIPT EXISTS,
        # a second round trip. Redis caches the compiled body by its hash either way.
        pipe.eval(
            _CLAIM_SCRIPT, len(keys), *keys, _encode_request(accepted), self.ttl_s, keyed, session_user, *quota_args
        )
        if keyed:
            pipe.get(KEYS_HELD_AFTER_KEY)
        try:
            fields, earlier, *mark = pipe.execute()
        except REDIS_FAILURES as error:
            log.warning("registry.claim_failed", extra={"request_id": accepted.request_id, "error": str(error)})
            raise RegistryUnavailable from error
        if earlier == 0:
            raise SessionUnconfirmed
        if isinstance(earlier, int):
            raise RateLimited(earlier)
        keys_held_after = _decode_mark(mark[0]) if mark else None
        if mark and mark[0] is not None and keys_held_after is None:
            self._drop_damaged_mark()  # else SET NX could never mark again: Postgres read for good
        return Claim(
            earlier=None if earlier is None else _decode_request(earlier),
            availability=redis_cache.decode_availability(accepted.event_id, fields) if fields else None,
            keys_held_after=keys_held_after,
        )

    def _drop_damaged_mark(self) -> None:
        try:
            self.client.delete(KEYS_HELD_AFTER_KEY)
        except REDIS_FAILURES as error:
            log.warning("registry.mark_failed", extra={"error": str(error)})

    def hold_keys_after(self, since: Callable[[], datetime | None]) -> None:
        """Sets the mark only where Redis keeps every claim until its TTL: a Redis that may
        evict keys (a memory limit and a policy other than noeviction), or whose settings it
        will not show (CONFIG renamed or refused), gets no mark, and `since` is not called
        (every keyed claim asks the database for its key, and nothing more). Asked again at
        most once a minute while unmarked."""
        try:
            if not self._keeps_every_key():
                return
            marked_after = since()
            if marked_after is None:
                return
            self.client.set(KEYS_HELD_AFTER_KEY, repr(marked_after.timestamp()), nx=True)
        except REDIS_FAILURES as error:  # no mark: the next keyed claim asks the database again
            log.warning("registry.mark_failed", extra={"error": str(error)})

    def _keeps_every_key(self) -> bool:
        now = time.monotonic()
        if now < self._eviction_checked_until:
            return False  # found evicting (or unreadable) a moment ago
        settings: Mapping[str | None, str | None]
        try:
            settings = self.client.config_get("maxmemory*")
        except redis.ResponseError as error:  # CONFIG renamed or not permitted (a managed Redis)
            settings = {"error": str(error)}
        if keeps_every_key(settings):
            return True
        self._eviction_checked_until = now + EVICTION_RECHECK_S
        log.warning("registry.mark_withheld", extra={"redis_settings": settings})
        return False

    def release(self, accepted: AcceptedRequest) -> None:
        try:
            self._release(keys=self._keys_of(accepted), args=[accepted.request_id])
        except REDIS_FAILURES as error:  # the TTL cleans up what we could not
            log.warning("registry.release_failed", extra={"request_id": accepted.request_id, "error": str(error)})

    def find(self, request_id: str) -> AcceptedRequest | None:
        try:
            stored = self.client.get(request_key(request_id))
        except REDIS_FAILURES as error:
            log.warning("registry.find_failed", extra={"request_id": request_id, "error": str(error)})
            return None
        return None if stored is None else _decode_request(stored)

    @staticmethod
    def _keys_of(accepted: AcceptedRequest) -> list[str]:
        keys = [request_key(accepted.request_id)]
        if accepted.idempotency_key is not None:
            keys.append(idempotency_key_of(accepted.user_id, accepted.idempotency_key))
        return keys


def _encode_request(accepted: AcceptedRequest) -> str:
    return json.dumps(message_of(accepted), sort_keys=True, separators=(",", ":"))


def keeps_every_key(settings: Mapping[str | None, str | None]) -> bool:
    """From CONFIG GET maxmemory*: Redis never evicts a key without a memory limit (0) or with
    the noeviction policy (it refuses writes instead); any other policy may drop claims (the
    volatile ones too: every claim has a TTL) while the mark, which has none, stays."""
    return settings.get("maxmemory") == "0" or settings.get("maxmemory-policy") == "noeviction"


def _decode_mark(stored: str | bytes | None) -> datetime | None:
    """hold_keys_after's mark; None when absent or damaged (the database is asked again)."""
    if stored is None:
        return None
    try:
        return datetime.fromtimestamp(float(stored), UTC)
    except (TypeError, ValueError, OverflowError):
        log.warning("registry.mark_damaged")
        return None


def _decode_request(stored: str | bytes) -> AcceptedRequest | None:
    try:
        return request_message.decode(stored)
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # damaged: a miss, never a wrong answer
        log.warning("registry.entry_damaged", extra={"error": str(error)})
        return None


# --- waitlist mirror -------------------------------------------------------------------

# KEYS: queue, length marker, seats hash, members hash (`_waitlist_keys`). ARGV: expected
# length, TTL, removed count, removed ids..., seats count, (entry id, seats) pairs..., then
# (entry id, member, seats) triples for the appended entries. A missing mirror stays missing
# (it would be partial); a mirror whose length then disagrees with Postgres is dropped, to be
# rebuilt. An entry without seats makes "seats ahead" unknown behind it, never wrong.
_APPLY_SCRIPT = f"""
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local expected = tonumber(ARGV[1])
local removed_count = tonumber(ARGV[3])
for i = 4, 3 + removed_count do
  local member = redis.call('HGET', KEYS[4], ARGV[i])
  if member then redis.call('ZREM', KEYS[1], member) end
  redis.call('HDEL', KEYS[4], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
local seats_at = 4 + removed_count
local seats_count = tonumber(ARGV[seats_at])
for i = seats_at + 1, seats_at + 2 * seats_count, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
for i = seats_at + 1 + 2 * seats_count, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], 0, ARGV[i + 1])
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
end
local length = redis.call('ZCARD', KEYS[1])
if length ~= expected or length > {limits.WAITLIST_MIRROR_ENTRIES_MAX} then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return -2
end
redis.call('SET', KEYS[2], length, 'EX', ARGV[2])
if length > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
else
  redis.call('DEL', KEYS[3], KEYS[4])
end
return length
"""

# KEYS: as `_APPLY_SCRIPT`'s. ARGV: the entry's member, its tier's prefix, how many entries
# ahead are read at most. Returns nil when the mirror does not hold the entry, else {index in
# its tier's queue, seats ahead} with -1 for seats not counted (too far back, or a seat count
# missing): a place costs O(log n) and the seats ahead a bounded read, whatever the length.
_PLACE_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return nil end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return nil end
local first, before = '[' .. ARGV[2], '(' .. ARGV[1]
local index = redis.call('ZLEXCOUNT', KEYS[1], first, before)
if index == 0 then return {0, 0} end
if index > tonumber(ARGV[3]) then return {index, -1} end
local ahead = redis.call('ZRANGEBYLEX', KEYS[1], first, before)
for i = 1, #ahead do ahead[i] = string.match(ahead[i], ':0*(%d+)$') end
local seats = redis.call('HMGET', KEYS[3], unpack(ahead))
local total = 0
for i = 1, #ahead do
  if not seats[i] then return {index, -1} end
  total = total + tonumber(seats[i])
end
return {index, total}
"""


class RedisWaitlistMirror:
    """Each event's waiting entries, a FIFO queue per tier; the length marker tells empty from missing."""

    keeps_entries = True

    def __init__(self, client: redis.Redis, ttl_s: int = WAITLIST_TTL_S) -> None:
        assert ttl_s > 0
        self.client = client
        self.ttl_s = ttl_s
        self._apply = client.register_script(_APPLY_SCRIPT)
        self._place = client.register_script(_PLACE_SCRIPT)

    def replace(self, event_id: int, entries: Mapping[int, MirroredEntry]) -> None:
        """Write the whole waitlist in one MULTI; a waitlist too long to mirror is dropped instead."""
        queue_key, length_key, seats_key, members_key = keys = _waitlist_keys(event_id)
        held = list(entries.items())
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*keys)
            if len(held) <= limits.WAITLIST_MIRROR_ENTRIES_MAX:
                for first in range(0, len(held), WAITLIST_PUSH_CHUNK_SIZE):
                    chunk = held[first : first + WAITLIST_PUSH_CHUNK_SIZE]
                    members = [(entry_id, queue_member(entry_id, entry.tier_id)) for entry_id, entry in chunk]
                    pipe.zadd(queue_key, {member: 0 for _, member in members})
                    pipe.hset(members_key, mapping=dict(members))
                    pipe.hset(seats_key, mapping=dict((entry_id, entry.seats) for entry_id, entry in chunk))
                if held:
                    for key in (queue_key, seats_key, members_key):
                        pipe.expire(key, self.ttl_s)
                pipe.set(length_key, len(held), ex=self.ttl_s)
            pipe.execute()
        except REDIS_FAILURES as error:
            log.warning("waitlist_mirror.replace_failed", extra={"event_id": event_id, "error": str(error)})

    def apply(
        self,
        event_id: int,
        appended: Mapping[int, MirroredEntry],
        removed: list[int],
        expected_length: int,
        seats: Mapping[int, int] | None = None,
    ) -> None:
        """Add the appended entries, drop removed ids, write the `seats` given (entry id ->
        seats it still waits for); drop the mirror if its length then disagrees."""
        pairs = [value for entry_id, count in (seats or {}).items() for value in (entry_id, count)]
        triples: list[int | str] = [
            value
            for entry_id, entry in appended.items()
            for value in (entry_id, queue_member(entry_id, entry.tier_id), entry.seats)
        ]
        args: list[int | str] = [expected_length, self.ttl_s, len(removed), *removed, len(pairs) // 2, *pairs, *triples]
        try:
            if self._apply(keys=_waitlist_keys(event_id), args=args) == -2:
                log.warning("waitlist_mirror.dropped", extra={"event_id": event_id, "expected": expected_length})
        except REDIS_FAILURES as error:
            log.warning("waitlist_mirror.apply_failed", extra={"event_id": event_id, "error": str(error)})
            self._drop_quietly(event_id)

    def load(self, event_id: int) -> dict[int, int | None] | None:
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(waitlist_members_key(event_id))
            pipe.zcard(waitlist_queue_key(event_id))
            pipe.get(waitlist_length_key(event_id))
            stored_members, stored_count, stored_length = pipe.execute()
        except REDIS_FAILURES as error:
            log.warning("waitlist_mirror.load_failed", extra={"event_id": event_id, "error": str(error)})
            return None
        if stored_length is None:
            return None
        try:
            tiers = {int(entry_id): _tier_of_member(member) for entry_id, member in stored_members.items()}
            is_whole = int(stored_length) == len(tiers) == stored_count and all(
                _entry_of_member(member) == int(entry_id) for entry_id, member in stored_members.items()
            )
        except ValueError:
            return None  # a damaged mirror is a miss, never a wrong answer
        return {entry_id: tiers[entry_id] for entry_id in sorted(tiers)} if is_whole else None

    def place(self, event_id: int, entry_id: int, tier_id: int | None) -> tuple[int, int | None] | None:
        """(1-based place in its tier's queue, seats the entries ahead there wait for) or None
        when the mirror cannot say (caller asks Postgres). The seats are counted over at most
        WAITLIST_SEATS_AHEAD_ENTRIES_MAX entries ahead: further back (or with a seat count
        missing) they are None, and the place alone is still exact."""
        args: list[int | str] = [
            queue_member(entry_id, tier_id),
            _tier_prefix(tier_id),
            limits.WAITLIST_SEATS_AHEAD_ENTRIES_MAX,
        ]
        try:
            reply = self._place(keys=_waitlist_keys(event_id), args=args)
        except REDIS_FAILURES as error:
            log.warning("waitlist_mirror.place_failed", extra={"event_id": event_id, "error": str(error)})
            return None
        if not reply:
            return None
        index, seats_ahead = (int(value) for value in reply)
        return index + 1, (None if seats_ahead < 0 else seats_ahead)

    def _drop_quietly(self, event_id: int) -> None:
        """After a failed update the mirror may be wrong: better missing than wrong."""
        try:
            self.client.delete(*_waitlist_keys(event_id))
        except REDIS_FAILURES as error:
            log.warning("waitlist_mirror.drop_failed", extra={"event_id": event_id, "error": str(error)})


# --- outcome channel -------------------------------------------------------------------


class OutcomeSubscription:
    """One reader's subscription to one request's outcome channel (a context manager).

    Subscribe FIRST, then read Postgres, then `wait`: a publish that lands after the
    subscription is confirmed is delivered to `wait`, and one that landed before it
    belongs to a commit the Postgres read already sees. So no announcement is lost.
    `wait` may return early (Redis failed, a spurious wake-up): callers re-read
    Postgres and wait again until their own deadline.
    """

    def __init__(self, subscriber: redis.Redis, request_id: str) -> None:
        self.subscriber = subscriber
        self.channel = outcome_channel(request_id)
        self.was_announced = False
        self._pubsub: redis.client.PubSub | None = None

    def __enter__(self) -> OutcomeSubscription:
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        """Subscribe and wait for Redis to confirm it, so later publishes reach us."""
        try:
            self._pubsub = self.subscriber.pubsub()
            self._pubsub.subscribe(self.channel)
            deadline = time.monotonic() + SUBSCRIBE_CONFIRM_TIMEOUT_S
            for _ in range(PUBSUB_MESSAGES_PER_WAIT_MAX):
                message = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if message is None:
                    raise redis.TimeoutError("subscription not confirmed")
                if message["type"] == "subscribe":
                    return
                if message["type"] == "message":
                    self.was_announced = True
                    return
        except REDIS_FAILURES as error:
            log.warning("outcomes.subscribe_failed", extra={"channel": self.channel, "error": str(error)})
            self.close()

    def wait(self, timeout_s: float) -> None:
        """Return on the announcement, at the timeout, or early if pub/sub is unavailable."""
        assert 0 <= timeout_s <= limits.LONG_POLL_WAIT_S_MAX
        if self.was_announced:
            return
        if self._pubsub is None:  # degraded: let the caller poll Postgres at a modest pace
            time.sleep(min(timeout_s, DEGRADED_WAIT_S))
            return
        deadline = time.monotonic() + timeout_s
        for _ in range(PUBSUB_MESSAGES_PER_WAIT_MAX):
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return
            try:
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining_s)
            except REDIS_FAILURES as error:
                log.warning("outcomes.wait_failed", extra={"channel": self.channel, "error": str(error)})
                self.close()
                time.sleep(min(max(0.0, deadline - time.monotonic()), DEGRADED_WAIT_S))
                return
            if message is not None and message["type"] == "message":
                self.was_announced = True
                return

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            return
        try:
            if pubsub.subscribed:
                pubsub.unsubscribe()
        except REDIS_FAILURES:
            pass  # closing drops the connection, which ends the subscription anyway
        finally:
            try:
                pubsub.close()
            except REDIS_FAILURES as error:
                log.warning("outcomes.close_failed", extra={"channel": self.channel, "error": str(error)})


# ARGV[1] the message, ARGV[2..] the channels (channels are not keys: nothing is stored).
_PUBLISH_ALL_SCRIPT = """
for i = 2, #ARGV do
  redis.call('PUBLISH', ARGV[i], ARGV[1])
end
return #ARGV - 1
"""
_PUBLISH_CHUNK_MAX = 1000  # channels per script call: bounds how long one call holds the Redis server


class RedisOutcomeChannel:
    """Wakes long-polling readers when their request reaches its final outcome.

    Publishing is fire-and-forget after the commit; a reader that misses it still
    finds the outcome in Postgres when its wait times out. Use `subscribe` (subscribe,
    read Postgres, wait) to close the window between a reader's first read and its
    subscription; `wait` alone is the simple form for callers that re-read afterwards.
    """

    def __init__(self, client: redis.Redis, subscriber: redis.Redis | None = None) -> None:
        self.client = client
        self._publish_all = client.register_script(_PUBLISH_ALL_SCRIPT)
        self.subscriber = subscriber if subscriber is not None else _subscriber_like(client)
        socket_timeout_s = self.subscriber.connection_pool.connection_kwargs.get("socket_timeout")
        assert socket_timeout_s is None or socket_timeout_s > limits.LONG_POLL_WAIT_S_MAX

    def publish(self, request_ids: list[str]) -> None:
        """One PUBLISH per request, all sent as one script call: a batch of thousands of
        decisions is one command and one reply, not a pipelined command and reply each."""
        if not request_ids:
            return
        try:
            for start in range(0, len(request_ids), _PUBLISH_CHUNK_MAX):
                chunk = request_ids[start : start + _PUBLISH_CHUNK_MAX]
                self._publish_all(args=[OUTCOME_MESSAGE, *(outcome_channel(request_id) for request_id in chunk)])
        except REDIS_FAILURES as error:
            log.warning("outcomes.publish_failed", extra={"requests": len(request_ids), "error": str(error)})

    def subscribe(self, request_id: str) -> OutcomeSubscription:
        """`with channel.subscribe(id) as subscription:` read Postgres, then `subscription.wait(s)`."""
        return OutcomeSubscription(self.subscriber, request_id)

    def wait(self, request_id: str, timeout_s: float) -> None:
        """Subscribe, then wait. A publish before the subscription is missed: re-read Postgres after."""
        with self.subscribe(request_id) as subscription:
            subscription.wait(timeout_s)


def _subscriber_like(client: redis.Redis) -> redis.Redis:
    """A client for the same server whose reads may block for a whole long poll."""
    pool = client.connection_pool
    kwargs = {
        **pool.connection_kwargs,
        "socket_timeout": SUBSCRIBER_SOCKET_TIMEOUT_S,
        "redis_connect_func": _handshake_quickly,
    }
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


# --- outcome channel, asynchronous: one shared subscription per process -----------------

HUB_CHANNEL = "atomicseats:outcome-hub"  # every hub listens here, so its connection always reads
HUB_HEARTBEAT_S = 5.0  # a silent connection is pinged this often
HUB_SILENCE_S_MAX = 3 * HUB_HEARTBEAT_S  # ... and given up for dead after this long without a reply
HUB_RECONNECT_DELAY_S = 0.5
DEGRADED_RECHECK_S = 1.0  # while pub/sub is down, async waiters re-read Postgres this often

assert HUB_SILENCE_S_MAX > HUB_HEARTBEAT_S
assert DEGRADED_RECHECK_S <= limits.LONG_POLL_WAIT_S_MAX


class _HubChannel:
    """The waiters of one request's outcome channel in one process."""

    def __init__(self) -> None:
        self.listeners: set[AsyncOutcomeListener] = set()
        self.confirmed = asyncio.Event()  # Redis confirmed the SUBSCRIBE on the live connection
        self.is_resubscribing = False


class AsyncOutcomeHub:
    """The outcome channel for asyncio waiters: ONE Redis pub/sub connection per process,
    shared by every waiter of that process, fanning each announcement out to the waiters
    of that request (so 5,000 waiters are 5,000 subscriptions on one connection, not
    5,000 connections or threads).

    The same promise as `OutcomeSubscription`: `listen` returns once Redis confirmed the
    subscription, so the caller's next Postgres read and every later publish are ordered.
    When the connection is lost, every waiter is woken (announcements may have been
    missed) and re-reads; the reader reconnects, resubscribes every channel, and wakes
    each channel's waiters again once its subscription is confirmed. Meanwhile waiters
    re-read Postgres every DEGRADED_RECHECK_S. Nothing here raises a Redis error.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._channels: dict[str, _HubChannel] = {}
        self._pubsub: AsyncPubSub | None = None
        self._is_connected = False
        self._connected = asyncio.Event()
        self._reader: asyncio.Task | None = None
        self._is_closed = False

    @property
    def is_connected(self) -> bool:
        return self._is_connected

    def listen(self, request_id: str) -> AsyncOutcomeListener:
        """`async with hub.listen(id) as listener:` read Postgres, then `await listener.wait(s)`."""
        return AsyncOutcomeListener(self, outcome_channel(request_id))

    async def close(self) -> None:
        self._is_closed = True
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_FAILURES):
                await reader
        await self._drop_connection()

    # -- waiters join and leave ------------------------------------------------------

    async def _join(self, listener: AsyncOutcomeListener) -> None:
        self._ensure_reader()
        if not self._is_connected:  # connecting (the process's first waiter) or reconnecting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), SUBSCRIBE_CONFIRM_TIMEOUT_S)
        channel = self._channels.get(listener.channel)
        is_new = channel is None
        if channel is None:
            channel = self._channels[listener.channel] = _HubChannel()
        channel.listeners.add(listener)  # before the SUBSCRIBE: its reply may come back before `send` returns
        if is_new and self._is_connected:
            await self._send("subscribe", listener.channel)
        if not self._is_connected:
            return  # degraded until the reader (re)connects and confirms
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.confirmed.wait(), SUBSCRIBE_CONFIRM_TIMEOUT_S)

    async def _leave(self, listener: AsyncOutcomeListener) -> None:
        channel = self._channels.get(listener.channel)
        if channel is None:
            return
        channel.listeners.discard(listener)
        # Unsubscribed only once confirmed: a SUBSCRIBE still in flight must not answer for a
        # later waiter's fresh one. The reader unsubscribes an empty channel when it confirms.
        if not channel.listeners and channel.confirmed.is_set():
            del self._channels[listener.channel]
            if self._is_connected:
                await self._send("unsubscribe", listener.channel)

    async def _send(self, command: str, *channels: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            await getattr(pubsub, command)(*channels)
        except REDIS_FAILURES as error:  # the reader sees the broken connection too and recovers
            log.warning("outcomes.hub_send_failed", extra={"command": command, "error": str(error)})

    # -- the reader --------------------------------------------------------------------

    def _ensure_reader(self) -> None:
        if self._reader is None and not self._is_closed:
            self._reader = asyncio.get_running_loop().create_task(self._read_forever(), name="outcome-hub")

    async def _read_forever(self) -> None:
        import redis.asyncio as aioredis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        while not self._is_closed:
            try:
                client = aioredis.Redis.from_url(
                    self.url,
                    socket_connect_timeout=SOCKET_TIMEOUT_S,
                    socket_timeout=SOCKET_TIMEOUT_S,
                    decode_responses=True,
                    retry=Retry(NoBackoff(), 0),  # a lost connection is ours to notice: waiters re-read
                )
                self._pubsub = pubsub = client.pubsub()
                await pubsub.subscribe(HUB_CHANNEL)  # connects
                # From here on, a waiter that joins subscribes its own channel; those that
                # joined before (or while disconnected) are subscribed now, in one command.
                names = list(self._channels)
                for name in names:
                    self._channels[name].confirmed.clear()
                    self._channels[name].is_resubscribing = True
                self._is_connected = True
                self._connected.set()
                if names:
                    await pubsub.subscribe(*names)
                await self._dispatch_until_broken(pubsub)
            except REDIS_FAILURES as error:
                log.warning("outcomes.hub_disconnected", extra={"error": str(error), "waiting": len(self._channels)})
            finally:
                self._is_connected = False
                self._connected.clear()
                await self._drop_connection()
                self._wake_everyone()  # announcements may have been missed: re-read
            await asyncio.sleep(HUB_RECONNECT_DELAY_S)

    async def _dispatch_until_broken(self, pubsub: AsyncPubSub) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=HUB_HEARTBEAT_S)
            now = loop.time()
            if message is None:
                if now - last_heard > HUB_SILENCE_S_MAX:
                    raise redis.TimeoutError("pub/sub connection silent")
                await pubsub.ping()
                continue
            last_heard = now
            kind, name = message["type"], message.get("channel")
            if kind == "message":
                channel = self._channels.get(name)
                for listener in list(channel.listeners) if channel else ():
                    listener.announce()
            elif kind == "subscribe" and name in self._channels:
                await self._confirmed(name)

    async def _confirmed(self, name: str) -> None:
        channel = self._channels[name]
        channel.confirmed.set()
        if channel.is_resubscribing:  # after a reconnect: what was published meanwhile is lost
            channel.is_resubscribing = False
            for listener in list(channel.listeners):
                listener.announce()
        if not channel.listeners:
            del self._channels[name]
            await self._send("unsubscribe", name)

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):
                await pubsub.aclose()

    def _wake_everyone(self) -> None:
        for channel in self._channels.values():
            channel.confirmed.clear()
            for listener in list(channel.listeners):
                listener.announce()


class AsyncOutcomeListener:
    """One waiter's place in the hub (an async context manager)."""

    def __init__(self, hub: AsyncOutcomeHub, channel: str) -> None:
        self.hub = hub
        self.channel = channel
        self._announced = asyncio.Event()

    async def __aenter__(self) -> AsyncOutcomeListener:
        await self.hub._join(self)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.hub._leave(self)

    def announce(self) -> None:
        self._announced.set()

    async def wait(self, timeout_s: float) -> None:
        """Return on the announcement (or a reconnect), at the timeout, or after
        DEGRADED_RECHECK_S while the subscription is not confirmed: then re-read Postgres."""
        assert 0 <= timeout_s <= limits.LONG_POLL_WAIT_S_MAX
        channel = self.hub._channels.get(self.channel)
        if not (self.hub.is_connected and channel is not None and channel.confirmed.is_set()):
            timeout_s = min(timeout_s, DEGRADED_RECHECK_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._announced.wait(), timeout_s)
        self._announced.clear()
