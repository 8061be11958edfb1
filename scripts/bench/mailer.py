"""The mailer alone: how many e-mails/s one mailer process sends to the SMTP sink.

    .venv/bin/python -m scripts.bench.mailer [--emails 20000] [--database-url postgresql://...]

On a fresh database (`atomicseats_mailer_bench`, migrated) on the bench stack's PostgreSQL
(started if it is not running: BENCH_STACK / BENCH_PORT_OFFSET move it as for `make bench`), or
next to the one --database-url names,
N due e-mail rows are written (one per guest, the kinds of a flash sale, realistic payloads);
the SMTP sink (scripts/smtp_sink.py) runs as its own process, as in `make up` (but counting
the messages instead of storing them, unless --store); then this process calls the outbox's
sender back to back, as the Celery task does, until every row is sent. It prints e-mails/s,
the CPU milliseconds of this process per e-mail and of the sink, and checks every row is
`sent` and the sink took N messages. --profile FILE writes a cProfile of the sending (read it
with `python -m pstats FILE`).

A benchmark, not a test: the figure depends on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench.common import BIN, ROOT
from scripts.bench.stack import Db, fresh_database

DATABASE = "atomicseats_mailer_bench"
KINDS = ("booking.confirmed", "booking.waitlisted", "booking.rejected", "booking.partial")


def payload(kind: str, index: int) -> dict:
    seats = 1 + index % 4
    base = {
        "eventId": 1,
        "eventName": "Flash Sale Live",
        "venue": "Main Arena",
        "startsAt": "2026-12-05T19:30:00+00:00",
        "requestId": f"req-{index:08d}",
        "seatsRequested": seats,
        "bookingIds": [],
    }
    if kind == "booking.confirmed":
        return {**base, "seatsConfirmed": seats, "seatsWaitlisted": 0, "bookingIds": [index + 1]}
    if kind == "booking.partial":
        return {**base, "seatsRequested": seats + 1, "seatsConfirmed": 1, "seatsWaitlisted": seats}
    if kind == "booking.waitlisted":
        return {**base, "seatsConfirmed": 0, "seatsWaitlisted": seats}
    return {**base, "seatsConfirmed": 0, "seatsWaitlisted": 0, "reason": "waitlist_closed"}


def fill(url: str, emails: int) -> None:
    db = Db(url)
    try:
        with db.connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO users (username, name, email, password_hash, role, created_at)"
                " SELECT 'guest' || i, 'Guest Number ' || i, 'guest' || i || '@example.test', 'x', 'guest', now()"
                " FROM generate_series(1, %s) AS i",
                (emails,),
            )
            cursor.execute("SELECT id FROM users ORDER BY id")
            user_ids = [row[0] for row in cursor.fetchall()]
            rows = []
            for index, user_id in enumerate(user_ids):
                kind = KINDS[index % len(KINDS)]
                rows.append(
                    (kind, f"<{kind}.req-{index:08d}@atomicseats.local>", user_id, json.dumps(payload(kind, index)))
                )
            cursor.executemany(
                "INSERT INTO outbox (channel, kind, message_id, user_id, payload, status, attempts,"
                " next_attempt_at, created_at, published_at)"
                " VALUES ('email', %s, %s, %s, %s, 'pending', 0, now(), now(), now())",
                rows,
            )
    finally:
        db.close()


def start_sink(directory: Path, store: bool) -> tuple[subprocess.Popen, int]:
    """The sink on a free port; unless `store`, it counts into directory/../sink.count when stopped."""
    ready = directory.parent / "sink.port"
    process = subprocess.Popen(
        [str(BIN / "python"), str(ROOT / "scripts" / "smtp_sink.py"), "--port", "0", "--dir", str(directory)]
        + ["--ready-file", str(ready), "--quiet"]
        + ([] if store else ["--discard", "--count-file", str(directory.parent / "sink.count")]),
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() or not ready.read_text().strip():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("the SMTP sink did not start")
        time.sleep(0.05)
    return process, int(ready.read_text())


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.mailer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL URL: its server gets a fresh database (the bench stack's)")
    parser.add_argument("--emails", type=int, default=20000, help="e-mails to send (20000)")
    parser.add_argument("--limit", type=int, default=None, help="rows per batch (the outbox's default)")
    parser.add_argument("--sessions", type=int, default=1, help="MAIL_SMTP_SESSIONS: SMTP sessions in parallel (1)")
    parser.add_argument("--profile", help="write a cProfile of the sending to this file")
    parser.add_argument("--store", action="store_true", help="the sink stores each message as a file (as make up's)")
    args = parser.parse_args(argv)

    url = fresh_database(args.database_url, DATABASE)
    from flask_migrate import upgrade

    from atomicseats import create_app
    from atomicseats.domain import limits
    from atomicseats.services import outbox

    with tempfile.TemporaryDirectory(prefix="mailer-bench-") as work:
        sink_dir = Path(work) / "messages"
        sink, port = start_sink(sink_dir, args.store)
        try:
            overrides = {
                "SQLALCHEMY_DATABASE_URI": url,
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": port,
                "MAIL_SUPPRESS_SEND": False,
                "MAIL_SMTP_SESSIONS": args.sessions,
            }
            app = create_app("development", overrides=overrides)
            with app.app_context():
                upgrade(directory=str(ROOT / "migrations"))
            fill(url, args.emails)
            print(f"{args.emails} due e-mails written; sending to the sink on :{port}", flush=True)
            profiler = cProfile.Profile() if args.profile else None
            sent = 0
            with app.app_context():
                sink_cpu0, cpu0 = process_cpu_s(sink.pid), time.process_time()
                started = time.monotonic()
                if profiler:
                    profiler.enable()
                while sent < args.emails:
                    report = outbox.send_due_notifications(args.limit or limits.OUTBOX_BATCH_SIZE_MAX)
                    if report.sent + report.retried + report.failed == 0:
                        break
                    sent += report.sent
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                elapsed = time.monotonic() - started
                cpu, sink_cpu = time.process_time() - cpu0, process_cpu_s(sink.pid) - sink_cpu0
        finally:
            sink.terminate()
            sink.wait(10)
        count_file = sink_dir.parent / "sink.count"
        stored = len(list(sink_dir.glob("*.eml"))) if args.store else int(count_file.read_text() or 0)
    db = Db(url)
    statuses = dict(db.rows("SELECT status, count(*) FROM outbox GROUP BY status"))
    db.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_mail = 1000 / max(sent, 1)
    print(
        f"sent {sent} in {elapsed:.2f}s = {sent / elapsed:.0f} e-mails/s; "
        f"mailer CPU {cpu * per_mail:.3f} ms/e-mail, sink CPU {sink_cpu * per_mail:.3f} ms/e-mail;"
        f" peak RSS {rss_mb:.0f} MB; rows {statuses}; sink {'stored' if args.store else 'took'} {stored}"
    )
    ok = statuses == {"sent": args.emails} and stored == args.emails
    print(f"emails_per_s={sent / elapsed:.0f} ok={int(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
