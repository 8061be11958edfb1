"""The open-loop phase, a latency curve (issue 12 point 2): what a buyer feels below the ceiling.

vegeta (Go, built from the Go module proxy by scripts/ensure_vegeta.sh) sends POST
/api/events/book at a fixed rate whatever the answers do: a request goes out on its tick even
when every earlier one is still waiting (vegeta starts another worker), so a slow answer cannot
hold the next request back (no coordinated omission). Each rate is a fraction of the accept
phase's accepted/s (the ceiling wrk measured with its closed loop) or an absolute rate
(--openloop-rates), offered for the warm-up plus the measured seconds on fresh events with the
accept phase's mix (a share to one hot event, the rest spread, 1-4 seats), every request with
its own guest token (rotating over the guests) and its own Idempotency-Key. Only the requests
sent after the warm-up count. Per rate:

  HTTP      p50/p99/p99.9 from each request's scheduled send time to its answer (vegeta's own
            latency, plus any delay of the generator behind its schedule on a busy machine);
  decided   p50/p99/p99.9 of decided_at - accepted_at of those very request ids, the platform's
            own timestamps in Postgres (as the drain phase measures accepted -> final), after
            waiting until every 202 of the rate is final. Each rate starts on a drained pipeline
            and an empty outbox (the e-mails of the phase before sent first, for 30 s at most).

The table is printed, written as a CSV and drawn as an SVG chart (pygal, log y); the decided
p99 at 50% of the ceiling is the last line's half_load_p99_ms.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.accounts import create_event
from scripts.bench.common import API_URL, OTHER, ROOT, WORK, BenchError, fmt, percentile, say
from scripts.bench.cpu import CpuMeter, bench_roots
from scripts.bench.outcomes import final_ids, latencies_ms, request_times, wait_final, wait_outbox
from scripts.bench.stack import Db

DEFAULT_RATES = "10%,25%,50%,75%,100%"
HALF_LOAD = "50%"
QUANTILES = (50.0, 99.0, 99.9)
HTTP_TIMEOUT_S = 15  # as wrk's in the accept phase
OUTBOX_WAIT_MAX_S = 30  # per rate
CSV_NAME = "latency-curve.csv"
SVG_NAME = "latency-curve.svg"
CSV_COLUMNS = [
    "rate",
    "offered_per_s",
    "sent_per_s",
    "measured",
    "accepted",
    "non_2xx",
    "http_p50_ms",
    "http_p99_ms",
    "http_p999_ms",
    "decided_p50_ms",
    "decided_p99_ms",
    "decided_p999_ms",
    "lost",
    "other_cpu_pct",  # CPU of processes outside the bench, % of a core: how quiet the machine was
]


@dataclass
class RatePoint:
    """One offered rate: what was sent, what came back, how long the answers and decisions took."""

    label: str  # as asked: "50%" or "400"
    offered_per_s: int
    sent_per_s: float
    measured: int  # requests sent after the warm-up
    accepted: int  # of those, answered 2xx
    statuses: dict[str, int]  # of those, every answer: "202", "429", "error: ..."
    http_ms: dict[float, float]
    decided_ms: dict[float, float]
    lost: int = 0
    other_cpu_pct: float = float("nan")
    late_ms_max: float = 0.0  # the generator's own delay behind its schedule, at most
    recorded_ms: dict[float, float] = field(default_factory=dict)  # 202 -> recorded by the bridge
    cpu_lines: list[str] = field(default_factory=list)  # each process's CPU while the rate was offered

    @property
    def non_2xx(self) -> int:
        return self.measured - self.accepted

    def csv_row(self) -> list[str]:
        return [
            self.label,
            str(self.offered_per_s),
            f"{self.sent_per_s:.1f}",
            str(self.measured),
            str(self.accepted),
            str(self.non_2xx),
            *(_csv_ms(self.http_ms[q]) for q in QUANTILES),
            *(_csv_ms(self.decided_ms[q]) for q in QUANTILES),
            str(self.lost),
            "" if math.isnan(self.other_cpu_pct) else f"{self.other_cpu_pct:.0f}",
        ]


@dataclass
class OpenLoopResult:
    ceiling_per_s: float
    seconds: float
    warmup_s: float
    points: list[RatePoint] = field(default_factory=list)
    csv_path: Path | None = None
    svg_path: Path | None = None

    @property
    def lost(self) -> int:
        return sum(point.lost for point in self.points)

    def half_load_p99_ms(self) -> float:
        """The 202 -> decided p99 at half the ceiling (NaN when no rate was 50%)."""
        point = next((p for p in self.points if p.label == HALF_LOAD), None)
        return point.decided_ms[99.0] if point else float("nan")


def _csv_ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}"


def parse_rates(text: str) -> list[str]:
    """--openloop-rates: comma-separated shares of the ceiling ("50%") or requests/s ("400").
    ValueError on anything else (argparse turns it into a usage error)."""
    labels = [part.strip() for part in text.split(",") if part.strip()]
    if not labels:
        raise ValueError("no rate given")
    for label in labels:
        number = label[:-1] if label.endswith("%") else label
        if not number.isdigit() or not 0 < int(number) <= (200 if label.endswith("%") else 100_000):
            raise ValueError(f"{label!r}: a share of the ceiling 1%-200% or a rate 1-100000 requests/s")
    return labels


def offered_rates(labels: list[str], ceiling_per_s: float) -> list[tuple[str, int]]:
    """(label, requests/s) per rate, shares resolved against the ceiling (at least 1/s), in
    ascending order of rate."""
    rates = []
    for label in labels:
        if label.endswith("%"):
            rate = max(1, round(ceiling_per_s * int(label[:-1]) / 100))
        else:
            rate = int(label)
        rates.append((label, rate))
    return sorted(rates, key=lambda pair: pair[1])


def vegeta_targets(
    url: str, tokens: list[str], mix: tuple[int, list[int]], hot_percent: int, count: int, seed: int, tag: str
) -> str:
    """vegeta's JSON targets, one a line: `count` bookings, each with the next guest's token and an
    Idempotency-Key of its own; `mix` is (hot event, spread events) as the accept phase's."""
    hot, spread = mix
    rng = random.Random(seed)
    lines = []
    for index in range(count):
        event_id = hot
        if spread and rng.randint(1, 100) > hot_percent:
            event_id = spread[rng.randrange(len(spread))]
        body = json.dumps({"eventId": event_id, "numberOfSeats": rng.randint(1, 4)}, separators=(",", ":"))
        target = {
            "method": "POST",
            "url": f"{url}/api/events/book",
            "body": base64.b64encode(body.encode()).decode(),
            "header": {
                "Authorization": [f"Bearer {tokens[index % len(tokens)]}"],
                "Content-Type": ["application/json"],
                "Idempotency-Key": [f"openloop-{tag}-{index}"],
            },
        }
        lines.append(json.dumps(target, separators=(",", ":")))
    return "\n".join(lines) + "\n"


@dataclass
class Answers:
    """vegeta's results of the requests sent after the warm-up."""

    measured: int
    sent_per_s: float
    statuses: dict[str, int]
    http_ms: list[float]  # from each request's scheduled send time to its answer
    accepted_ids: list[str]  # request ids of the 2xx answers
    warmup_ids: list[str]  # of the warm-up's 2xx answers (drained, not measured)
    late_ms_max: float  # how far the generator itself fell behind its schedule, at most


def read_results(lines, rate: int, warmup_s: float) -> Answers:
    """vegeta's results (`vegeta encode -to json`, one JSON object a line). A request counts when
    its tick (seq / rate) came after the warm-up: the schedule, not the answer, decides. Its HTTP
    time runs from that tick, not from when vegeta sent it: the same as vegeta's own latency
    while it keeps to its schedule, and longer when the generator itself falls behind (a starved
    client must not hide the wait it causes)."""
    first_measured = math.ceil(rate * warmup_s)
    results = [json.loads(line) for line in lines if line.strip()]
    sent = {result["seq"]: _epoch_s(result["timestamp"]) for result in results}
    first_seq = min(sent, default=0)
    statuses: dict[str, int] = {}
    http_ms, accepted_ids, warmup_ids, sent_at = [], [], [], []
    late_ms_max = 0.0
    for result in results:
        request_id = None
        if 200 <= result["code"] < 300:
            try:
                request_id = json.loads(base64.b64decode(result["body"] or ""))["data"]["requestId"]
            except (ValueError, KeyError, TypeError):
                request_id = None
        if result["seq"] < first_measured:
            if request_id:
                warmup_ids.append(request_id)
            continue
        status = str(result["code"]) if result["code"] else f"error: {result['error'].rsplit(': ', 1)[-1][:80]}"
        statuses[status] = statuses.get(status, 0) + 1
        scheduled = sent[first_seq] + (result["seq"] - first_seq) / rate
        late_ms = max(0.0, (sent[result["seq"]] - scheduled) * 1000)
        late_ms_max = max(late_ms_max, late_ms)
        http_ms.append(result["latency"] / 1e6 + late_ms)
        sent_at.append(sent[result["seq"]])
        if request_id:
            accepted_ids.append(request_id)
    return Answers(
        measured=len(http_ms),
        sent_per_s=sent_rate(sent_at),
        statuses=statuses,
        http_ms=http_ms,
        accepted_ids=accepted_ids,
        warmup_ids=warmup_ids,
        late_ms_max=late_ms_max,
    )


def _epoch_s(stamp: str) -> float:
    """An RFC 3339 time as vegeta writes it (nanoseconds, Z) in seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def sent_rate(times: list[float]) -> float:
    """Requests/s vegeta actually sent, from its send times (it keeps up: ~ the offered rate)."""
    if len(times) < 2:
        return float("nan")
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else float("nan")


def quantiles(values: list[float]) -> dict[float, float]:
    return {q: percentile(values, q) for q in QUANTILES}


# ----------------------------------------------------------------------------- output


def table_lines(result: OpenLoopResult) -> list[str]:
    head = (
        f"{'offered/s':>16} {'sent/s':>8} {'2xx':>7} {'non-2xx':>8} "
        f"{'HTTP p50 / p99 / p99.9 ms':>30} {'202->decided p50 / p99 / p99.9 ms':>36}"
    )
    lines = [head]
    for point in result.points:
        share = f" ({point.label})" if point.label.endswith("%") else ""
        http = " / ".join(fmt(point.http_ms[q], 1) for q in QUANTILES)
        decided = " / ".join(fmt(point.decided_ms[q], 1) for q in QUANTILES)
        lines.append(
            f"{str(point.offered_per_s) + share:>16} {fmt(point.sent_per_s):>8} {point.accepted:>7} "
            f"{point.non_2xx:>8} {http:>30} {decided:>36}"
        )
    return lines


def csv_text(points: list[RatePoint]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for point in points:
        writer.writerow(point.csv_row())
    return out.getvalue()


def svg_chart(points: list[RatePoint], title: str) -> bytes:
    """Latency against offered rate, log y: HTTP and 202 -> decided, p50/p99/p99.9 each. One column
    per rate (pygal's XY would put the rates on a log axis too)."""
    import pygal
    from pygal.style import Style

    style = Style(
        background="white",
        plot_background="white",
        colors=("#9ecae1", "#4292c6", "#08519c", "#fdae6b", "#f16913", "#a63603"),
        font_family="sans-serif",
        title_font_size=15,
    )
    series = {
        f"{name} p{q:g}": [_plottable(getattr(point, field_name)[q]) for point in points]
        for name, field_name in (("HTTP", "http_ms"), ("202 -> decided", "decided_ms"))
        for q in QUANTILES
    }
    shown = [value for values in series.values() for value in values if value is not None]
    chart = pygal.Line(
        logarithmic=True,
        js=[],  # a static picture: no script from elsewhere (and the inline one goes, below)
        no_prefix=True,  # no random chart id in its styles: the same figures draw the same file
        style=style,
        title=title,
        x_title="offered requests/s, open loop (share of the measured ceiling)",
        y_title="ms (log scale)",
        x_labels=[
            f"{point.offered_per_s}" + (f" ({point.label})" if point.label.endswith("%") else "") for point in points
        ],
        y_labels=log_ticks(min(shown, default=1), max(shown, default=1000)),
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        dots_size=3,
        width=900,
        height=520,
        truncate_legend=-1,
        truncate_label=-1,
    )
    chart.add_xml_filter(without_scripts)
    for name, values in series.items():
        chart.add(name, values)
    return chart.render()


def _plottable(value: float) -> float | None:
    """None (a gap) for what a log axis cannot show: NaN (nothing measured) and 0."""
    return None if math.isnan(value) or value <= 0 else round(value, 2)


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks from the one at or below `low` to the one at or above `high` (0 < low <= high)."""
    ticks = [
        float(f"{step * 10.0**exponent:.6g}")
        for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for step in (1, 2, 5)
    ]
    first = max(index for index, tick in enumerate(ticks) if tick <= low)
    last = min(index for index, tick in enumerate(ticks) if tick >= high)
    return ticks[first : last + 1]


def without_scripts(root):
    """pygal's SVG without its <script> elements (its interactive configuration, a random id)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def write_outputs(result: OpenLoopResult, directory: Path, title: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    result.csv_path = directory / CSV_NAME
    result.csv_path.write_text(csv_text(result.points))
    result.svg_path = directory / SVG_NAME
    result.svg_path.write_bytes(svg_chart(result.points, title))


# ----------------------------------------------------------------------------- running


def ensure_vegeta() -> str:
    """vegeta's path, built by scripts/ensure_vegeta.sh when missing (pinned version)."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_vegeta.sh")], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise BenchError(f"vegeta unavailable: {out.stderr.strip()[-500:]}")
    return out.stdout.strip().splitlines()[-1]


def run_openloop(db: Db, host_token: str, tokens: list[str], ceiling_per_s: float, args) -> OpenLoopResult:
    vegeta = ensure_vegeta()
    rates = offered_rates(parse_rates(args.openloop_rates), ceiling_per_s)
    result = OpenLoopResult(ceiling_per_s, args.openloop_seconds, args.openloop_warmup)
    say(
        f"open-loop phase: vegeta at {', '.join(f'{rate}/s' for _, rate in rates)} "
        f"(ceiling {ceiling_per_s:.0f}/s), {args.openloop_warmup:g}s warm-up + {args.openloop_seconds:g}s each"
    )
    for index, (label, rate) in enumerate(rates):
        point = one_rate(vegeta, db, host_token, tokens, label, rate, index, args)
        result.points.append(point)
        say(
            f"  {rate}/s ({label}): sent {fmt(point.sent_per_s)}/s, {point.accepted} of {point.measured} 2xx; "
            f"HTTP p99 {fmt(point.http_ms[99.0], 1)} ms; 202->decided p50 {fmt(point.decided_ms[50.0], 1)} / "
            f"p99 {fmt(point.decided_ms[99.0], 1)} / p99.9 {fmt(point.decided_ms[99.9], 1)} ms (recorded by the "
            f"bridge p50 {fmt(point.recorded_ms[50.0], 1)} / p99 {fmt(point.recorded_ms[99.0], 1)} ms); lost "
            f"{point.lost}; outside this bench {fmt(point.other_cpu_pct)}% of a core; vegeta at most "
            f"{fmt(point.late_ms_max)} ms behind its schedule"
        )
        for line in point.cpu_lines:
            say(line)
    directory = Path(args.openloop_out) if args.openloop_out else WORK
    write_outputs(result, directory, chart_title(ceiling_per_s, args))
    say(f"  latency curve: {result.csv_path}, {result.svg_path}")
    return result


def chart_title(ceiling_per_s: float, args) -> str:
    return (
        f"make bench open-loop phase: latency vs offered rate (ceiling {ceiling_per_s:,.0f} accepted/s; "
        f"{args.openloop_seconds:g}s per rate after {args.openloop_warmup:g}s warm-up)"
    )


def one_rate(
    vegeta: str, db: Db, host_token: str, tokens: list[str], label: str, rate: int, index: int, args
) -> RatePoint:
    hot = create_event(API_URL, host_token, f"Open loop {rate}/s: hot", args.hot_capacity)
    spread = [
        create_event(API_URL, host_token, f"Open loop {rate}/s: spread {i + 1}", args.spread_capacity)
        for i in range(args.spread_events)
    ]
    total_s = args.openloop_warmup + args.openloop_seconds
    tag = f"r{index}-{rate}"
    targets = WORK / f"openloop-targets-{tag}.json"
    count = math.ceil(rate * total_s) + rate  # vegeta sends rate x duration; a second's spare
    targets.write_text(vegeta_targets(API_URL, tokens, (hot, spread), args.hot_percent, count, args.seed + index, tag))
    # Each rate starts on a quiet platform, as the decide phase does: the e-mails of the phase
    # before (the accept phase's, the previous rate's) go out first, for a bounded time (the
    # mailer runs at nice 19: on a machine busy with other work it sends next to nothing).
    outbox = wait_outbox(db, min(args.outbox_timeout, OUTBOX_WAIT_MAX_S))
    if outbox.emails_at_start or outbox.unpublished_at_start:
        say(f"  outbox before {rate}/s: {outbox.describe()}")
    results_bin = WORK / f"openloop-results-{tag}.bin"
    meter = CpuMeter(bench_roots(), children_label="client (vegeta)")
    meter.start()
    attack(vegeta, targets, results_bin, rate, total_s)
    cpu = meter.stop()
    answers = read_results(encode(vegeta, results_bin).splitlines(), rate, args.openloop_warmup)
    events = [hot, *spread]
    ids = set(answers.accepted_ids)
    wait_final(db, events, ids | set(answers.warmup_ids), args.drain_timeout, f"open loop {rate}/s drain")
    decided, recorded = latencies_ms(request_times(db, events), ids)
    return RatePoint(
        label=label,
        offered_per_s=rate,
        sent_per_s=answers.sent_per_s,
        measured=answers.measured,
        accepted=len(ids),
        statuses=answers.statuses,
        http_ms=quantiles(answers.http_ms),
        decided_ms=quantiles(decided) if ids else quantiles([]),
        lost=len(ids - final_ids(db, events)),
        other_cpu_pct=100 * cpu.by_group.get(OTHER, 0) / cpu.wall_s if cpu.wall_s else float("nan"),
        recorded_ms=quantiles(recorded),
        late_ms_max=answers.late_ms_max,
        cpu_lines=cpu.lines({"sent": int(rate * total_s)}),
    )


def attack(vegeta: str, targets: Path, results_bin: Path, rate: int, seconds: float) -> None:
    command = [
        vegeta,
        "attack",
        "-format=json",
        f"-targets={targets}",
        f"-rate={rate}/1s",
        f"-duration={seconds:g}s",
        f"-timeout={HTTP_TIMEOUT_S}s",
        "-http2=false",
        f"-output={results_bin}",
    ]
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + HTTP_TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"vegeta attack at {rate}/s did not finish in time") from None
    if out.returncode != 0:
        raise BenchError(f"vegeta attack at {rate}/s failed ({out.returncode}): {out.stderr[-800:]}")


def encode(vegeta: str, results_bin: Path) -> str:
    out = subprocess.run(
        [vegeta, "encode", "-to", "json", str(results_bin)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise BenchError(f"vegeta encode failed: {out.stderr[-500:]}")
    return out.stdout
