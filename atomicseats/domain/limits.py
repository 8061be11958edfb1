"""Named limits for every loop, batch, queue, poll, retry and wait.

Config may lower some of these (never raise them); the relations between them are
asserted at import so a bad edit fails at start-up, not under load.
"""

from __future__ import annotations

# Booking.
SEATS_PER_REQUEST_MAX = 10  # the default upper bound; config may lower it
ALLOCATION_BATCH_SIZE_MAX = 500  # new requests decided in one allocation transaction (a task's first)
# Under a backlog the worker's batches double, full batch after full batch, up to this: fewer
# transactions (lock, commit, after-commit effects) per decision while work waits.
ALLOCATION_BACKLOG_BATCH_MAX = 4000
# The events of one partition's wake-up are decided together, this many in one transaction (one
# commit, one Celery task): a hot event's turn no longer waits behind a task per small event.
ALLOCATION_EVENTS_PER_TRANSACTION_MAX = 32
# A batch of at least this many decisions builds its waitlist entries and e-mails while its
# requests' UPDATE runs (services/unit_of_work.py, `meanwhile`); a smaller one, one after the
# other: the helper thread's start and the GIL's hand-over cost more than a few rows' Python.
WRITES_ALONGSIDE_ROWS_MIN = 200
WAITLIST_PROMOTION_BATCH_MAX = 1000  # waiting entries read for one promotion
CAPACITY_SEATS_MAX = 1_000_000
# Promotion rounds in one transaction: each round but the last serves a whole batch of
# entries in full (a seat each at least), so this covers any capacity we accept.
PROMOTION_ROUNDS_MAX = CAPACITY_SEATS_MAX // WAITLIST_PROMOTION_BATCH_MAX + 1
# Sales end: waiting entries expired in one transaction (the close-out commits batch by
# batch), and how late a close-out may be before `flask audit` calls it a violation.
CLOSE_OUT_BATCH_MAX = 1000
CLOSE_OUT_EVENTS_PER_RUN_MAX = 200
CLOSE_OUT_INTERVAL_S = 30
OFFER_EXPIRY_INTERVAL_S = 15  # waitlist offers past their deadline end within this (plus a run)
OFFER_EXPIRY_GRACE_S = 4 * OFFER_EXPIRY_INTERVAL_S  # `flask audit`: an open offer this far past its deadline
CLOSE_OUT_GRACE_S = 300
PRICE_MINOR_MAX = 100_000_000  # integer minor units, never float
TIERS_PER_EVENT_MAX = 10  # price tiers of one event (domain/tiers.py)
TIER_NAME_CHARS_MAX = 60

# Reading.
HISTORY_PAGE_SIZE_MAX = 100
HISTORY_PAGE_SIZE_DEFAULT = 20
# "My bookings" shows at most this many bookings and waiting places on one page, and says
# so when a guest has more (the API's history pages walk them all).
GUEST_BOOKINGS_SHOWN_MAX = 500
WAITLIST_PLACES_SHOWN_MAX = 100
# Every list is a page of at most *_PAGE_SIZE_MAX rows (a plain GET gives *_DEFAULT); the
# cursor walks the rest, so nothing is ever cut off silently.
EVENTS_PAGE_SIZE_MAX = 100
EVENTS_PAGE_SIZE_DEFAULT = 20
EVENT_SEARCH_CHARS_MAX = 100  # the `q` of the catalogue: a name or venue fragment
ROSTER_PAGE_SIZE_MAX = 1000  # bookings and waitlist entries together
ROSTER_PAGE_SIZE_DEFAULT = 100
ANALYTICS_PAGE_SIZE_MAX = 500  # events in the per-event part of the analytics
ANALYTICS_PAGE_SIZE_DEFAULT = 100
USERS_PAGE_SIZE_MAX = 100  # the admins' user list
USERS_PAGE_SIZE_DEFAULT = 25
USER_SEARCH_CHARS_MAX = 100  # the `q` of the user list: part of a username, name or e-mail
TOP_EVENTS_MAX = 10
LONG_POLL_WAIT_S_MAX = 30
WAITLIST_MIRROR_ENTRIES_MAX = 100_000  # longer waitlists are not mirrored in Redis (Postgres answers)
# The pending line (place in line while a request waits for its decision): reconcile puts back
# at most this many of an event's oldest pending requests into a lost line at once.
LINE_REBUILD_ENTRIES_MAX = 100_000
# A waiting entry's "seats asked ahead of you" is counted over at most this many entries ahead
# (a Redis read of that many seat counts); further back only its place is shown.
WAITLIST_SEATS_AHEAD_ENTRIES_MAX = 1000
LINE_PLACES_SHOWN_MAX = 5  # a guest's pending requests shown with their place on an event's page

# Database.
LOCK_TIMEOUT_MS = 3000
STATEMENT_TIMEOUT_MS = 10000
DATABASE_CONNECT_TIMEOUT_S = 3  # a Postgres host that does not answer a connect
DATABASE_PING_AFTER_IDLE_S = 1.0  # a pooled connection idle this long is checked before use
DATABASE_RETRY_AFTER_S = 2  # Retry-After while the database is down or recovering (a restart takes seconds)

# Outbox.
OUTBOX_SEND_ATTEMPTS_MAX = 8
OUTBOX_BATCH_SIZE_MAX = 200
# Retry n waits OUTBOX_RETRY_DELAY_S_MIN * 2**(n-1) seconds, capped: about 15 minutes of
# retries in all before a row is 'failed' (an operator can requeue it).
OUTBOX_RETRY_DELAY_S_MIN = 10
OUTBOX_RETRY_DELAY_S_MAX = 300

# Retention (services/retention.py): old decided requests, sent outbox rows and ended sessions
# are deleted this many rows per transaction, a bounded number of batches per run.
PURGE_BATCH_SIZE_MAX = 500
PURGE_BATCHES_PER_RUN_MAX = 200
# No retention is shorter than this: a client retrying with its Idempotency-Key within the
# registry's 24 h window must find its request, never a fresh one under the same request id.
RETENTION_DAYS_MIN = 2
# A sender hides the rows it claimed from other senders for this long, and starts no new
# send after OUTBOX_SEND_BATCH_S_MAX: a crashed sender's rows come back after the lease.
OUTBOX_SEND_LEASE_S = 180
OUTBOX_SEND_BATCH_S_MAX = 60
OUTBOX_RECORD_RETRY_S_MAX = 20  # recording a send that went out, while the database is down or recovering
OUTBOX_LAST_ERROR_CHARS_MAX = 500
MAIL_SMTP_TIMEOUT_S = 10  # per socket operation (connect, each SMTP command)
MAIL_SMTP_OPERATIONS_MAX = 8  # connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT
# A batch goes over one SMTP session, or over several in parallel when it is big and
# MAIL_SMTP_SESSIONS allows (each SMTP command is a round trip: sessions overlap their waits);
# a session carries at least this many messages.
MAIL_SMTP_SESSIONS_MAX = 16
MAIL_SMTP_MESSAGES_PER_SESSION_MIN = 25
# While a batch goes out, the e-mails the server accepted are recorded at least this often: a
# sender killed mid-batch sends again at most the last few tenths of a second (at ~1,000/s a
# batch of 200 takes 0.2 s: one record, as before).
MAIL_ACCEPTED_REPORT_S = 0.5

# HTTP.
JSON_BODY_BYTES_MAX = 64 * 1024

# Accounts: the rules are domain/accounts.py, applied by services/users.py; the users columns use them.
USERNAME_LENGTH_MIN = 3
USERNAME_LENGTH_MAX = 32  # the users.username column
EMAIL_LENGTH_MAX = 254  # the users.email column (RFC 5321 path limit)
PASSWORD_LENGTH_MIN = 10
PASSWORD_LENGTH_MAX = 128

assert SEATS_PER_REQUEST_MAX >= 1
assert SEATS_PER_REQUEST_MAX <= CAPACITY_SEATS_MAX
assert ALLOCATION_BATCH_SIZE_MAX >= 1
assert ALLOCATION_BATCH_SIZE_MAX <= ALLOCATION_BACKLOG_BATCH_MAX
assert ALLOCATION_EVENTS_PER_TRANSACTION_MAX >= 1
assert 1 <= WRITES_ALONGSIDE_ROWS_MIN <= ALLOCATION_BACKLOG_BATCH_MAX
assert WAITLIST_PROMOTION_BATCH_MAX >= 1
assert CLOSE_OUT_BATCH_MAX >= 1
assert CLOSE_OUT_BATCH_MAX <= WAITLIST_PROMOTION_BATCH_MAX  # expire_waitlist takes one promotion batch
assert CLOSE_OUT_EVENTS_PER_RUN_MAX >= 1
# The periodic close-out runs several times within the grace the audit allows it.
assert CLOSE_OUT_INTERVAL_S * 3 <= CLOSE_OUT_GRACE_S
# One allocation's seat arithmetic stays far inside exact integer range.
assert ALLOCATION_BACKLOG_BATCH_MAX * SEATS_PER_REQUEST_MAX <= CAPACITY_SEATS_MAX
assert WAITLIST_PROMOTION_BATCH_MAX * SEATS_PER_REQUEST_MAX <= CAPACITY_SEATS_MAX
assert PRICE_MINOR_MAX >= 1
# Cost of one request (seats * price) must fit a signed 64-bit column.
assert SEATS_PER_REQUEST_MAX * PRICE_MINOR_MAX < 2**63
assert HISTORY_PAGE_SIZE_DEFAULT >= 1
assert HISTORY_PAGE_SIZE_DEFAULT <= HISTORY_PAGE_SIZE_MAX
assert 1 <= EVENTS_PAGE_SIZE_DEFAULT <= EVENTS_PAGE_SIZE_MAX
assert EVENT_SEARCH_CHARS_MAX >= 1
assert 1 <= ROSTER_PAGE_SIZE_DEFAULT <= ROSTER_PAGE_SIZE_MAX
assert 1 <= ANALYTICS_PAGE_SIZE_DEFAULT <= ANALYTICS_PAGE_SIZE_MAX
assert 1 <= USERS_PAGE_SIZE_DEFAULT <= USERS_PAGE_SIZE_MAX
assert USER_SEARCH_CHARS_MAX >= 1
assert TOP_EVENTS_MAX >= 1
assert LONG_POLL_WAIT_S_MAX >= 1
assert WAITLIST_MIRROR_ENTRIES_MAX >= WAITLIST_PROMOTION_BATCH_MAX
assert LINE_REBUILD_ENTRIES_MAX >= ALLOCATION_BACKLOG_BATCH_MAX
assert 1 <= WAITLIST_SEATS_AHEAD_ENTRIES_MAX <= 4000  # one HMGET's arguments: within Lua's unpack limit
assert LOCK_TIMEOUT_MS > 0
assert LOCK_TIMEOUT_MS < STATEMENT_TIMEOUT_MS
assert DATABASE_RETRY_AFTER_S >= 1
assert DATABASE_CONNECT_TIMEOUT_S >= 1
assert OUTBOX_SEND_ATTEMPTS_MAX >= 1
assert OUTBOX_BATCH_SIZE_MAX >= 1
assert OUTBOX_RETRY_DELAY_S_MIN >= 1
assert OUTBOX_RETRY_DELAY_S_MIN <= OUTBOX_RETRY_DELAY_S_MAX
assert PURGE_BATCH_SIZE_MAX >= 1
assert PURGE_BATCHES_PER_RUN_MAX >= 1
assert RETENTION_DAYS_MIN * 86400 > 24 * 3600  # longer than the Idempotency-Key window
assert OUTBOX_LAST_ERROR_CHARS_MAX >= 1
assert MAIL_SMTP_TIMEOUT_S >= 1
assert MAIL_SMTP_SESSIONS_MAX >= 1
assert MAIL_SMTP_MESSAGES_PER_SESSION_MIN >= 1
assert 0 < MAIL_ACCEPTED_REPORT_S < OUTBOX_SEND_BATCH_S_MAX
# The last send a batch starts finishes (or times out; a broken connection is retried on a
# new session only before the deadline), and the batch is recorded, well inside the lease,
# so no other sender takes a row back while it is still being sent.
assert (
    OUTBOX_SEND_BATCH_S_MAX + MAIL_SMTP_TIMEOUT_S * MAIL_SMTP_OPERATIONS_MAX + OUTBOX_RECORD_RETRY_S_MAX
    < OUTBOX_SEND_LEASE_S
)
assert JSON_BODY_BYTES_MAX >= 1024
assert 1 <= USERNAME_LENGTH_MIN <= USERNAME_LENGTH_MAX
assert 1 <= PASSWORD_LENGTH_MIN <= PASSWORD_LENGTH_MAX
