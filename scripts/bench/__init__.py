"""`make bench`: a flash sale against the full pipeline on this machine, and the same load
against the embedded default for comparison. A benchmark, not a timed test.

What it does (every step bounded by a deadline, everything on 127.0.0.1):

  setup     STACK=bench: stop any app process left over, start the services, create a fresh
            database, recreate the Kafka topics empty (and forget the bridge's group), flush
            Redis, then `scripts/platform.sh up` (API on :5200, bridge, worker, beat, Flower).
            1 host and G guests are inserted with one shared password hash and logged in
            in-process (argon2 costs ~0.3 s per hash here: 400 hashes would take a minute);
            the events are created through the API with the host's token.
            PostgreSQL runs with production durability (fsync, synchronous commits): every
            figure includes the WAL flushes a real deployment pays.
  warm-up   the same load for W seconds on a separate event (a cold Kafka broker spends
            its first half minute JIT-compiling); then the warm-up's e-mails go out (an on-sale
            starts on a quiet platform) and dirty pages are synced to disk, so neither the
            mailer nor the kernel's writeback lands in a measured phase.
  idle      (scripts/bench/idle.py) one booking at a time on the warm, quiet stack (--idle,
            200), once the machine's CPUs were at most 10 % busy for a second (at most 20 s:
            the outbox's last rows are sent before the mailer's task ends): each POSTed on a
            kept-alive connection and waited for with ?wait, then a short gap (--idle-gap-ms,
            50). p50/p99/p99.9 of 202 -> decided: decided_at (the worker's record) minus the
            moment the client read the 202, both this machine's clock; beside it 202 ->
            recorded by the bridge (created_at), accepted_at -> decided_at and the client's
            202 -> answer of the wait. Floor: p99 <= 30 ms (idle_p99_ms on the last line).
  accept    wrk (C, cheap on 2 shared cores) drives N connections for T seconds of
            POST /api/events/book with rotating tokens: 70% to one hot event, 30% spread
            over 20 others, 1-4 seats. accepted/s = 2xx responses / duration. The request id
            of every 202 is kept (scripts/bench/book.lua).
  drain     until every 202 has a final outcome in Postgres (deadline), then
            p50/p99 of decided_at - accepted_at over those requests.
  open loop a latency curve (scripts/bench/openloop.py): vegeta sends bookings at fixed rates
            (default 10/25/50/75/100% of the accepted/s just measured; --openloop-rates) whatever
            the answers do, 2 s warm-up + 5 s each on fresh events, each on an empty outbox; per rate HTTP and
            202 -> decided p50/p99/p99.9, as a table, a CSV and an SVG chart (--openloop-out).
  outbox    wait (bounded) until the e-mails and domain events of the accept phase are out,
            so the decide phase does not inherit that phase's leftover e-mail work; the accept
            phase's e-mails' decided -> sent lag p50/p99 (the outbox's created_at -> sent_at).
  decide    "one hot event with a backlog", measured twice on fresh hot events:
            pipeline  (the headline decided/s) bridge stopped, B requests produced straight
                      to Kafka in the API's message format; then the bridge is started with
                      the worker running and the clock runs until all B are decided. This
                      is what a backlog waiting in Kafka really drains at: recording
                      (bridge) and deciding (Celery) both on the clock, sharing the CPU.
            stages    bridge and worker stopped, B more requests produced; bridge alone
                      (record/s), then worker alone (decide/s from recorded requests). The
                      worker-only figure isolates the allocator path, but the recording was
                      done off its clock, so it is a diagnostic, not the headline.
            decided/s = (B - first batch) / (last decided_at - first decided_at); the wall
            clock rate, including process start-up, is printed next to it.
            e-mail    then wait (bounded) until the decide phase's e-mails (one a decision) are
                      out: the mailer's rate on that backlog (emails_per_s: e-mails sent in
                      the seconds that began and ended with a batch or more waiting) and their
                      decided -> sent lag p50/p99 (scripts/bench/outcomes.py mailer_figures).
            memory    while the pipeline drains the backlog, the peak RSS of each process (each
                      API worker, the bridge, each allocation worker and mailer process) from
                      /proc (scripts/bench/memory.py: VmHWM reset at the start, RSS sampled);
                      floors: API worker < 200 MB, bridge and allocation worker < 300 MB.
  reference (scripts/bench/reference.py, its own process; --skip-reference) once the decide
            phase's e-mails are out: the rows the worker writes for the stages phase's backlog
            (same size, capacity and seat mix: outcomes, bookings with their ids, waitlist
            entries, outbox rows, reserved_seats) written again by bare SQL on a fresh database
            beside the bench's. The allocator decides before the clock; on it only the writing,
            in the worker's batches: COPY FROM STDIN (outcomes into a staging table + one
            UPDATE ... FROM), durable commits, a commit per batch (reference_decided_per_s: the
            worker alone is printed as a share of it) and all in one transaction.
  many      many events (scripts/bench/many.py): M events (200) over every partition of
            booking-requests, a second allocation worker started (platform.sh start worker2),
            B requests (20,000) spread over them waiting in Kafka, then drained as the decide
            phase does: aggregate decided/s, per partition the events, requests and decisions
            (every partition must be served), the decisions of each worker, CPU and peak RSS.
  waits     "waiting never blocks the API": decisions paused (bridge stopped), W requests
            (5,000) for a fresh event produced to Kafka and claimed in the request registry as
            the API does (so they read `pending`); the answer time of other routes
            (GET /api/events/all and POST /api/events/book, a few clients back to back) is sampled
            with no wait open, then with the W long polls (?wait=30, raw asyncio connections, each
            with its owner's token) open and subscribed. p50/p99 of the other routes with the waits
            open are in the table and the last line; the decisions resume and every wait must
            answer with its final outcome.
  check     oversold = sum over events of max(0, confirmed seats - capacity); lost = every
            request acknowledged (202 at the API, or acked by Kafka for the backlog) without
            a final outcome after the drain; `flask audit --pending-grace-s 0`.
            fairness (scripts/bench/fairness.py): the decision order (the id order of the
            decision e-mails' outbox rows) against Kafka order, every event of the run (must
            be 0), and against API acceptance order for the hot event (reported).
  embedded  the same accept load against `make run`'s server (scripts/api_server.sh embedded:
            granian, as the full mode's API) on the embedded default (the default config,
            PIPELINE=embedded, a fresh SQLite file, decisions inline with group commit), after
            the bench stack is down; --skip-full runs it alone.

CPU: every phase reports the CPU seconds each process group used (from /proc), so where
the time goes is measured, not guessed; "other" is everything on the machine that is not
this benchmark (another stack, a test run) and says how trustworthy the run is.

The last line of the output is machine-readable:
    accepted_per_s=N decided_per_s=N p50_ms=N p99_ms=N idle_p99_ms=N half_load_p99_ms=N emails_per_s=N
    oversold=N lost=N
    reference_decided_per_s=N many_decided_per_s=N api_rss_mb=N bridge_rss_mb=N worker_rss_mb=N mailer_rss_mb=N
    kafka_order_inversions=N acceptance_order_inversions=N waits_open=N
    waiting_other_p50_ms=N waiting_other_p99_ms=N waits_final=N cpu_gauge_ms=N wakeup_gauge_us=N
(a phase that did not run leaves its fields out; *_rss_mb: the largest process of the group;
cpu_gauge_ms: the machine gauge, the CPU one fixed pure-Python workload took before the first
phase and after the last, the larger; wakeup_gauge_us: a round trip between two processes
pinned to two CPUs, before the first phase. Figures of two runs compare as far as both gauges
agree: a hand-off that wakes another CPU cost ~50 us a round trip on a VM whose CPU gauge
matched a machine where the API accepted over twice as many requests.)
Exit status: 0, or 1 if oversold/lost/audit/Kafka order failed (or --strict and a floor was missed),
2 if the benchmark itself could not run.

Run as `make bench` (BENCH_ARGS=--help for the options), or `python -m scripts.bench` from the
repository root. One module per phase: stack (processes, services, Postgres), cpu (CPU
accounting), accounts (setup), load (wrk), outcomes (drain, latency, checks), backlog (the decide
phase), reference, openloop, many, memory, fairness, waits, full (the full pipeline's phases in
order), embedded, report; __main__ runs them.
"""
