"""The pending line per event in Redis (the Line port): best-effort, rebuilt from Postgres.

Keys:
  atomicseats:event:{event_id}:line           sorted set: request id, scored by its row id
  atomicseats:event:{event_id}:line:decided   every request up to this row id is decided
  atomicseats:event:{event_id}:line:rate      ring of (second, decisions) per second slot

Allocation decides an event's pending requests in arrival order (row id; the bridge
records an event's requests in id order, `_serialize_arrivals`), so "decided" is one
number per event: the highest row id decided. Leaving the line is then one
ZREMRANGEBYSCORE whatever the batch's size, and the bridge's ZADD after its commit can
never put back a request the worker decided first (it adds only row ids above the
mark): no decided entry lingers. The rate is counted per second of the Redis server's
own clock (TIME), so every process agrees on what "the last few seconds" are.

The worker's after-commit call (`leave`) also PUBLISHes the batch's outcomes: one
script call, one round trip, for all of the events one transaction decided.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from atomicseats.adapters.redis_cache import KEY_PREFIX, KEY_TTL_S
from atomicseats.adapters.redis_state import OUTCOME_MESSAGE, REDIS_FAILURES, outcome_channel
from atomicseats.domain import limits
from atomicseats.domain.line import RATE_WINDOW_S
from atomicseats.services.ports import LineDeparture, LineReading

log = logging.getLogger(__name__)

LINE_TTL_S = KEY_TTL_S  # refreshed by every request that enters; a forgotten event's line expires
RATE_TTL_S = 60
RATE_RING_SLOTS = RATE_WINDOW_S + 2  # the window, the current second, and one being overwritten
ZADD_CHUNK_SIZE = 1000  # members per ZADD inside a script (Lua's unpack has a small stack)
PUBLISH_CHUNK_MAX = 1000  # channels per script call, as the outcome channel's publish

assert RATE_RING_SLOTS > RATE_WINDOW_S + 1
assert ZADD_CHUNK_SIZE * 2 < 8000  # LUAI_MAXCSTACK


def line_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:line"


def decided_mark_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:line:decided"


def rate_key(event_id: int) -> str:
    return f"{KEY_PREFIX}{event_id}:line:rate"


# KEYS[1] line, KEYS[2] decided mark. ARGV[1] TTL, ARGV[2] the row id below which all is
# decided (0: no news), then (row id, request id) pairs. The mark only grows; then the line
# loses what is at or below it, and gains the pairs above it.
_MERGE_SCRIPT = f"""
local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
local decided = tonumber(ARGV[2])
if decided > mark then
  mark = decided
  redis.call('SET', KEYS[2], mark, 'EX', ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', mark)
end
local members = {{}}
local added = 0
for i = 3, #ARGV, 2 do
  if tonumber(ARGV[i]) > mark then
    members[#members + 1] = ARGV[i]
    members[#members + 1] = ARGV[i + 1]
    if #members >= {ZADD_CHUNK_SIZE * 2} then
      added = added + redis.call('ZADD', KEYS[1], unpack(members))
      members = {{}}
    end
  end
end
if #members > 0 then added = added + redis.call('ZADD', KEYS[1], unpack(members)) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return added
"""

# For each event, three KEYS: its line, decided mark and rate ring. ARGV[1] TTL, ARGV[2] the
# outcome message, then for each event in KEYS' order: decided through this row id (0: no
# news), decisions to count, the number of outcome channels, those channels. Each line loses
# its decided ones, this second's slot of its ring counts them, and each channel is told.
_LEAVE_SCRIPT = f"""
local now = nil
local at = 3
local told = 0
for event = 1, #KEYS / 3 do
  local line, mark_key, ring = KEYS[3 * event - 2], KEYS[3 * event - 1], KEYS[3 * event]
  local through = tonumber(ARGV[at])
  local count = tonumber(ARGV[at + 1])
  local channels = tonumber(ARGV[at + 2])
  local mark = tonumber(redis.call('GET', mark_key) or '0')
  if through > mark then
    redis.call('SET', mark_key, through, 'EX', ARGV[1])
    redis.call('ZREMRANGEBYSCORE', line, '-inf', through)
  end
  if count > 0 then
    now = now or tonumber(redis.call('TIME')[1])
    local slot = now % {RATE_RING_SLOTS}
    local stored = redis.call('HGET', ring, slot)
    if stored then
      local second, counted = string.match(stored, '^(%d+):(%d+)$')
      if tonumber(second) == now then count = count + tonumber(counted) end
    end
    redis.call('HSET', ring, slot, now .. ':' .. count)
    redis.call('EXPIRE', ring, {RATE_TTL_S})
  end
  for i = at + 3, at + 2 + channels do
    redis.call('PUBLISH', ARGV[i], ARGV[2])
  end
  told = told + channels
  at = at + 3 + channels
end
return told
"""

# KEYS[1] line, KEYS[2] rate ring. ARGV[1] the request id. Returns the rank (-1 when the line
# does not hold it), then the decisions of each of the last RATE_WINDOW_S whole seconds.
_READ_SCRIPT = f"""
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
local now = tonumber(redis.call('TIME')[1])
local reply = {{rank or -1}}
for second = now - {RATE_WINDOW_S}, now - 1 do
  local stored = redis.call('HGET', KEYS[2], second % {RATE_RING_SLOTS})
  local count = 0
  if stored then
    local at, counted = string.match(stored, '^(%d+):(%d+)$')
    if tonumber(at) == second then count = tonumber(counted) end
  end
  reply[#reply + 1] = count
end
return reply
"""


class RedisLine:
    """Each event's pending requests in arrival order, and its decisions per second."""

    keeps_entries = True

    def __init__(self, client: redis.Redis, ttl_s: int = LINE_TTL_S) -> None:
        assert ttl_s > 0
        self.client = client
        self.ttl_s = ttl_s
        self._merge = client.register_script(_MERGE_SCRIPT)
        self._leave = client.register_script(_LEAVE_SCRIPT)
        self._read = client.register_script(_READ_SCRIPT)

    def enter(self, recorded: Sequence[tuple[int, int, str]]) -> None:
        """One script call per event of the batch, all in one round trip."""
        by_event: dict[int, list[tuple[int, str]]] = {}
        for event_id, row_id, request_id in recorded:
            by_event.setdefault(event_id, []).append((row_id, request_id))
        if not by_event:
            return
        try:
            if len(by_event) == 1:
                ((event_id, entries),) = by_event.items()
                self._merge_entries(event_id, entries, 0)
                return
            pipe = self.client.pipeline(transaction=False)
            for event_id, entries in by_event.items():
                self._merge_entries(event_id, entries, 0, pipe)
            pipe.execute()
        except REDIS_FAILURES as error:  # reconcile puts them in; meanwhile they read "being counted"
            log.warning("line.enter_failed", extra={"requests": len(recorded), "error": str(error)})

    def leave(self, departures: Sequence[LineDeparture]) -> None:
        """One script call for all of the events (a transaction's, `booking._decide_batches`),
        or more when they announce over PUBLISH_CHUNK_MAX outcomes in all: an event's channels
        beyond a chunk's go in a piece of their own, with nothing more to count."""
        pieces: list[tuple[int, int, int, list[str]]] = []  # (event id, through row id, decided, channels)
        for departure in departures:
            assert departure.decided >= 0
            channels = [outcome_channel(request_id) for request_id in departure.announced]
            chunks = [
                channels[first : first + PUBLISH_CHUNK_MAX] for first in range(0, len(channels), PUBLISH_CHUNK_MAX)
            ]
            first_chunk, *more = chunks or [[]]
            pieces.append((departure.event_id, departure.through_row_id, departure.decided, first_chunk))
            pieces.extend((departure.event_id, 0, 0, chunk) for chunk in more)
        calls: list[list[tuple[int, int, int, list[str]]]] = [[]]
        for piece in pieces:  # in order, as many to a call as PUBLISH_CHUNK_MAX channels allow
            if calls[-1] and sum(len(told) for *_, told in calls[-1]) + len(piece[3]) > PUBLISH_CHUNK_MAX:
                calls.append([])
            calls[-1].append(piece)
        for call in calls:  # one failed call leaves the others' events their news
            if not call:
                continue
            keys = [
                key
                for event_id, *_ in call
                for key in (line_key(event_id), decided_mark_key(event_id), rate_key(event_id))
            ]
            args: list[int | str] = []
            for _, through, decided, told in call:
                args += (through, decided, len(told), *told)
            try:
                self._leave(keys=keys, args=[self.ttl_s, OUTCOME_MESSAGE, *args])
            except REDIS_FAILURES as error:
                event_ids = sorted({event_id for event_id, *_ in call})
                log.warning("line.leave_failed", extra={"event_ids": event_ids, "error": str(error)})

    def reading(self, event_id: int, request_id: str) -> LineReading | None:
        try:
            reply = self._read(keys=[line_key(event_id), rate_key(event_id)], args=[request_id])
        except REDIS_FAILURES as error:
            log.warning("line.read_failed", extra={"event_id": event_id, "error": str(error)})
            return None
        rank, *decided_per_second = (int(value) for value in reply)
        if rank < 0:
            return None
        return LineReading(rank, tuple(decided_per_second))

    def rebuild(self, event_id: int, pending: Sequence[tuple[int, str]], decided_below_row_id: int) -> None:
        assert len(pending) <= limits.LINE_REBUILD_ENTRIES_MAX
        try:
            self._merge_entries(event_id, pending, max(0, decided_below_row_id - 1))
        except REDIS_FAILURES as error:
            log.warning("line.rebuild_failed", extra={"event_id": event_id, "error": str(error)})

    def sizes(self, event_ids: list[int]) -> dict[int, int] | None:
        if not event_ids:
            return {}
        try:
            pipe = self.client.pipeline(transaction=False)
            for event_id in event_ids:
                pipe.zcard(line_key(event_id))
            counts = pipe.execute()
        except REDIS_FAILURES as error:
            log.warning("line.sizes_failed", extra={"events": len(event_ids), "error": str(error)})
            return None
        return {event_id: int(count) for event_id, count in zip(event_ids, counts, strict=True)}

    def _merge_entries(
        self,
        event_id: int,
        entries: Sequence[tuple[int, str]],
        decided_through_row_id: int,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        args: list[int | str] = [self.ttl_s, decided_through_row_id]
        for row_id, request_id in entries:
            args += (row_id, request_id)
        keys = [line_key(event_id), decided_mark_key(event_id)]
        if pipe is None:
            self._merge(keys=keys, args=args)
        else:
            # EVAL, not the registered script: in a pipeline a Script first asks SCRIPT EXISTS.
            pipe.eval(_MERGE_SCRIPT, len(keys), *keys, *args)
