"""`make bench` (python -m scripts.bench [options]): see scripts/bench/__init__.py."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import scripts.bench
from scripts.bench.accounts import internal_setup
from scripts.bench.common import API_URL, EMBEDDED_PORT, STACK_ENV, WORK, BenchError, say, stack_problem
from scripts.bench.cpu import Gauge, machine_gauge_ms, wakeup_gauge_us
from scripts.bench.embedded import run_embedded
from scripts.bench.full import run_full
from scripts.bench.openloop import DEFAULT_RATES, ensure_vegeta, parse_rates
from scripts.bench.report import report
from scripts.bench.stack import platform_down


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=scripts.bench.__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_load_options(parser)
    _add_phase_options(parser)
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running afterwards")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor is missed")
    parser.add_argument("--internal-setup", nargs=2, metavar=("GUESTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.internal_setup is None:
        _check_ranges(parser, args)
    return args


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    """The load: its size and mix, and how long to wait for it."""
    parser.add_argument("--duration", type=int, default=15, help="seconds of load in the accept phase (15)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent client connections (64)")
    parser.add_argument(
        "--backlog",
        type=int,
        default=30000,
        help="requests in each hot-event backlog of the decide phase (30000; 0 skips it)",
    )
    parser.add_argument(
        "--waits", type=int, default=5000, help="long polls held open in the waits phase (5000; 0 skips it)"
    )
    parser.add_argument(
        "--waits-sample", type=float, default=5.0, help="seconds the other routes are sampled in the waits phase (5)"
    )
    parser.add_argument(
        "--many",
        type=int,
        default=20000,
        help="requests spread over the events of the many-events phase (20000; 0 skips it)",
    )
    parser.add_argument("--many-events", type=int, default=200, help="events of the many-events phase (200)")
    parser.add_argument(
        "--many-capacity", type=int, default=200, help="seats of each event of the many-events phase (200)"
    )
    parser.add_argument(
        "--idle",
        type=int,
        default=200,
        help="bookings one at a time on the idle stack in the idle phase (200; 0 skips it)",
    )
    parser.add_argument("--idle-gap-ms", type=float, default=50, help="pause between two idle bookings (50 ms)")
    parser.add_argument("--hot-capacity", type=int, default=1000, help="seats of the hot event (1000)")
    parser.add_argument("--spread-capacity", type=int, default=2000, help="seats of each spread event (2000)")
    parser.add_argument("--spread-events", type=int, default=20, help="number of spread events (20)")
    parser.add_argument("--hot-percent", type=int, default=70, help="share of requests to the hot event (70)")
    parser.add_argument("--guests", type=int, default=200, help="guest accounts whose tokens rotate (200)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="seconds of warm-up load on a separate event, all connections, at least (20): a freshly "
        "started Kafka broker spends its first minute JIT-compiling (twice the CPU per request), a "
        "production one is long warm; the warm-up goes on in 10 s slices until its compilers are quiet",
    )
    parser.add_argument(
        "--warmup-max",
        type=int,
        default=120,
        help="seconds the warm-up may go on, at most, waiting for the broker's JIT compilers to be quiet (120)",
    )
    parser.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for outcomes (300)")


def _add_phase_options(parser: argparse.ArgumentParser) -> None:
    """The phases: the outbox waits, the open loop, what to skip."""
    parser.add_argument(
        "--outbox-timeout",
        type=float,
        default=240,
        help="seconds to let the outbox drain after the warm-up and before the decide phase (240)",
    )
    parser.add_argument(
        "--embedded-port",
        type=int,
        default=EMBEDDED_PORT,
        help=f"port of the embedded server ({EMBEDDED_PORT}: 5090 + BENCH_PORT_OFFSET)",
    )
    parser.add_argument(
        "--openloop-rates",
        default=DEFAULT_RATES,
        help="offered rates of the open-loop phase, shares of the accept phase's accepted/s or requests/s "
        f"({DEFAULT_RATES.replace('%', '%%')}; e.g. 50,200,400)",
    )
    parser.add_argument(
        "--openloop-seconds", type=float, default=5, help="measured seconds per open-loop rate (5; 0 skips the phase)"
    )
    parser.add_argument("--openloop-warmup", type=float, default=2, help="warm-up seconds before each rate (2)")
    parser.add_argument(
        "--openloop-out", help="directory of the latency curve's CSV and SVG (the run's details directory)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the request mix (1)")
    parser.add_argument("--skip-embedded", action="store_true", help="do not run the embedded comparison")
    parser.add_argument("--skip-full", action="store_true", help="only the embedded default")
    parser.add_argument("--skip-stages", action="store_true", help="no bridge-alone / worker-alone diagnostic")
    parser.add_argument(
        "--skip-reference",
        action="store_true",
        help="no bare-SQL reference (the decide phase's rows written with COPY on a fresh database, "
        "scripts/bench/reference.py)",
    )


def _check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.connections <= 10000 or args.duration <= 0 or args.guests < 1 or args.backlog < 0:
        parser.error("out-of-range option")
    if not 0 <= args.idle <= 100000 or not 0 <= args.idle_gap_ms <= 10000:
        parser.error("out-of-range option")
    if not 0 <= args.waits <= 20000 or not 0 < args.waits_sample <= 20:
        parser.error("out-of-range option")
    if not 0 <= args.many <= 1_000_000 or not 1 <= args.many_events <= 10000 or args.many_capacity < 1:
        parser.error("out-of-range option")
    if not 0 <= args.hot_percent <= 100 or args.threads < 1 or args.threads > args.connections:
        parser.error("out-of-range option")
    try:
        parse_rates(args.openloop_rates)
    except ValueError as error:
        parser.error(f"--openloop-rates: {error}")
    if args.warmup < 0 or not 0 <= args.warmup_max <= 3600:
        parser.error("out-of-range option")
    if not 0 <= args.openloop_seconds <= 120 or not 0 <= args.openloop_warmup <= 60:
        parser.error("out-of-range option")
    if args.skip_full and args.skip_embedded:
        parser.error("nothing to run")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.internal_setup:
        internal_setup(int(args.internal_setup[0]), args.internal_setup[1])
        return 0
    problem = stack_problem()
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (make bench installs it: apt-get install wrk)", file=sys.stderr)
        return 2
    if not args.skip_full and args.openloop_seconds > 0:
        try:
            ensure_vegeta()  # built before the stack comes up (the first time ~30 s): fail early
        except BenchError as error:
            print(f"bench: {error} (--openloop-seconds 0 skips the open-loop phase)", file=sys.stderr)
            return 2
    fresh_work_dir()
    gauge = Gauge(start_ms=machine_gauge_ms(), wakeup_us=wakeup_gauge_us())
    say(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before start; "
        f"machine gauge {gauge.start_ms:.0f} ms, wake-up gauge {gauge.wakeup()}; logs in {WORK}"
    )
    full = embedded = None
    if not args.skip_full:
        try:
            full = full_pipeline(args)
        except BenchError:
            return 2
    if not args.skip_embedded:
        try:
            embedded = run_embedded(args)
        except BenchError as error:
            print(f"bench: embedded comparison failed: {error}", file=sys.stderr)
            if full is None:
                return 2
    gauge.end_ms = machine_gauge_ms()
    final, ok = report(args, full, embedded, gauge)
    print(final, flush=True)
    return 0 if ok else 1


def fresh_work_dir() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    for stale in WORK.glob("*"):
        if stale.is_file():
            stale.unlink()


def full_pipeline(args):
    """The full pipeline's phases, then the bench stack torn down (unless --keep); a BenchError
    is reported here and re-raised once the stack is down."""
    try:
        full = run_full(args)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        if not args.keep:
            say("tearing the bench stack down")
            platform_down()
        raise
    except BaseException:
        if not args.keep:
            platform_down()
        raise
    if args.keep:
        stop = " ".join(f"{name}={value}" for name, value in STACK_ENV.items())
        say(f"--keep: the bench stack stays up (API {API_URL}); {stop} scripts/platform.sh down stops it")
    else:
        say("tearing the bench stack down")
        platform_down()
    return full


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
