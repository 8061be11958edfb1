"""A mailer stopped mid-backlog (a deploy, `platform.sh stop mailer`) and started again picks the
backlog up at once: the stop lets its pool finish the batch in hand and record it, so nothing
stays leased to a process that is gone, and nothing goes out twice.

(It used to: the stop sent TERM to the mailer's whole process group, the Celery pool's children
died on it mid-batch, and their rows stayed leased for OUTBOX_SEND_LEASE_S, 3 minutes: a
restarted mailer sent the rest of a 30,000 e-mail backlog, then sat idle until the lease ran
out, ~360 e-mails/s on average in make bench instead of ~1,200.)
"""

from __future__ import annotations

import json

import pytest

from atomicseats.domain import limits
from scripts.bench.mailer import KINDS, payload
from tests.e2e.support import Platform, poll, unique

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# E-mails: the mailer takes seconds to send them, so the stop finds it mid-batch. (It may send
# the rest before it stops: its task goes on for up to EMAIL_TASK_S_MAX, and that is fine.)
BACKLOG = 3000
SENT_BEFORE_STOP = 2 * limits.OUTBOX_BATCH_SIZE_MAX  # the mailer is in full swing
# Far less than the lease: a row left leased would keep the drain from finishing for minutes.
DRAINED_TIMEOUT_S = limits.OUTBOX_SEND_LEASE_S / 2


def write_backlog(platform: Platform, count: int) -> list[str]:
    """`count` due e-mails (one guest each, the kinds of a flash sale) straight into the outbox,
    as the worker's decisions write them; their Message-IDs."""
    prefix = unique("restart")
    user_ids = [
        row[0]
        for row in platform.sql(
            "INSERT INTO users (username, name, email, password_hash, role, created_at)"
            " SELECT %(prefix)s || i, 'Guest ' || i, %(prefix)s || i || '@example.test', 'x', 'guest', now()"
            " FROM generate_series(1, %(count)s) AS i RETURNING id",
            {"prefix": prefix, "count": count},
        )
    ]
    rows = []
    for index, user_id in enumerate(user_ids):
        kind = KINDS[index % len(KINDS)]
        rows.append((kind, f"<{kind}.{prefix}-{index}@atomicseats.local>", user_id, json.dumps(payload(kind, index))))
    platform.sql(
        "INSERT INTO outbox (channel, kind, message_id, user_id, payload, status, attempts, next_attempt_at,"
        " created_at, published_at)"
        " SELECT 'email', kind, message_id, user_id, payload, 'pending', 0, now(), now(), now()"
        " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[]) AS r(kind, message_id, user_id, payload)",
        tuple(list(column) for column in zip(*rows, strict=True)),
    )
    return [row[1] for row in rows]  # the beat's next outbox run (every OUTBOX_INTERVAL_S) wakes the mailer


def test_a_mailer_stopped_mid_backlog_leaves_nothing_leased_and_its_successor_sends_the_rest(platform):
    message_ids = write_backlog(platform, BACKLOG)

    def sent() -> int:
        return platform.sql(
            "SELECT count(*) FROM outbox WHERE message_id = ANY(%s) AND status = 'sent'", (message_ids,)
        )[0][0]

    poll(lambda: sent() >= SENT_BEFORE_STOP, 60, 0.05, "the mailer in full swing")
    platform.platform_sh("stop", "mailer")
    try:
        leased = platform.sql(
            "SELECT count(*) FROM outbox WHERE message_id = ANY(%s) AND status = 'pending' AND next_attempt_at > now()",
            (message_ids,),
        )[0][0]
        assert leased == 0, f"{leased} e-mails left leased by the stopped mailer: the next one waits out the lease"
    finally:
        platform.start("mailer")
    poll(lambda: sent() == BACKLOG, DRAINED_TIMEOUT_S, 0.5, "the restarted mailer to send the rest")
    grouped = platform.wait_for_mails(message_ids, 30)
    twice = [message_id for message_id in message_ids if len(grouped[message_id]) > 1]
    assert not twice, f"{len(twice)} e-mails sent twice, e.g. {twice[:3]}"
