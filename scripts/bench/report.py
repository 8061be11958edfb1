"""The report: the comparison table, each phase's details with its CPU, and the last,
machine-readable line."""

from __future__ import annotations

import math
import os
import time

from scripts.bench.backlog import DecideResult
from scripts.bench.common import FLOOR_ACCEPTED, FLOOR_DECIDED, OTHER, WORK, fmt
from scripts.bench.cpu import Gauge
from scripts.bench.embedded import EmbeddedResult
from scripts.bench.full import FullResult
from scripts.bench.idle import FLOOR_IDLE_P99_MS, IdleResult
from scripts.bench.memory import API, BRIDGE, MAILER, WORKER, MemoryReport
from scripts.bench.openloop import OpenLoopResult, table_lines
from scripts.bench.outcomes import OutboxDrain
from scripts.bench.reference import ReferenceResult, share_line, share_percent
from scripts.bench.waits import described

COLUMNS = "{:<44}{:>20}{:>20}   {}"


def report(
    args, full: FullResult | None, embedded: EmbeddedResult | None, gauge: Gauge | None = None
) -> tuple[str, bool]:
    """Print the report; returns (the machine-readable last line, whether the run is ok)."""
    print_header(args)
    decided, acc_floor, dec_floor = floors(full)
    print_rates(full, embedded, decided, acc_floor, dec_floor)
    lost_full = lost_in_full(full)
    print_checks(full, embedded, lost_full)
    print_waits_row(full.waits if full else None)
    if full:
        print_phase_rows(full)
    print("  * embedded decides inline, before it answers: decided/s = requests decided in the accept phase / duration")
    ok = True
    if full:
        print_full_details(full)
        ok = ok and full.oversold == 0 and lost_full == 0 and full.audit_ok
        ok = ok and (full.fairness is None or full.fairness.kafka_pairs() == 0)
    if embedded:
        print(f"embedded default: non-2xx {embedded.accept.non_2xx()}; CPU during its accept phase:")
        for line in embedded.cpu.lines({"accepted": embedded.accept.accepted}):
            print(line)
        ok = ok and embedded.oversold == 0 and embedded.lost == 0
    if gauge:
        print(gauge.line())
    print(f"details: {WORK}")
    if full:
        final = full_final_line(full, decided, lost_full, embedded)
        idle_above = full.idle is not None and full.idle.p99_ms() > FLOOR_IDLE_P99_MS
        if args.strict and (acc_floor != "ok" or dec_floor != "ok" or not waits_all_final(full) or idle_above):
            ok = False
        if args.strict and (memory_over(full) or (full.many is not None and full.many.unserved())):
            ok = False
    else:
        final = embedded_final_line(embedded)
    return final + (gauge.field() if gauge else ""), ok


def print_header(args) -> None:
    cores = os.cpu_count()
    print()
    print("=" * 100)
    print(
        f"AtomicSeats flash-sale benchmark  {time.strftime('%F %T')}  {cores} CPUs  "
        f"load: {args.connections} connections x {args.duration:g}s, {args.guests} guests, "
        f"{args.hot_percent}% to one hot event (capacity {args.hot_capacity}), the rest over "
        f"{args.spread_events} events, 1-4 seats"
    )
    print("=" * 100)
    print(COLUMNS.format("", "full pipeline", "embedded default", ""))


def floors(full: FullResult | None) -> tuple[float, str, str]:
    """(the headline decided/s, the accepted floor's verdict, the decided floor's verdict)."""
    if not full:
        return float("nan"), "", ""
    acc_floor = "ok" if full.accept.accepted_per_s >= FLOOR_ACCEPTED else "BELOW FLOOR"
    decided = full.pipeline.decided_per_s if full.pipeline else float("nan")
    dec_floor = "ok" if decided >= FLOOR_DECIDED else "BELOW FLOOR"
    return decided, acc_floor, dec_floor


def lost_in_full(full: FullResult | None) -> int | None:
    if not full:
        return None
    phases = (full.pipeline, full.stages, full.waits, full.openloop, full.many, full.idle)
    return full.lost_api + sum(phase.lost for phase in phases if phase)


def print_rates(F: FullResult | None, emb: EmbeddedResult | None, decided: float, acc_floor: str, dec_floor: str):
    rows = [
        (
            "accepted requests/s at the API (2xx)",
            fmt(F and F.accept.accepted_per_s),
            fmt(emb and emb.accept.accepted_per_s),
            f"floor >= {FLOOR_ACCEPTED}: {acc_floor}" if F else "",
        ),
        (
            "decided requests/s, hot event with backlog",
            fmt(decided),
            fmt(emb and embedded_decided_per_s(emb)) + "*",
            f"floor >= {FLOOR_DECIDED}: {dec_floor}" if F else "",
        ),
        (
            "accepted -> final outcome p50 (ms)",
            fmt(F and F.latency.p50_ms),
            fmt(emb and emb.latency.p50_ms),
            "accept phase, from Postgres/SQLite timestamps",
        ),
        ("accepted -> final outcome p99 (ms)", fmt(F and F.latency.p99_ms), fmt(emb and emb.latency.p99_ms), ""),
        (
            "HTTP response time p50 / p99 (ms, wrk)",
            f"{fmt(F and F.accept.http_ms('50'), 1)} / {fmt(F and F.accept.http_ms('99'), 1)}" if F else "-",
            f"{fmt(emb.accept.http_ms('50'), 1)} / {fmt(emb.accept.http_ms('99'), 1)}" if emb else "-",
            "",
        ),
    ]
    if F and F.idle:
        rows.append(idle_row(F.idle))
    for row in rows:
        print(COLUMNS.format(*row))


def idle_row(idle: IdleResult) -> tuple[str, str, str, str]:
    verdict = "ok" if idle.p99_ms() <= FLOOR_IDLE_P99_MS else "ABOVE FLOOR"
    return (
        "202 -> decided p99, idle (ms)",
        fmt(idle.p99_ms(), 1),
        "-",
        f"one booking at a time; floor <= {FLOOR_IDLE_P99_MS:g}: {verdict}",
    )


def print_checks(F: FullResult | None, emb: EmbeddedResult | None, lost_full: int | None) -> None:
    rows = [
        ("requests answered 2xx (accept phase)", fmt(F and F.accept.accepted), fmt(emb and emb.accept.accepted), ""),
        ("oversold seats", fmt(F and F.oversold), fmt(emb and emb.oversold), "must be 0"),
        ("lost requests", fmt(lost_full), fmt(emb and emb.lost), "must be 0"),
        (
            "events whose reserved_seats != confirmed",
            fmt(F and F.counter_mismatches),
            fmt(emb and emb.counter_mismatches),
            "",
        ),
    ]
    for row in rows:
        print(COLUMNS.format(*row))


def print_waits_row(W) -> None:
    print(
        COLUMNS.format(
            f"other routes p50 / p99 (ms), {W.count if W else 0} waits open" if W else "other routes, waits open",
            f"{fmt(W.waiting.quantile(50), 1)} / {fmt(W.waiting.quantile(99), 1)}" if W else "-",
            "-",
            f"no wait open: {fmt(W.idle.quantile(50), 1)} / {fmt(W.idle.quantile(99), 1)}" if W else "",
        )
    )
    print(
        COLUMNS.format(
            "waits answered with their final outcome",
            f"{W.answered_final} / {W.count}" if W else "-",
            "-",
            "once decisions resume; must be all" if W else "",
        )
    )


def print_full_details(F: FullResult) -> None:
    print_interference(F)
    print()
    print(f"full pipeline, accept phase: non-2xx {F.accept.non_2xx()}; outcomes {F.accept_statuses_db}")
    print(
        f"  accepted -> recorded by the bridge p50 {fmt(F.latency.record_p50_ms)} ms, p99 "
        f"{fmt(F.latency.record_p99_ms)} ms; accepted -> final max {fmt(F.latency.max_ms)} ms; "
        f"backlog drained {F.drain_s:.1f}s after the load stopped"
    )
    print(f"  CPU during the accept phase (top -b -n1 mid-phase in {F.top_file}):")
    print_cpu(F.accept_cpu, {"accepted": F.accept.accepted})
    if F.openloop:
        print_openloop(F.openloop)
    if F.outbox:
        print(f"outbox after the accept phase (before the decide phase): {F.outbox.describe()}")
        if F.outbox.mailer:
            print(f"  the accept phase's e-mails: {F.outbox.mailer.describe()}")
    if F.mail:
        print(f"outbox after the decide phase: {F.mail.describe()}")
        if F.mail.mailer:
            print(f"  the decide phase's e-mails: {F.mail.mailer.describe()}")
        if F.mail.cpu:
            sent = F.mail.emails_at_start - F.mail.emails_left
            print(f"  CPU while they went out ({sent} e-mails: mailer, sink and the rest of the machine):")
            print_cpu(F.mail.cpu, {"e-mail": sent})
    if F.pipeline:
        print_pipeline(F.pipeline)
    if F.many:
        print_many(F.many)
    if F.idle:
        for line in F.idle.lines():
            print(line)
    if F.waits:
        print_waits(F.waits)
    if F.stages:
        print_stages(F.stages)
    if F.reference:
        print_reference(F.reference, F.stages)
    if F.fairness:
        for line in F.fairness.lines():
            print(line)
    print(f"audit ({'clean' if F.audit_ok else 'FAILED'}):")
    for line in F.audit_text.splitlines():
        print(f"  {line}")
    for note in F.oversold_notes[:10]:
        print(f"  ! {note}")


def print_interference(F: FullResult) -> None:
    shares = [("accept phase", F.accept_cpu)]
    shares += [("pipeline decide", F.pipeline.cpu)] if F.pipeline and F.pipeline.cpu else []
    print(
        "  interference: processes outside this benchmark used "
        + ", ".join(
            f"{100 * cpu.by_group.get(OTHER, 0) / cpu.wall_s:.0f}% of a core in the {name}" for name, cpu in shares
        )
        + " (the figures are only as good as the machine is quiet)"
    )


def print_cpu(cpu, per_request: dict[str, int]) -> None:
    for line in cpu.lines(per_request):
        print(line)


def print_openloop(curve: OpenLoopResult) -> None:
    print(
        f"open loop (vegeta, a fixed rate whatever the answers do): {curve.seconds:g}s per rate after "
        f"{curve.warmup_s:g}s warm-up, shares of the accept phase's {fmt(curve.ceiling_per_s)} accepted/s"
    )
    for line in table_lines(curve):
        print(f"  {line}")
    others = ", ".join(f"{p.offered_per_s}/s {fmt(p.other_cpu_pct)}%" for p in curve.points)
    print(f"  outside this benchmark: {others} of a core; curve in {curve.csv_path} and {curve.svg_path}")
    for point in curve.points:
        if point.non_2xx:
            print(f"  {point.offered_per_s}/s answers: {dict(sorted(point.statuses.items()))}")


def print_pipeline(p) -> None:
    print(
        f"decided/s (headline) = pipeline mode: {p.count} requests for one hot event waiting in Kafka, "
        f"bridge started with the worker running;"
    )
    print(
        f"  {fmt(p.decided_per_s)}/s from first to last decision ({p.span_s:.1f}s), "
        f"{fmt(p.wall_per_s)}/s wall clock incl. bridge start ({p.wall_s:.1f}s); outcomes {p.statuses}"
    )
    if p.cpu:
        print_cpu(p.cpu, {"decided": p.count})
    if p.memory:
        print(f"  peak RSS of each process while draining the {p.count:,} requests:")
        for line in p.memory.lines():
            print(line)


def print_waits(W) -> None:
    print(
        f"waits phase: {W.subscribed} of {W.count} long polls open and subscribed in {W.open_s:.1f}s; "
        f"after decisions resumed {W.answered_final} final ({W.answered_final_first} at the first wait, "
        f"{W.asked_again} waits asked again after pending, {W.busy} after busy), {W.answered_pending} still pending, "
        f"{W.errors} errors{described(W.error_kinds)}, last answer {W.last_answer_s:.1f}s after it, "
        f"slowest {W.slowest_answer_s:.1f}s after its request"
    )
    print(f"  other routes, no wait open:  {W.idle.describe()}")
    print(f"  other routes, {W.count} waits open: {W.waiting.describe()}")


def print_stages(s) -> None:
    print(
        f"stages (diagnostic, {s.count} requests): bridge alone records {fmt(s.record_per_s)}/s "
        f"(wall {fmt(s.record_wall_per_s)}/s); worker alone decides {fmt(s.decided_per_s)}/s "
        f"(wall incl. worker start {fmt(s.wall_per_s)}/s)"
    )
    print("  (the worker alone also sends the e-mails still queued from the pipeline phase meanwhile)")
    if s.record_cpu:
        print("  CPU, bridge alone:")
        print_cpu(s.record_cpu, {"recorded": s.count})
    if s.cpu:
        print("  CPU, worker alone:")
        print_cpu(s.cpu, {"decided": s.count})


def print_reference(reference: ReferenceResult, stages: DecideResult | None) -> None:
    """The bare-SQL reference's lines and, beside the stages phase, the worker's share of it."""
    for line in reference.lines():
        print(line)
    if stages:
        print(f"  {share_line(stages.decided_per_s, reference)}")


def reference_row(F: FullResult) -> list[tuple[str, str, str, str]]:
    if not F.reference:
        return []
    share = share_percent(F.stages.decided_per_s, F.reference.decided_per_s) if F.stages else float("nan")
    note = f"bare SQL, COPY, a commit per batch; worker alone = {fmt(share)}% of it"
    return [("decided/s, bare-SQL reference (same rows)", fmt(F.reference.decided_per_s), "-", note)]


def reference_field(reference: ReferenceResult | None) -> str:
    """` reference_decided_per_s=N` (the bare-SQL reference, a commit per batch), or nothing when
    it did not run (--skip-reference, --backlog 0, or it failed)."""
    value = reference.decided_per_s if reference else float("nan")
    return "" if math.isnan(value) else f" reference_decided_per_s={round(value)}"


def waits_all_final(F: FullResult) -> bool:
    return not F.waits or F.waits.answered_final == F.waits.count


def full_final_line(
    F: FullResult, decided: float, lost_full: int | None, embedded: EmbeddedResult | None = None
) -> str:
    final = (
        f"accepted_per_s={round(F.accept.accepted_per_s)} "
        f"decided_per_s={round(decided) if not math.isnan(decided) else 0} "
        f"{worker_field(F.stages)}"
        f"p50_ms={round(F.latency.p50_ms) if not math.isnan(F.latency.p50_ms) else 0} "
        f"p99_ms={round(F.latency.p99_ms) if not math.isnan(F.latency.p99_ms) else 0} "
        f"{idle_field(F.idle)}"
        f"{half_load_field(F.openloop)}"
        f"{embedded_field(embedded)}"
        f"{emails_field(F.mail)}"
        f"oversold={F.oversold} lost={lost_full}"
    )
    final += reference_field(F.reference)  # the first field after the named ones
    final += phase_fields(F)
    W = F.waits
    if W:
        final += (
            f" waits_open={W.subscribed} waiting_other_p50_ms={round(W.waiting.quantile(50))} "
            f"waiting_other_p99_ms={round(W.waiting.quantile(99))} waits_final={W.answered_final}"
        )
    return final


def worker_field(stages: DecideResult | None) -> str:
    """`worker_decided_per_s=N ` (the allocation worker alone on recorded requests, the stages
    phase), or nothing when that phase did not run (--skip-stages)."""
    return "" if stages is None else f"worker_decided_per_s={round(stages.decided_per_s)} "


def idle_field(idle: IdleResult | None) -> str:
    """`idle_p99_ms=N ` (202 -> decided p99, one booking at a time on the idle stack), or nothing
    when the idle phase did not run."""
    value = idle.p99_ms() if idle else float("nan")
    return "" if math.isnan(value) else f"idle_p99_ms={round(value)} "


def half_load_field(curve: OpenLoopResult | None) -> str:
    """`half_load_p99_ms=N ` (202 -> decided p99 at half the ceiling, open loop), or nothing when
    the open-loop phase did not measure it."""
    value = curve.half_load_p99_ms() if curve else float("nan")
    return "" if math.isnan(value) else f"half_load_p99_ms={round(value)} "


def print_phase_rows(F: FullResult) -> None:
    """The table's rows of the bare-SQL reference, the many-events phase, the memory floors and the
    fairness figures."""
    rows = reference_row(F)
    if F.many:
        missing = F.many.unserved()
        rows.append(
            (
                f"decided/s, {F.many.events} events, 2 workers",
                fmt(F.many.decided_per_s),
                "-",
                "every partition served" if not missing else f"NOT SERVED: partitions {missing}",
            )
        )
    memory = drain_memory(F)
    if memory:
        for label, group in (("API worker", API), ("bridge", BRIDGE), ("allocation worker", WORKER)):
            peak = memory.group_peak_mb(group)
            floor = next((p.floor_mb for p in memory.peaks if p.group == group), None)
            over = any(p.over_floor() for p in memory.peaks if p.group == group)
            verdict = f"floor < {floor}: {'OVER' if over else 'ok'}" if floor else ""
            rows.append((f"peak RSS, {label} (MB, backlog drain)", fmt(peak), "-", verdict))
    rows += mail_rows(F)
    if F.fairness and F.fairness.hot:
        hot = F.fairness.hot
        rows.append(("inversions vs Kafka order, all events", fmt(F.fairness.kafka_pairs()), "-", "must be 0"))
        rows.append(
            (
                "inversions vs API acceptance, hot event",
                fmt(hot.acceptance.pairs),
                "-",
                f"pairs of {hot.decided} requests; {hot.acceptance.overtaken} overtaken, "
                f"by <= {fmt(hot.overtaking_ms, 1)} ms",
            )
        )
    for row in rows:
        print(COLUMNS.format(*row))


def mail_rows(F: FullResult) -> list[tuple[str, str, str, str]]:
    """The mailer's rate on the decide phase's backlog, and the decided -> sent lag of each phase."""
    rows = []
    decide = F.mail.mailer if F.mail else None
    accept = F.outbox.mailer if F.outbox else None
    if decide:
        rows.append(
            (
                "e-mails sent/s by the mailer (backlog)",
                fmt(decide.busy_per_s),
                "-",
                f"{decide.sent} e-mails of the decide phase, over {decide.busy_s}s with a backlog",
            )
        )
    for label, figures in (("accept phase", accept), ("decide phase", decide)):
        if figures:
            rows.append(
                (
                    f"decided -> e-mail sent p50 / p99 (s), {label}",
                    f"{fmt(figures.lag_p50_ms / 1000, 1)} / {fmt(figures.lag_p99_ms / 1000, 1)}",
                    "-",
                    f"{figures.sent} e-mails" + (f", {figures.unsent} NOT SENT" if figures.unsent else ""),
                )
            )
    return rows


def emails_field(mail: OutboxDrain | None) -> str:
    """`emails_per_s=N ` (the mailer's rate on the decide phase's backlog), or nothing when the
    decide phase did not run or sent nothing."""
    value = mail.mailer.busy_per_s if mail and mail.mailer else float("nan")
    return "" if math.isnan(value) else f"emails_per_s={round(value)} "


def print_many(m) -> None:
    for line in m.lines():
        print(line)
    print_cpu(m.cpu, {"decided": m.count})
    if m.memory:
        print(f"  peak RSS of each process while draining the {m.count:,} requests:")
        for line in m.memory.lines():
            print(line)


def drain_memory(F: FullResult) -> MemoryReport | None:
    """The peak RSS of the hot event's backlog drain, else of the many-events phase's."""
    return next((r.memory for r in (F.pipeline, F.many) if r and r.memory), None)


def memory_over(F: FullResult) -> bool:
    reports: list[MemoryReport] = [r.memory for r in (F.pipeline, F.many) if r and r.memory]
    return any(report.over_floor() for report in reports)


def phase_fields(F: FullResult) -> str:
    """The last line's fields of the many-events phase, the peak RSS (MB, backlog drain) and the
    fairness figures, those measured."""
    fields = []
    if F.many:
        rate = F.many.decided_per_s
        fields.append(f"many_decided_per_s={0 if math.isnan(rate) else round(rate)}")
    memory = drain_memory(F)
    for name, group in (("api", API), ("bridge", BRIDGE), ("worker", WORKER), ("mailer", MAILER)):
        peak = memory.group_peak_mb(group) if memory else None
        if peak is not None:
            fields.append(f"{name}_rss_mb={peak}")
    if F.fairness and F.fairness.hot:
        fields.append(f"kafka_order_inversions={F.fairness.kafka_pairs()}")
        fields.append(f"acceptance_order_inversions={F.fairness.hot.acceptance.pairs}")
    return "".join(f" {field}" for field in fields)


def embedded_decided_per_s(e: EmbeddedResult) -> float:
    """The embedded default decides before it answers: the requests decided in its accept phase
    over the phase's duration."""
    return e.decided / e.accept.duration_s


def embedded_field(e: EmbeddedResult | None) -> str:
    """`embedded_decided_per_s=N ` (the embedded default's accept phase, same server as make run),
    or nothing when it did not run."""
    return "" if e is None else f"embedded_decided_per_s={round(embedded_decided_per_s(e))} "


def embedded_final_line(e: EmbeddedResult) -> str:
    return (
        f"accepted_per_s={round(e.accept.accepted_per_s)} "
        f"decided_per_s={round(embedded_decided_per_s(e))} p50_ms={round(e.latency.p50_ms)} "
        f"p99_ms={round(e.latency.p99_ms)} {embedded_field(e)}oversold={e.oversold} lost={e.lost}"
    )
