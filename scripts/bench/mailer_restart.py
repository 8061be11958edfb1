"""A restarted mailer: how fast a mailer stopped mid-backlog (as a deploy stops it) and started
again sends what waits.

    STACK=<name> STACK_PORT_OFFSET=<n> .venv/bin/python -m scripts.bench.mailer_restart \\
        [--emails 30000] [--events 50000] [--wait 30] [--pause]

On a running full-mode stack (`make up`, or scripts/platform.sh up with the same STACK and
STACK_PORT_OFFSET): writes N due e-mails (one guest each, the kinds of a flash sale) and M-N more
unpublished domain events into its outbox while the mailer runs, lets it send for a few seconds,
stops it (`platform.sh stop mailer`), waits --wait seconds (beat queues its outbox tasks
meanwhile), starts it again and prints the drain second by second, then e-mails/s from the start
to the last e-mail sent and the mailer's CPU milliseconds per e-mail. --pause holds the mailer
with SIGSTOP / SIGCONT instead (the same processes go on). A benchmark, not a test: the figures
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid

from scripts.bench.common import ROOT
from scripts.bench.mailer import KINDS, payload
from scripts.stacktools import parse_exports

SENDING_BEFORE_STOP_S = 3.0


def platform(*args: str) -> str:
    return subprocess.run(
        ["bash", "scripts/platform.sh", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def mailer_pids() -> list[int]:
    """The mailer's process group: its restart loop, the Celery parent and the pool's children."""
    group = (ROOT / ".run" / os.environ.get("STACK", "dev") / "app" / "mailer.pid").read_text().strip()
    found = subprocess.run(["pgrep", "-g", group], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.mailer_restart", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--emails", type=int, default=30000, help="due e-mails written (30000)")
    parser.add_argument("--events", type=int, default=50000, help="unpublished outbox rows in all (50000)")
    parser.add_argument("--wait", type=float, default=30, help="seconds the mailer stays stopped (30)")
    parser.add_argument("--pause", action="store_true", help="SIGSTOP / SIGCONT instead of stop / start")
    args = parser.parse_args(argv)
    assert 1 <= args.emails <= args.events

    import psycopg2

    connection = psycopg2.connect(parse_exports(platform("env"))["DATABASE_URL"])
    connection.autocommit = True
    cursor = connection.cursor()

    def backlog() -> tuple[int, int]:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE channel = 'email' AND status = 'pending'),"
            " count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
        )
        return cursor.fetchone()

    tag = uuid.uuid4().hex[:8]
    cursor.execute(
        "INSERT INTO users (username, name, email, password_hash, role, created_at)"
        " SELECT 'restart' || %(tag)s || '-' || i, 'Guest ' || i, 'restart' || %(tag)s || '-' || i || '@example.test',"
        " 'x', 'guest', now() FROM generate_series(1, %(count)s) AS i RETURNING id",
        {"tag": tag, "count": args.emails},
    )
    user_ids = [row[0] for row in cursor.fetchall()]
    rows = io.StringIO()
    for index in range(args.events):
        channel, kind = ("email", KINDS[index % len(KINDS)]) if index < args.emails else ("event", KINDS[1])
        body = json.dumps(payload(kind, index)).replace("\\", "\\\\")
        user_id = user_ids[index % args.emails]
        fields = (channel, kind, f"<{kind}.{tag}-{index}@x.local>", str(user_id), body, "pending", "0", "now", "now")
        rows.write("\t".join(fields) + "\n")
    rows.seek(0)
    cursor.copy_expert(
        "COPY outbox (channel, kind, message_id, user_id, payload, status, attempts, next_attempt_at, created_at)"
        " FROM STDIN",  # due now, unpublished
        rows,
    )
    print(f"written: {backlog()} (e-mails pending, unpublished); the mailer sends for {SENDING_BEFORE_STOP_S}s")
    time.sleep(SENDING_BEFORE_STOP_S)
    paused = mailer_pids() if args.pause else []
    if args.pause:
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
    else:
        platform("stop", "mailer")
    print(f"mailer {'paused' if args.pause else 'stopped'}: {backlog()} left; waiting {args.wait}s")
    time.sleep(args.wait)
    asked = time.monotonic()
    if args.pause:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    else:
        platform("start", "mailer")
    started = time.monotonic()
    pids = mailer_pids()
    cpu0 = cpu_s(pids)
    emails0, events0 = backlog()
    last, emails_done, events_done = (emails0, events0, started), None, None
    while emails_done is None or events_done is None:
        time.sleep(1)
        emails, events = backlog()
        now = time.monotonic()
        print(
            f"  {now - started:6.1f}s: {emails} e-mails, {events} domain events left;"
            f" {(last[0] - emails) / (now - last[2]):.0f} e-mails/s,"
            f" {(last[1] - events) / (now - last[2]):.0f} events/s"
        )
        last = (emails, events, now)
        emails_done = emails_done or (now if emails == 0 else None)
        events_done = events_done or (now if events == 0 else None)
    per_email_ms = (cpu_s(pids) - cpu0) * 1000 / max(emails0, 1)
    print(
        f"{'resumed' if args.pause else 'restarted'} mailer (ready after {started - asked:.1f}s):"
        f" {emails0} e-mails in {emails_done - started:.1f}s = {emails0 / (emails_done - started):.0f} e-mails/s;"
        f" {events0} domain events in {events_done - started:.1f}s; mailer CPU {per_email_ms:.3f} ms/e-mail"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
