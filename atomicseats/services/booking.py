"""Booking use cases: accept a request, record it, allocate, cancel, report outcomes.

The API accepts a request (`submit_request`) and hands it to the pipeline adapter.
Whatever the pipeline (in-process, or Kafka → bridge → Celery), the request is
recorded by `record_requests` and decided by `allocate_pending`, so both modes run
the same transactions and the same pure allocator.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from flask import current_app
from sqlalchemy import bindparam, func, literal, select, text, union_all
from sqlalchemy.orm import Session

from atomicseats.domain import allocator, limits, states, tiers
from atomicseats.domain import line as line_rules
from atomicseats.domain.request_state import REASON_EVENT_DELETED, REASON_WITHDRAWN, seats_held
from atomicseats.errors import Conflict, HandOffUnknown, InvalidInput, NotFound, ServiceBusy
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, EventTier, OutboxMessage, User, WaitlistEntry, utcnow
from atomicseats.services import quotas, users
from atomicseats.services._allocation import (
    PENDING_COLUMNS,
    DecisionWrites,
    PendingRequest,
    Settlement,
    announce_after_commit,
    announce_decisions_after_commit,
    bookings_held_by,
    cancel_bookings_held,
    event_tiers,
    event_tiers_of,
    lock_event,
    lock_events,
    release_tier_seats,
    settle_event,
    withdraw_waiting,
)
from atomicseats.services._availability import availability_of
from atomicseats.services._bulk import insert_rows
from atomicseats.services._notification_rows import Notification, outbox_row
from atomicseats.services._pages import Page
from atomicseats.services.contracts import (
    AcceptedRequest,
    AllocationSummary,
    EventAvailability,
    OpenOfferView,
    Quota,
    RequestStatus,
)
from atomicseats.services.ports import Claim, RegistryUnavailable, RequestRegistry, SessionUnconfirmed, adapters
from atomicseats.services.unit_of_work import (
    UnitOfWork,
    database_errors_as_busy,
    one_transaction,
    read_alone,
    release_session,
    unit_of_work,
)

log = logging.getLogger(__name__)

# Request ids derived from (user, Idempotency-Key) are the same on every retry, so a
# retried request can never become a second request anywhere in the pipeline.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d6c43f0-8a3e-4f0b-9d59-3f1c2b7a9e10")
OUTCOME_RECHECK_S = 1.0
NO_KEYED_REQUEST_BEFORE = datetime(1970, 1, 1, tzinfo=UTC)  # the registry's mark when Postgres holds none
ARRIVAL_LOCK_NAMESPACE = 0x5EA7  # advisory-lock namespace for "recording arrivals of an event"
ADVISORY_KEY_MODULUS = 2**31 - 1  # the two-key form takes int4 keys; a collision only over-serializes
_USER, _EVENT = "user", "event"  # what each row of the orphan check names


@dataclass(frozen=True)
class CancelResult:
    event_id: int
    seats_freed: int
    bookings_cancelled: int
    waitlist_entries_cancelled: int
    seats_withdrawn: int  # waiting seats given up with them


# --- accepting -------------------------------------------------------------------------


def submit_request(
    user_id: int,
    event_id: int,
    seats: int,
    idempotency_key: str | None,
    correlation_id: str | None,
    tier_id: int | None = None,
    session_id: str | None = None,
) -> RequestStatus:
    """Accept a request for seats (in the tier named, or the one the rule chooses) and hand it
    to the pipeline; refuse what can never succeed.

    `session_id`: the caller's session when its liveness is still to be confirmed (the API's
    booking route, `auth.token_required`): it is, before anything is counted or claimed, in
    the claim's round trip where the registry can (NotAuthenticated when it is not live).
    None: the caller confirmed it.

    Returns once the pipeline holds the request durably (in Kafka: acknowledged by
    the broker). A retry with the same Idempotency-Key is the same request: same id,
    handed on again, recorded once.
    """
    seats_max = current_app.config["SEATS_PER_REQUEST_MAX"]
    if not 1 <= seats <= seats_max:
        raise InvalidInput("Invalid number of seats", {"numberOfSeats": [f"Must be between 1 and {seats_max}."]})
    accepted = AcceptedRequest(
        request_id=_request_id_for(user_id, idempotency_key),
        user_id=user_id,
        event_id=event_id,
        seats=seats,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
        accepted_at=utcnow(),
        tier_id=tier_id,
    )
    registry = adapters().requests
    user_quotas = quotas.quotas_for("RATELIMIT_BOOKING", "booking", user_id)
    if session_id is not None and not (registry.confirms_sessions and registry.counts_quotas):
        users.require_live_session(session_id, user_id)  # before a quota is charged or a key claimed
        session_id = None
    if not registry.counts_quotas:
        quotas.charge(user_quotas)
        user_quotas = ()
    # One round trip: confirm the session, count the user's quotas, claim the request id (and
    # key), read the cached availability. A refused request gives its fresh claim back (the
    # only extra round trip).
    try:
        claim = _claim_confirming_session(registry, accepted, user_quotas, session_id)
    except RegistryUnavailable:
        if session_id is not None:
            users.require_live_session(session_id, user_id)
        _check_key_without_registry(idempotency_key)
        claim = None
    earlier_attempt, cached = (claim.earlier, claim.availability) if claim else (None, None)
    if earlier_attempt is not None:  # the key is taken: by this body, or it is a 409 (before any other answer)
        _check_same_request(earlier_attempt.event_id, earlier_attempt.seats, event_id, seats)
        _check_same_tier(earlier_attempt.tier_id, tier_id)
        accepted = earlier_attempt
    try:
        # A cached availability means Redis answered: the claim above is then the registry's
        # word on the key, and Postgres may be down without stopping the request (see below).
        recorded = (
            None
            if _registry_vouches_for_key(registry, claim, accepted)
            else _recorded_request_for_key(user_id, idempotency_key, registry_answered=cached is not None)
        )
        if recorded is not None:
            _check_same_request(recorded.event_id, recorded.seats_requested, event_id, seats)
        else:
            _admit(event_id, cached, accepted.accepted_at)
            if tier_id is not None:
                _admit_tier(event_id, tier_id, accepted.accepted_at)
    except (NotFound, Conflict, ServiceBusy):
        if earlier_attempt is None:
            registry.release(accepted)
        raise
    if recorded is not None:
        if earlier_attempt is None:
            registry.release(accepted)  # recorded long ago: nothing is in flight under this key
        return _status_of(recorded)
    # The reads are over: give the connection back before handing on. The pipeline may wait
    # (the embedded group commit waits for its leader, which needs a connection of the pool).
    release_session()
    try:
        recorded_status = adapters().pipeline.submit(accepted)
    except HandOffUnknown:
        raise  # the request may be on its way: its claim stays, so a retry of the key finds it
    except ServiceBusy:
        if earlier_attempt is None:
            registry.release(accepted)
        raise
    log.info("booking.request.accepted", extra={"request_id": accepted.request_id, "event_id": event_id})
    adapters().metrics.requests_accepted(1)
    if recorded_status is None:
        return _pending_status(accepted)
    # Racing requests with the same key share one request id and recording keeps the first
    # (ON CONFLICT DO NOTHING): another body's row is a 409.
    _check_same_request(recorded_status.event_id, recorded_status.seats_requested, event_id, seats)
    return recorded_status


def _claim_confirming_session(
    registry: RequestRegistry, accepted: AcceptedRequest, user_quotas: Sequence[Quota], session_id: str | None
) -> Claim:
    """The registry's claim, which confirms the session on its way. A session the session
    cache does not hold (its live answer lasts seconds) is asked of the database, as
    `auth.login_required` asks it, and the claim made again: nothing was counted or claimed."""
    try:
        return registry.claim_and_read(accepted, user_quotas, session_id)
    except SessionUnconfirmed:
        users.require_live_session(session_id, accepted.user_id)
        return registry.claim_and_read(accepted, user_quotas)


def _check_key_without_registry(idempotency_key: str | None) -> None:
    """Without the request registry, Postgres stands in for it only where it sees every
    claim of a key: a pipeline that records the request before answering (in-process; the
    check after recording turns a racing body into a 409). Through Kafka two bodies racing
    on one key would both be accepted before the bridge records either: refuse a keyed
    request then (503), never accept one whose key cannot be held."""
    if idempotency_key is not None and not adapters().pipeline.records_before_answering:
        raise ServiceBusy("Requests with an Idempotency-Key cannot be taken right now, please retry shortly")


def _registry_vouches_for_key(registry: RequestRegistry, claim: Claim | None, accepted: AcceptedRequest) -> bool:
    """Whether a keyed request's fresh claim is the whole answer on its key, with no look in
    Postgres (that read cost a keyed booking ~0.25 ms of the API's CPU, a sixth of it in an
    open-loop flash sale, and a round trip to a busy database).

    An Idempotency-Key is held for the registry's `key_ttl_s` (24 h): a retry within it is the
    same request, a different body a 409. A fresh claim means the key was not claimed within
    that window, unless the registry lost claims (Redis is not persistent): its mark
    (`hold_keys_after`) says since when it holds every claim, and it vouches once every
    claim it may have lost is older than the window. A registry without a mark gets one from
    Postgres (its newest keyed request), and meanwhile Postgres is asked. That mark counts what
    Postgres had recorded: a claim still in Kafka when Redis lost it (or made in the instant
    between reading Postgres and setting the mark) is not in it, and a platform that recorded no
    keyed request in the window before would vouch for it (README, "Idempotency"). A key reused
    after its window, or one of those, is never a second booking either: its request id is
    derived from the key, so the 202 carries the first request's id and the bridge records it
    once (ON CONFLICT DO NOTHING); what is not given is the 409 for a different body, and the
    202 says `pending` until its status is read."""
    if claim is None or claim.earlier is not None or accepted.idempotency_key is None or not registry.key_ttl_s:
        return False
    if claim.keys_held_after is None:
        registry.hold_keys_after(_newest_keyed_request)
        return False
    return claim.keys_held_after + timedelta(seconds=registry.key_ttl_s) <= accepted.accepted_at


def _newest_keyed_request() -> datetime | None:
    """The registry's mark, read when it will set one: the newest keyed request Postgres
    recorded (every key the registry lost was claimed before it), or the epoch when there is
    none. One read of an index's last entry; while Postgres is down, None (no mark: the next
    keyed claim tries again)."""
    newest = select(func.max(BookingRequest.created_at)).where(BookingRequest.idempotency_key.is_not(None))
    try:
        with database_errors_as_busy():
            (recorded_at,) = read_alone(newest)[0]
    except ServiceBusy:
        return None
    return recorded_at or NO_KEYED_REQUEST_BEFORE


def _recorded_request_for_key(
    user_id: int, idempotency_key: str | None, registry_answered: bool
) -> BookingRequest | None:
    """The request Postgres recorded under this Idempotency-Key, or None.

    While Postgres is down or recovering and Redis answered the claim, None ("not known
    to be recorded") lets the request go on into Kafka, and this is safe: the registry
    holds every key claimed in its TTL (24 h) so a retry within it is found there, and
    whatever it does not hold (an older key, or keys lost with a Redis restart) keeps
    the request id its first use had, so the bridge records it once (ON CONFLICT DO
    NOTHING on the request id): never a second request. What is lost in that corner
    (an old key reused with a different body during an outage) is the 409: the client
    gets 202 and its request id shows the first body's request. Without a Redis answer
    (no claim, or the event not cached) the request cannot be admitted without Postgres:
    503 with Retry-After.
    """
    if idempotency_key is None:
        return None
    try:
        with database_errors_as_busy():
            return _request_for_key(user_id, idempotency_key)
    except ServiceBusy:
        if not registry_answered:
            raise
        log.warning("booking.key_unchecked_database_down", extra={"user_id": user_id})
        return None


def _admit(event_id: int, availability: EventAvailability | None, now: datetime) -> None:
    """Admission control: refuse unknown and deleted events, events whose sales have ended
    (at `now`, the acceptance time), and sold-out-with-closed-waitlist events, from the
    availability cache when it has the event, from Postgres otherwise (503 with Retry-After
    when Postgres is down: a request is never accepted unchecked)."""
    if availability is None:
        cache = adapters().availability
        with database_errors_as_busy():
            event = db.session.get(Event, event_id)
            if event is None:
                raise NotFound("Event not found")
        availability = availability_of(event, event.waitlist_length)
        if cache.keeps_entries:
            cache.store_missing([availability])  # never over a writer's newer entry
    if availability.is_deleted:
        raise NotFound("Event not found")
    if not availability.is_sales_open(now):
        raise Conflict(
            "Sales for this event have ended", {"eventId": ["Sales for this event have ended."]}, code="sales_ended"
        )
    if availability.seats_left == 0 and not availability.is_waitlist_open:
        raise Conflict(
            "Sold out, and the waitlist is closed", {"eventId": ["No seats left and no waitlist."]}, code="sold_out"
        )


def _admit_tier(event_id: int, tier_id: int, now: datetime) -> None:
    """A named tier: it must be the event's (404 otherwise), on sale at `now` (409
    `tier_not_on_sale`) and not sold out with the waitlist closed (409 `sold_out`).
    Read from Postgres (the availability cache holds the event's seats, not its tiers' ones):
    only requests that name a tier pay it; 503 while Postgres is down."""
    with database_errors_as_busy():
        row = db.session.execute(
            select(EventTier, Event.is_waitlist_open, Event.starts_at, Event.sales_end_at)
            .join(Event, Event.id == EventTier.event_id)
            .where(EventTier.id == tier_id, EventTier.event_id == event_id)
        ).one_or_none()
    if row is None:
        raise NotFound("Tier not found", {"tierId": ["Not a tier of this event."]})
    tier, is_waitlist_open, starts_at, sales_end_at = row
    is_event_sales_open = allocator.is_sales_open(allocator.sales_end_of(starts_at, sales_end_at), now)
    if not tiers.is_on_sale(tier.to_tier(), is_event_sales_open, now):
        raise Conflict("This tier is not on sale", {"tierId": ["Not on sale now."]}, code="tier_not_on_sale")
    if tier.seats_left == 0 and not is_waitlist_open:
        raise Conflict(
            "This tier is sold out, and the waitlist is closed",
            {"tierId": ["No seats left and no waitlist."]},
            code="sold_out",
        )


def _check_same_tier(earlier_tier_id: int | None, tier_id: int | None) -> None:
    if earlier_tier_id != tier_id:
        raise Conflict(
            "This Idempotency-Key was already used for a different booking request", code="idempotency_key_reused"
        )


def _request_id_for(user_id: int, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}:{idempotency_key}"))


def _request_for_key(user_id: int, idempotency_key: str) -> BookingRequest | None:
    """The request recorded under the key: looked up alone (one round trip: nearly every key
    is new), loaded only when there is one."""
    statement = select(BookingRequest.id).where(
        BookingRequest.user_id == user_id, BookingRequest.idempotency_key == idempotency_key
    )
    found = read_alone(statement)
    return db.session.get(BookingRequest, found[0].id) if found else None


def _check_same_request(earlier_event_id: int, earlier_seats: int, event_id: int, seats: int) -> None:
    if earlier_event_id != event_id or earlier_seats != seats:
        raise Conflict(
            "This Idempotency-Key was already used for a different booking request", code="idempotency_key_reused"
        )


def recorded_statuses(request_ids: list[str]) -> dict[str, RequestStatus]:
    """The statuses of requests a pipeline recorded before answering, by request id (those
    not recorded are left out), as committed: one read of the requests, of their bookings and
    of their waitlist entries for all of them (the embedded group commit's batch, read by its
    leader once the batch is committed and the other writers may go on)."""
    release_session()  # see what the pipeline committed
    try:
        return _statuses_by_request_id(db.session(), request_ids)
    finally:
        release_session()  # hold no read transaction while the callers answer


def _pending_status(accepted: AcceptedRequest) -> RequestStatus:
    """Known, not yet decided: still travelling through Kafka, or recorded by a pipeline that
    could not decide it or read it back at once (its status will tell)."""
    return RequestStatus(
        request_id=accepted.request_id,
        event_id=accepted.event_id,
        status=states.RequestStatus.PENDING,
        seats_requested=accepted.seats,
        seats_confirmed=0,
        seats_waitlisted=0,
        seats_cancelled=0,
        seats_held=0,
        booking_ids=[],
        waitlist_position=None,
        reason=None,
        created_at=accepted.accepted_at,
        decided_at=None,
        place_in_line=line_rules.NOT_COUNTED_YET if adapters().line.keeps_entries else None,
        tier_id=accepted.tier_id,
    )


# --- recording and allocating (called by the pipeline) ---------------------------------


def record_requests(accepted_requests: list[AcceptedRequest]) -> list[int]:
    """Persist accepted requests as pending, in the given order; duplicates are ignored.

    Returns the ids of the events that got new pending requests. Idempotent on
    request id, so a redelivered message records nothing twice.
    """
    assert len(accepted_requests) <= limits.ALLOCATION_BATCH_SIZE_MAX
    if not accepted_requests:
        return []
    now = utcnow()
    with unit_of_work() as work:  # the orphan check too: one transaction, no read one rolled back before it
        accepted_requests = _drop_orphans(work.session, accepted_requests)
        if not accepted_requests:
            return []
        rows = [
            {
                "request_id": accepted.request_id,
                "idempotency_key": accepted.idempotency_key,
                "user_id": accepted.user_id,
                "event_id": accepted.event_id,
                "seats_requested": accepted.seats,
                "status": states.RequestStatus.PENDING,
                "seats_confirmed": 0,
                "seats_waitlisted": 0,
                "correlation_id": accepted.correlation_id,
                "accepted_at": accepted.accepted_at,
                "kafka_partition": accepted.kafka_partition,
                "kafka_offset": accepted.kafka_offset,
                "tier_id": accepted.tier_id,
                "created_at": now,
            }
            for accepted in accepted_requests
        ]
        if work.is_postgres:
            _serialize_arrivals(work, {accepted.event_id for accepted in accepted_requests})
        inserted = insert_rows(
            work, BookingRequest.__table__, rows, returning=("event_id", "id", "request_id"), skip_conflicts=True
        )
        line = adapters().line
        if line.keeps_entries and inserted:  # they enter their events' lines once durable
            work.after_commit(line.enter, [(event_id, row_id, request_id) for event_id, row_id, request_id in inserted])
    return sorted({event_id for event_id, _, _ in inserted})


def _drop_orphans(session: Session, accepted_requests: list[AcceptedRequest]) -> list[AcceptedRequest]:
    """Leave out requests whose user or event no longer exists (deleted since the API took
    them): recording them would fail forever and block every request behind them. One
    statement for both (a round trip fewer per batch: the bridge records one request at a
    time when idle)."""
    user_ids = {accepted.user_id for accepted in accepted_requests}
    event_ids = {accepted.event_id for accepted in accepted_requests}
    statement = union_all(
        select(literal(_USER), User.id).where(User.id.in_(user_ids)),
        select(literal(_EVENT), Event.id).where(Event.id.in_(event_ids)),
    )
    known: dict[str, set[int]] = {_USER: set(), _EVENT: set()}
    for kind, row_id in session.execute(statement):
        known[kind].add(row_id)
    known_users, known_events = known[_USER], known[_EVENT]
    kept = []
    for accepted in accepted_requests:
        if accepted.user_id in known_users and accepted.event_id in known_events:
            kept.append(accepted)
        else:
            log.error(
                "booking.request.orphaned",
                extra={"request_id": accepted.request_id, "user_id": accepted.user_id, "event_id": accepted.event_id},
            )
    return kept


def _serialize_arrivals(work: UnitOfWork, event_ids: Iterable[int]) -> None:
    """Make arrival order (the id sequence) equal commit order for each event.

    Ids are drawn at insert time but become visible at commit; two concurrent
    recorders could commit ids 58 before 54, and the allocator would decide 58
    first. A transaction-scoped advisory lock per event serializes recorders of the
    same event (not the allocator, which holds the event row lock). Taken in key
    order, so two recorders never wait on each other crosswise. SQLite needs none:
    BEGIN IMMEDIATE already serializes writers.
    """
    keys = sorted({event_id % ADVISORY_KEY_MODULUS for event_id in event_ids})
    work.session.execute(_ARRIVAL_LOCKS, {"namespace": ARRIVAL_LOCK_NAMESPACE, "keys": keys})


# Every event's lock in one statement (a round trip per batch, not per event): the aggregate
# takes them row by row in the array's order, which the caller sorts.
_ARRIVAL_LOCKS = text(
    "SELECT count(pg_advisory_xact_lock(:namespace, key)) FROM unnest(CAST(:keys AS integer[])) AS locks(key)"
)


def allocate_pending(event_id: int, batch_max: int | None = None) -> AllocationSummary:
    """Decide one batch of an event's pending requests in arrival order, in one transaction:
    the oldest `batch_max` (ALLOCATION_BATCH_SIZE_MAX unless the caller's batches grew).
    NotFound when there is no such event."""
    batch_max = limits.ALLOCATION_BATCH_SIZE_MAX if batch_max is None else batch_max
    summaries = _decide_batches({event_id: batch_max})
    if event_id not in summaries:
        raise NotFound("Event not found")
    return summaries[event_id]


def allocate_pending_together(batch_max_by_event: Mapping[int, int]) -> dict[int, AllocationSummary]:
    """Decide one batch of each event's pending requests (event id -> its batch's size), all
    committed once (`_decide_batches`). One commit and one task for a partition's events: with
    a task per event, a hot event's turn came after every small event's (make bench's open
    loop at half the ceiling: ~400 ms between its batches). An event that does not exist
    decides nothing (a wake-up nothing recorded can name). If that transaction fails, each
    event is decided in a transaction of its own, so one event's failure (its row locked too
    long elsewhere, an error of its own) holds none of the others back; the first error is
    raised once the others are decided."""
    try:
        return _with_missing_events(batch_max_by_event, _decide_batches(batch_max_by_event))
    except Exception:
        if len(batch_max_by_event) == 1:
            raise
        log.warning("booking.allocation.together_failed", extra={"event_ids": sorted(batch_max_by_event)})
    summaries: dict[int, AllocationSummary] = {}
    first_error: Exception | None = None
    for event_id in sorted(batch_max_by_event):
        alone = {event_id: batch_max_by_event[event_id]}
        try:
            summaries.update(_with_missing_events(alone, _decide_batches(alone)))
        except Exception as error:  # noqa: BLE001 - raised below, once the other events are decided
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    return summaries


def _with_missing_events(
    batch_max_by_event: Mapping[int, int], summaries: dict[int, AllocationSummary]
) -> dict[int, AllocationSummary]:
    """Every event asked for: one that does not exist decided nothing."""
    for event_id in batch_max_by_event:
        if event_id not in summaries:
            log.warning("booking.allocation.no_event", extra={"event_id": event_id})
            summaries[event_id] = AllocationSummary(event_id, 0, 0, 0, 0)
    return summaries


def _decide_batches(batch_max_by_event: Mapping[int, int]) -> dict[int, AllocationSummary]:
    """One batch of each event's pending requests decided in one transaction (events that do
    not exist are left out of the result). The events are locked in id order (two such
    transactions never wait on each other in a cycle) and what deciding them reads is read
    for all of them at once: their rows, their pending requests, their tiers; each is settled
    on its own (`settle_event`: the same rules as for one event alone), and their decisions
    are written together (`DecisionWrites`): a statement per table, not per table and event,
    then a flush of the events' and tiers' rows. Their effects (caches, outcomes, the
    outbox's wake-up) follow the commit. Each event's batch is counted (metrics, its log line)
    with the transaction's time, from its start to its commit."""
    assert 1 <= len(batch_max_by_event) <= limits.ALLOCATION_EVENTS_PER_TRANSACTION_MAX
    assert all(1 <= size <= limits.ALLOCATION_BACKLOG_BATCH_MAX for size in batch_max_by_event.values())
    started = time.monotonic()
    reserved_before: dict[int, int] = {}
    settlements: dict[int, Settlement] = {}
    with unit_of_work() as work:
        events = lock_events(work, sorted(batch_max_by_event))
        live = [event for event in events.values() if not event.is_deleted]
        pending_by_event = _pending_rows_of(work.session, {event.id: batch_max_by_event[event.id] for event in live})
        tiers_by_event = event_tiers_of(work, live) if live else {}
        now = utcnow()
        writes = DecisionWrites()
        for event_id, event in events.items():
            reserved_before[event_id] = event.reserved_seats
            pending: Sequence[PendingRequest] = pending_by_event.get(event_id, [])
            if event.is_deleted:
                rejected = _pending_requests(work.session, event_id, batch_max_by_event[event_id])
                _reject_for_deleted_event(work, event, rejected)
                settlement = settle_event(work, event, [], now=now)
                decided_rows: Sequence[PendingRequest] = rejected
            else:
                settlement = settle_event(work, event, pending, tiers_by_event[event_id], writes, now)
                decided_rows = pending
            if decided_rows:  # decided in arrival order: all of the event's up to the last leave its line
                settlement.decided_through_row_id = decided_rows[-1].id  # read oldest first: the highest row id
            settlements[event_id] = settlement
        writes.execute(work)
        work.session.flush()  # the events' and tiers' rows: one UPDATE per table where the same columns changed
        for event_id, event in events.items():
            settlement = settlements[event_id]
            announce_decisions_after_commit(work, event, settlement)
            assert settlement.allocation is not None  # settle_event always decides
            accepted_at = {request.request_id: request.accepted_at for request in pending_by_event.get(event_id, [])}
            # Counted once committed: inside a group commit (`record_and_decide`) that is the
            # batch's commit, and a batch rolled back counts nothing.
            work.after_commit(_count_decisions, accepted_at, settlement.allocation.decisions, started)
    summaries = {}
    for event_id, settlement in settlements.items():
        allocation = settlement.allocation
        assert allocation is not None
        seats_decided = sum(decision.seats_confirmed for decision in allocation.decisions)
        summary = AllocationSummary(
            event_id=event_id,
            requests_decided=len(allocation.decisions),
            seats_confirmed=seats_decided,
            seats_promoted=allocation.reserved_seats - reserved_before[event_id] - seats_decided,
            reserved_seats=allocation.reserved_seats,
        )
        if summary.requests_decided or summary.seats_promoted:  # one line a batch (each decision's is DEBUG)
            log.info(
                "booking.batch.decided",
                extra={**asdict(summary), "ms": round((time.monotonic() - started) * 1000, 1)},
            )
        summaries[event_id] = summary
    return summaries


def record_and_decide(accepted_requests: list[AcceptedRequest]) -> None:
    """Record a batch of accepted requests and decide their events, committed once: the
    embedded pipeline's group commit. The same use cases as the full mode's bridge and
    worker (`record_requests`, then `allocate_pending` for each event in id order until
    it has no pending request left), joined into one transaction: all of it is written,
    or nothing (an error rolls back the whole batch)."""
    assert len(accepted_requests) <= limits.ALLOCATION_BATCH_SIZE_MAX
    with one_transaction():
        record_requests(accepted_requests)
        for event_id in sorted({accepted.event_id for accepted in accepted_requests}):
            while allocate_pending(event_id).requests_decided == limits.ALLOCATION_BATCH_SIZE_MAX:
                pass  # a full batch: more of the event's requests may be pending


# The columns a status is read from: the rows as they are, whatever a session's loaded objects
# hold (the decisions are written in bulk, past the identity map).
_STATUS_COLUMNS = (
    BookingRequest.id,
    BookingRequest.request_id,
    BookingRequest.event_id,
    BookingRequest.status,
    BookingRequest.seats_requested,
    BookingRequest.seats_confirmed,
    BookingRequest.seats_waitlisted,
    BookingRequest.seats_cancelled,
    BookingRequest.reason,
    BookingRequest.created_at,
    BookingRequest.decided_at,
    BookingRequest.tier_id,
)


def _statuses_by_request_id(session: Session, request_ids: list[str]) -> dict[str, RequestStatus]:
    if not request_ids:
        return {}
    rows = session.execute(select(*_STATUS_COLUMNS).where(BookingRequest.request_id.in_(set(request_ids)))).all()
    return {status.request_id: status for status in _statuses_of(session, rows)}


def _count_decisions(
    accepted_at: dict[str, datetime | None], decisions: tuple[allocator.Decision, ...], started: float
) -> None:
    """For operators, once committed: the batch, and each decision's time since its 202."""
    if not decisions:
        return
    metrics = adapters().metrics
    metrics.allocation_batch(len(decisions), time.monotonic() - started)
    now = utcnow()
    since_accepted = [_seconds_between(accepted_at.get(decision.request_id), now) for decision in decisions]
    metrics.requests_decided(
        [(decision.outcome.value, seconds) for decision, seconds in zip(decisions, since_accepted, strict=True)]
    )


def _seconds_between(start: datetime | None, end: datetime) -> float:
    return 0.0 if start is None else (end - start).total_seconds()


def stranded_events(older_than_s: float, limit: int = limits.ALLOCATION_BATCH_SIZE_MAX) -> list[tuple[int, int]]:
    """(event id, Kafka partition) of events with a request pending longer than `older_than_s`."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    statement = (
        select(BookingRequest.event_id, func.min(BookingRequest.kafka_partition))
        .where(BookingRequest.status == states.RequestStatus.PENDING, BookingRequest.created_at < cutoff)
        .group_by(BookingRequest.event_id)
        .order_by(func.min(BookingRequest.id))
        .limit(limit)
    )
    db.session.rollback()
    return [(event_id, partition or 0) for event_id, partition in db.session.execute(statement)]


class _PendingRow(NamedTuple):
    """A pending request as `_pending_rows` reads it (a tuple's fields are read faster than a Row's)."""

    id: int
    request_id: str
    user_id: int
    seats_requested: int
    status: str
    correlation_id: str | None
    tier_id: int | None
    accepted_at: datetime | None


assert _PendingRow._fields == tuple(column.key for column in PENDING_COLUMNS)


def _pending_rows(session: Session, event_id: int, limit: int) -> list[_PendingRow]:
    """The next batch of an event's pending requests, oldest first, as plain tuples of the
    columns a decision reads (PENDING_COLUMNS; `accepted_at` is also for the metrics)."""
    statement = (
        select(*PENDING_COLUMNS)
        .where(BookingRequest.event_id == event_id, BookingRequest.status == states.RequestStatus.PENDING)
        .order_by(BookingRequest.id)
        .limit(limit)
    )
    return [_PendingRow._make(row) for row in session.execute(statement)]


# The next batch of each of several events' pending requests in one statement: a LATERAL
# subquery per event (its own LIMIT, from ix_booking_requests_event_status_id), the events and
# their batches' sizes as two arrays side by side. Its columns: the event's id, then
# PENDING_COLUMNS' (checked below, as _PendingRow's).
_PENDING_OF_EVENTS_SQL = text(
    """
    SELECT batch.event_id, batch.id, batch.request_id, batch.user_id, batch.seats_requested, batch.status,
           batch.correlation_id, batch.tier_id, batch.accepted_at
    FROM unnest(CAST(:event_ids AS bigint[]), CAST(:batch_maxes AS integer[])) AS wanted (event_id, batch_max)
    CROSS JOIN LATERAL (
        SELECT request.event_id, request.id, request.request_id, request.user_id, request.seats_requested,
               request.status, request.correlation_id, request.tier_id, request.accepted_at
        FROM booking_requests AS request
        WHERE request.event_id = wanted.event_id AND request.status = :pending
        ORDER BY request.id
        LIMIT wanted.batch_max
    ) AS batch
    ORDER BY batch.event_id, batch.id
    """
).columns(BookingRequest.event_id, *PENDING_COLUMNS)
assert re.findall(r"batch\.(\w+)", _PENDING_OF_EVENTS_SQL.element.text.partition("FROM")[0]) == [
    "event_id",
    *_PendingRow._fields,
]


def _pending_rows_of(session: Session, batch_max_by_event: Mapping[int, int]) -> dict[int, list[_PendingRow]]:
    """`_pending_rows` of several events (event id -> its batch's size), by event id: on
    Postgres one statement for all of them, elsewhere one each."""
    if len(batch_max_by_event) <= 1 or session.get_bind().dialect.name != "postgresql":
        return {event_id: _pending_rows(session, event_id, limit) for event_id, limit in batch_max_by_event.items()}
    event_ids = sorted(batch_max_by_event)
    rows = session.execute(
        _PENDING_OF_EVENTS_SQL,
        {
            "event_ids": event_ids,
            "batch_maxes": [batch_max_by_event[event_id] for event_id in event_ids],
            "pending": states.RequestStatus.PENDING.value,
        },
    )
    pending: dict[int, list[_PendingRow]] = {event_id: [] for event_id in event_ids}
    for event_id, *columns in rows:
        pending[event_id].append(_PendingRow._make(columns))
    return pending


def _pending_requests(session: Session, event_id: int, limit: int) -> list[BookingRequest]:
    statement = (
        select(BookingRequest)
        .where(BookingRequest.event_id == event_id, BookingRequest.status == states.RequestStatus.PENDING)
        .order_by(BookingRequest.id)
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def _reject_for_deleted_event(work: UnitOfWork, event: Event, pending: list[BookingRequest]) -> None:
    now = utcnow()
    for request in pending:
        request.status = states.RequestStatus.REJECTED
        request.reason = REASON_EVENT_DELETED
        request.decided_at = now
        fields = {
            "requestId": request.request_id,
            "seatsRequested": request.seats_requested,
            "reason": REASON_EVENT_DELETED,
            "bookingIds": [],  # rejected before anything was booked
        }
        work.session.add(
            outbox_row(Notification("booking.rejected", request.user_id, event, request.request_id, fields))
        )


# --- cancelling ------------------------------------------------------------------------


def cancel_bookings(user_id: int, event_id: int, booking_id: int | None, cancel_all: bool) -> CancelResult:
    """Cancel one booking, the latest, or all of a user's holdings for an event.

    Cancelling means giving up: a cancelled booking's request also withdraws the seats it
    still waits for (else its guest would be promoted into the seats just given back).
    Freed seats then go to the waitlist head in the same transaction. Cancelling what is
    already cancelled is a 409 and frees nothing.
    """
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        bookings = _bookings_to_cancel(work.session, user_id, event_id, booking_id, cancel_all)
        entries = _waitlist_entries_of(work.session, user_id, event_id) if cancel_all else []
        if not bookings and not entries:
            raise Conflict(
                "Nothing to cancel: no active booking or waitlist place for this event", code="nothing_to_cancel"
            )
        now = utcnow()
        requests = _requests_by_row_id(work.session, [booking.booking_request_id for booking in bookings])
        entries = _union_entries(entries, _waiting_entries_of_requests(work.session, list(requests)))
        requests.update(_requests_by_row_id(work.session, [entry.booking_request_id for entry in entries]))
        seats_withdrawn_by_request = {
            entry.booking_request_id: withdraw_waiting(
                event, requests[entry.booking_request_id], entry, REASON_WITHDRAWN, now
            )
            for entry in entries
        }
        seats_withdrawn = sum(seats_withdrawn_by_request.values())
        seats_freed = cancel_bookings_held(bookings, requests, REASON_WITHDRAWN, now)
        for booking in bookings:  # the e-mails report each request's state after all of it
            row_id = booking.booking_request_id  # a booking's request row is optional
            request = requests.get(row_id) if row_id is not None else None  # nosec B113  # a dict, not HTTP
            seats_withdrawn_with = seats_withdrawn_by_request.pop(row_id, 0) if row_id is not None else 0
            work.session.add(_cancelled_notification(event, booking, request, seats_withdrawn_with))
        for request_row_id, seats in seats_withdrawn_by_request.items():  # waiting places left with no booking
            work.session.add(_withdrawn_notification(work, event, requests[request_row_id], seats))
        release_tier_seats(event_tiers(work, event), bookings)  # settle_event sums them into the event's
        settlement = settle_event(work, event, [])
        settlement.removed_entry_ids += [entry.id for entry in entries]
        announce_after_commit(work, event, settlement)
    log.info("booking.cancelled", extra={"event_id": event_id, "seats_freed": seats_freed})
    return CancelResult(event_id, seats_freed, len(bookings), len(entries), seats_withdrawn)


@dataclass(frozen=True)
class CancelPreview:
    """What `cancel_bookings` with the same arguments would give up, as of now."""

    event: Event
    bookings: list[Booking]  # confirmed, newest first
    waiting: list[WaitlistPlace]  # places withdrawn with them, oldest first


def cancel_preview(user_id: int, event_id: int, booking_id: int | None, cancel_all: bool) -> CancelPreview:
    """Read what a cancellation would take, with the helpers `cancel_bookings` uses (so the
    confirmation page promises what the cancellation does) and nothing changed. 404 for an
    unknown event or a booking not the user's; 409 when nothing is left to cancel."""
    session = db.session()
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound("Event not found")
    bookings = _bookings_to_cancel(session, user_id, event_id, booking_id, cancel_all)
    entries = _waitlist_entries_of(session, user_id, event_id) if cancel_all else []
    if not bookings and not entries:
        raise Conflict(
            "Nothing to cancel: no active booking or waitlist place for this event", code="nothing_to_cancel"
        )
    request_row_ids = sorted({booking.booking_request_id for booking in bookings if booking.booking_request_id})
    entries = _union_entries(entries, _waiting_entries_of_requests(session, request_row_ids))
    requests = _requests_by_row_id(session, [entry.booking_request_id for entry in entries])
    waiting = [_waitlist_place(entry, requests[entry.booking_request_id], event) for entry in entries]
    return CancelPreview(event, bookings, waiting)


def _bookings_to_cancel(
    session: Session, user_id: int, event_id: int, booking_id: int | None, cancel_all: bool
) -> list[Booking]:
    if booking_id is not None:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.user_id != user_id or booking.event_id != event_id:
            raise NotFound("Booking not found")
        if booking.status != states.BookingStatus.CONFIRMED:
            raise Conflict("This booking is already cancelled", code="already_cancelled")
        return [booking]
    statement = (
        select(Booking)
        .where(
            Booking.user_id == user_id, Booking.event_id == event_id, Booking.status == states.BookingStatus.CONFIRMED
        )
        .order_by(Booking.id.desc())
    )
    bookings = list(session.execute(statement).scalars())
    return bookings if cancel_all else bookings[:1]


def _waitlist_entries_of(session: Session, user_id: int, event_id: int) -> list[WaitlistEntry]:
    statement = select(WaitlistEntry).where(
        WaitlistEntry.user_id == user_id,
        WaitlistEntry.event_id == event_id,
        WaitlistEntry.status == states.WaitlistStatus.WAITING,
    )
    return list(session.execute(statement).scalars())


def _waiting_entries_of_requests(session: Session, request_row_ids: list[int]) -> list[WaitlistEntry]:
    if not request_row_ids:
        return []
    statement = select(WaitlistEntry).where(
        WaitlistEntry.booking_request_id.in_(request_row_ids), WaitlistEntry.status == states.WaitlistStatus.WAITING
    )
    return list(session.execute(statement).scalars())


def _union_entries(*groups: list[WaitlistEntry]) -> list[WaitlistEntry]:
    by_id = {entry.id: entry for group in groups for entry in group}
    return [by_id[entry_id] for entry_id in sorted(by_id)]


def _requests_by_row_id(session: Session, request_row_ids: list[int | None]) -> dict[int, BookingRequest]:
    wanted = sorted({row_id for row_id in request_row_ids if row_id is not None})
    if not wanted:
        return {}
    statement = select(BookingRequest).where(BookingRequest.id.in_(wanted))
    return {request.id: request for request in session.execute(statement).scalars()}


def _cancelled_notification(
    event: Event, booking: Booking, request: BookingRequest | None, seats_withdrawn: int
) -> OutboxMessage:
    """Tell a cancelled booking's guest what their request holds now."""
    assert booking.status == states.BookingStatus.CANCELLED
    fields: dict[str, object] = {
        "bookingId": booking.id,
        "bookingIds": [booking.id],
        "seatsFreed": booking.seats,
        "seatsWithdrawn": seats_withdrawn,
    }
    if request is not None:
        fields |= _request_fields(request)
    return outbox_row(Notification("booking.cancelled", booking.user_id, event, f"booking-{booking.id}", fields))


def _withdrawn_notification(
    work: UnitOfWork, event: Event, request: BookingRequest, seats_withdrawn: int
) -> OutboxMessage:
    """Tell a guest who gave up waiting seats what the request still holds (its bookings)."""
    fields = {
        **_request_fields(request),
        "seatsWithdrawn": seats_withdrawn,
        "bookingIds": bookings_held_by(work, request),
    }
    return outbox_row(Notification("booking.withdrawn", request.user_id, event, request.request_id, fields))


def _request_fields(request: BookingRequest) -> dict[str, object]:
    """A request's state after a change, for the e-mail that reports the change."""
    return {
        "requestId": request.request_id,
        "requestStatus": request.status,
        "seatsRequested": request.seats_requested,
        "seatsHeld": seats_held(request.seats_confirmed, request.seats_cancelled),
        "seatsStillWaitlisted": request.seats_waitlisted,
    }


# --- leaving the waitlist --------------------------------------------------------------


@dataclass(frozen=True)
class WaitlistWithdrawal:
    seats_withdrawn: int
    request: RequestStatus


def leave_waitlist(user_id: int, request_id: str) -> WaitlistWithdrawal:
    """The guest gives up the seats a request still waits for; its confirmed seats stay theirs.

    404 for an unknown request or someone else's; 409 when nothing of it is waiting."""
    request = _find_request(request_id)
    if request is None or request.user_id != user_id:
        raise NotFound("Booking request not found")
    request_row_id, event_id = request.id, request.event_id
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        request = work.session.get(BookingRequest, request_row_id)
        assert request is not None
        entries = _waiting_entries_of_requests(work.session, [request_row_id])
        if not entries:
            raise Conflict(
                "Nothing to withdraw: no seats of this request are on the waitlist", code="nothing_to_cancel"
            )
        (entry,) = entries
        now = utcnow()
        seats_withdrawn = withdraw_waiting(event, request, entry, REASON_WITHDRAWN, now)
        work.session.add(_withdrawn_notification(work, event, request, seats_withdrawn))
        settlement = settle_event(work, event, [])  # serves whoever an open offer it held frees seats for
        settlement.removed_entry_ids.append(entry.id)
        announce_after_commit(work, event, settlement)
    log.info("booking.waitlist.left", extra={"event_id": event_id, "seats_withdrawn": seats_withdrawn})
    withdrawn_from = _find_request(request_id)
    assert withdrawn_from is not None  # it was updated above, never deleted
    return WaitlistWithdrawal(seats_withdrawn, _status_of(withdrawn_from))


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitlistPlace:
    """One of a guest's requests still waiting for seats, and where it stands in line now."""

    request_id: str
    event: Event
    seats_waiting: int
    seats_requested: int
    seats_held: int  # already confirmed for the same request
    place: int  # 1 = the head of the event's waitlist
    joined_at: datetime
    seats_offered: int = 0  # an open offer (offer mode): these of the seats waiting are held for it ...
    offer_expires_at: datetime | None = None  # ... until then (services/offers.py answers it)


def waitlist_places(user_id: int, limit: int = limits.WAITLIST_PLACES_SHOWN_MAX) -> Page[WaitlistPlace]:
    """The user's waiting entries, oldest first, each with its current place in line (the same
    place the request's status shows); `has_more` when the user waits in more than `limit`."""
    assert 1 <= limit <= limits.WAITLIST_PLACES_SHOWN_MAX
    statement = (
        select(WaitlistEntry, BookingRequest, Event)
        .join(BookingRequest, BookingRequest.id == WaitlistEntry.booking_request_id)
        .join(Event, Event.id == WaitlistEntry.event_id)
        .where(WaitlistEntry.user_id == user_id, WaitlistEntry.status == states.WaitlistStatus.WAITING)
        .order_by(WaitlistEntry.id)
        .limit(limit + 1)
    )
    rows = db.session.execute(statement).tuples().all()
    places = [_waitlist_place(entry, request, event) for entry, request, event in rows[:limit]]
    return Page(items=places, has_more=len(rows) > limit, next_cursor=None)


def request_status(
    request_id: str, viewer_id: int, viewer_is_admin: bool | Callable[[], bool], wait_s: float = 0
) -> RequestStatus:
    """The outcome of a request; with `wait_s`, wait up to that long for a final one.

    Its owner sees it, an admin anyone's. `viewer_is_admin` may be a function, then asked
    only for someone else's request: the API's route loads the account (a round trip) only
    then, not on every read of a long poll's own request.

    A request the API accepted but the bridge has not recorded yet is `pending`
    (known from the request registry). Waiting subscribes to the outcome channel
    before re-reading Postgres, and re-reads at least every OUTCOME_RECHECK_S.
    """
    assert 0 <= wait_s <= limits.LONG_POLL_WAIT_S_MAX
    deadline = time.monotonic() + wait_s
    status = _current_status(request_id, viewer_id, viewer_is_admin)
    if status.status != states.RequestStatus.PENDING or wait_s <= 0:
        return status
    with adapters().outcomes.subscribe(status.request_id) as subscription:
        for _ in range(int(wait_s / OUTCOME_RECHECK_S) + 2):
            db.session.rollback()  # end the last read so this one sees new commits
            status = _current_status(request_id, viewer_id, viewer_is_admin)
            remaining_s = deadline - time.monotonic()
            if status.status != states.RequestStatus.PENDING or remaining_s <= 0:
                return status
            subscription.wait(min(remaining_s, OUTCOME_RECHECK_S))
    return status


def _current_status(request_id: str, viewer_id: int, viewer_is_admin: bool | Callable[[], bool]) -> RequestStatus:
    request = _find_request(request_id)
    if request is not None:
        if not _may_see(request.user_id, viewer_id, viewer_is_admin):
            raise NotFound("Booking request not found")
        return _status_of(request)
    in_flight = adapters().requests.find(_canonical_request_id(request_id) or "")
    if in_flight is None or not _may_see(in_flight.user_id, viewer_id, viewer_is_admin):
        raise NotFound("Booking request not found")
    return _pending_status(in_flight)


def _may_see(owner_id: int, viewer_id: int, viewer_is_admin: bool | Callable[[], bool]) -> bool:
    if owner_id == viewer_id:
        return True
    return viewer_is_admin() if callable(viewer_is_admin) else viewer_is_admin


def _canonical_request_id(request_id: str) -> str | None:
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        return None


# Every long poll re-reads its request's status on each announcement: the status reads' statements
# are built once (their parameters bound per read), not rebuilt per read.
_REQUEST_BY_ID = select(BookingRequest).where(BookingRequest.request_id == bindparam("request_id"))
_BOOKING_IDS_OF_REQUESTS = (
    select(Booking.booking_request_id, Booking.id)
    .where(Booking.booking_request_id.in_(bindparam("row_ids", expanding=True)))
    .order_by(Booking.id)
)
_WAITING_ENTRIES_OF_REQUESTS = select(WaitlistEntry).where(
    WaitlistEntry.booking_request_id.in_(bindparam("row_ids", expanding=True)),
    WaitlistEntry.status == states.WaitlistStatus.WAITING,
)
_TIER_NAMES = select(EventTier.id, EventTier.name).where(EventTier.id.in_(bindparam("tier_ids", expanding=True)))


def _find_request(request_id: str) -> BookingRequest | None:
    canonical = _canonical_request_id(request_id)
    if canonical is None:
        return None
    return db.session.execute(_REQUEST_BY_ID, {"request_id": canonical}).scalar_one_or_none()


def _status_of(request: BookingRequest) -> RequestStatus:
    (status,) = _statuses_of(db.session(), [request])
    return status


class _RequestColumns(Protocol):
    """A booking request's row as a status reads it: the ORM object, or a row of _STATUS_COLUMNS."""

    @property
    def id(self) -> int: ...
    @property
    def request_id(self) -> str: ...
    @property
    def event_id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def seats_requested(self) -> int: ...
    @property
    def seats_confirmed(self) -> int: ...
    @property
    def seats_waitlisted(self) -> int: ...
    @property
    def seats_cancelled(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def decided_at(self) -> datetime | None: ...
    @property
    def tier_id(self) -> int | None: ...


def _statuses_of(session: Session, requests: Sequence[_RequestColumns]) -> list[RequestStatus]:
    """The statuses of these requests, in order, with one read of their bookings and one of
    their waitlist entries whatever their number (places in line: `_places_in_line`)."""
    row_ids = [request.id for request in requests]
    booking_ids: dict[int, list[int]] = {row_id: [] for row_id in row_ids}
    for row_id, booking_id in session.execute(_BOOKING_IDS_OF_REQUESTS, {"row_ids": row_ids}):
        booking_ids[row_id].append(booking_id)
    waiting = session.execute(_WAITING_ENTRIES_OF_REQUESTS, {"row_ids": row_ids}).scalars()
    entry_of = {entry.booking_request_id: entry for entry in waiting}
    places = _places_in_line(session, [(entry.event_id, entry.id, entry.tier_id) for entry in entry_of.values()])
    standing_of = {row_id: places[entry.id] for row_id, entry in entry_of.items()}
    offer_of = {row_id: _open_offer(entry) for row_id, entry in entry_of.items()}
    tier_ids = {request.tier_id for request in requests if request.tier_id is not None}
    tier_names: dict[int, str] = (
        dict(session.execute(_TIER_NAMES, {"tier_ids": list(tier_ids)}).tuples().all()) if tier_ids else {}
    )
    return [
        RequestStatus(
            request_id=request.request_id,
            event_id=request.event_id,
            status=request.status,
            seats_requested=request.seats_requested,
            seats_confirmed=request.seats_confirmed,
            seats_waitlisted=request.seats_waitlisted,
            seats_cancelled=request.seats_cancelled,
            seats_held=seats_held(request.seats_confirmed, request.seats_cancelled),
            booking_ids=booking_ids[request.id],
            waitlist_position=standing_of[request.id][0] if request.id in standing_of else None,
            reason=request.reason,
            created_at=request.created_at,
            decided_at=request.decided_at,
            place_in_line=_line_place(request, standing_of.get(request.id)),
            tier_id=request.tier_id,
            tier_name=None if request.tier_id is None else tier_names.get(request.tier_id),
            offer=offer_of.get(request.id),
        )
        for request in requests
    ]


def my_places_in_line(user_id: int, event_id: int) -> list[tuple[str, line_rules.PendingPlace]]:
    """The user's pending requests for the event (oldest first, at most
    LINE_PLACES_SHOWN_MAX), each with its place in the event's pending line: for the event
    page. Nothing where nobody is ever pending (the embedded default): not even a query."""
    line = adapters().line
    if not line.keeps_entries:
        return []
    statement = (
        select(BookingRequest.request_id)
        .where(
            BookingRequest.user_id == user_id,
            BookingRequest.event_id == event_id,
            BookingRequest.status == states.RequestStatus.PENDING,
        )
        .order_by(BookingRequest.id)
        .limit(limits.LINE_PLACES_SHOWN_MAX)
    )
    places = []
    for request_id in db.session.execute(statement).scalars():
        reading = line.reading(event_id, request_id)
        if reading is None:
            places.append((request_id, line_rules.NOT_COUNTED_YET))
        else:
            places.append((request_id, line_rules.pending_place(reading.rank, reading.decided_per_second)))
    return places


def _line_place(
    request: _RequestColumns, waitlist_standing: WaitlistStanding | None
) -> line_rules.PendingPlace | line_rules.WaitlistPlace | None:
    """Where the request stands: in its event's pending line (read from the line's store, one
    round trip; "not counted yet" when the store does not hold it), or on the waitlist."""
    if request.status == states.RequestStatus.PENDING:
        line = adapters().line
        if not line.keeps_entries:
            return None
        reading = line.reading(request.event_id, request.request_id)
        if reading is None:
            return line_rules.NOT_COUNTED_YET
        return line_rules.pending_place(reading.rank, reading.decided_per_second)
    if waitlist_standing is not None:
        position, seats_ahead = waitlist_standing
        return line_rules.waitlist_place(position - 1, seats_ahead)
    return None


def _open_offer(entry: WaitlistEntry) -> OpenOfferView | None:
    offer = entry.open_offer()
    if offer is None:
        return None
    return OpenOfferView(offer.seats_offered, offer.seats_waiting, offer.expires_at)


def _waitlist_place(entry: WaitlistEntry, request: BookingRequest, event: Event) -> WaitlistPlace:
    return WaitlistPlace(
        request_id=request.request_id,
        event=event,
        seats_waiting=entry.seats_remaining,
        seats_requested=request.seats_requested,
        seats_held=seats_held(request.seats_confirmed, request.seats_cancelled),
        place=_place_in_line(entry),
        joined_at=entry.created_at,
        seats_offered=entry.seats_offered,
        offer_expires_at=entry.offer_expires_at,
    )


def _place_in_line(entry: WaitlistEntry) -> int:
    assert entry.status == states.WaitlistStatus.WAITING
    return _places_in_line(db.session(), [(entry.event_id, entry.id, entry.tier_id)])[entry.id][0]


WaitlistStanding = tuple[int, int | None]  # (1-based place, seats the entries ahead wait for, None: not counted)


def _places_in_line(session: Session, entries: list[tuple[int, int, int | None]]) -> dict[int, WaitlistStanding]:
    """Waiting entries' places in their tier's queue (1 = the head) and seats ahead, by entry
    id, from (event id, entry id, tier id) triples: the Redis mirror's answer, else counted in
    Postgres: per queue, the waiting entries (and their seats) before the first of them, then
    the waiting ones from the first to the last (a batch's new entries are the queue's tail,
    next to each other)."""
    mirror = adapters().waitlist
    places: dict[int, WaitlistStanding] = {}
    unmirrored: dict[tuple[int, int | None], list[int]] = {}
    for event_id, entry_id, tier_id in entries:
        mirrored = mirror.place(event_id, entry_id, tier_id)
        if mirrored is not None:
            places[entry_id] = mirrored
        else:
            unmirrored.setdefault((event_id, tier_id), []).append(entry_id)
    for (event_id, tier_id), entry_ids in unmirrored.items():
        waiting = (
            WaitlistEntry.event_id == event_id,
            WaitlistEntry.tier_id == tier_id,  # IS NULL for None: those queue together, as in the mirror
            WaitlistEntry.status == states.WaitlistStatus.WAITING,
        )
        first, last = min(entry_ids), max(entry_ids)
        ahead = session.execute(
            select(func.count(WaitlistEntry.id), func.coalesce(func.sum(WaitlistEntry.seats_remaining), 0)).where(
                *waiting, WaitlistEntry.id < first
            )
        ).one()
        ahead_count, seats_ahead = int(ahead[0]), int(ahead[1])
        if first == last:
            places[first] = (ahead_count + 1, seats_ahead)
            continue
        span = session.execute(
            select(WaitlistEntry.id, WaitlistEntry.seats_remaining)
            .where(*waiting, WaitlistEntry.id >= first, WaitlistEntry.id <= last)
            .order_by(WaitlistEntry.id)
        ).all()
        place_of: dict[int, WaitlistStanding] = {}
        for index, (entry_id, seats) in enumerate(span, start=1):
            place_of[entry_id] = (ahead_count + index, seats_ahead)
            seats_ahead += seats
        places.update((entry_id, place_of[entry_id]) for entry_id in entry_ids)
    return places
