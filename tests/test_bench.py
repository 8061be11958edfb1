"""`make bench`'s pure parts (scripts/bench): no stack is started, no generator runs, nothing is timed."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import math
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from scripts.bench.openloop import (
    CSV_COLUMNS,
    OpenLoopResult,
    RatePoint,
    csv_text,
    log_ticks,
    offered_rates,
    parse_rates,
    quantiles,
    read_results,
    svg_chart,
    table_lines,
    vegeta_targets,
)
from scripts.bench.outcomes import MailerFigures, OutboxDrain, mailer_figures
from scripts.bench.report import half_load_field
from scripts.bench.waits import LongPolls, _retry_after_s
from tests.bench_support import full_result

NAN = float("nan")


def point(label: str, rate: int, decided_p99: float = 120.0) -> RatePoint:
    return RatePoint(
        label=label,
        offered_per_s=rate,
        sent_per_s=rate - 0.2,
        measured=rate * 5,
        accepted=rate * 5 - 1,
        statuses={"202": rate * 5 - 1, "429": 1},
        http_ms={50.0: 2.5, 99.0: 9.0, 99.9: 14.25},
        decided_ms={50.0: 40.0, 99.0: decided_p99, 99.9: 180.0},
        other_cpu_pct=12.4,
    )


# ----------------------------------------------------------------------------- rates


def test_rates_are_shares_of_the_ceiling_or_requests_per_second():
    assert parse_rates("10%,25%, 50%,75%,100%") == ["10%", "25%", "50%", "75%", "100%"]
    assert parse_rates("50,200,400") == ["50", "200", "400"]
    assert offered_rates(["10%", "50%", "100%"], 1150.4) == [("10%", 115), ("50%", 575), ("100%", 1150)]
    assert offered_rates(["400", "25%"], 1000) == [("25%", 250), ("400", 400)]  # ascending
    assert offered_rates(["1%"], 20) == [("1%", 1)]  # at least one request a second


@pytest.mark.parametrize("text", ["", " , ", "0", "0%", "-5", "50.5%", "abc", "201%", "100001", "5%%"])
def test_a_rate_that_is_not_a_share_or_a_rate_is_refused(text):
    with pytest.raises(ValueError):
        parse_rates(text)


# ----------------------------------------------------------------------------- targets


def test_targets_are_bookings_each_with_its_own_key_and_the_next_guests_token():
    tokens = ["t0", "t1", "t2"]
    lines = vegeta_targets("http://api", tokens, (7, [8, 9]), 70, 300, seed=1, tag="r0").splitlines()
    targets = [json.loads(line) for line in lines]
    assert len(targets) == 300
    keys = [target["header"]["Idempotency-Key"][0] for target in targets]
    assert len(set(keys)) == 300
    assert [target["header"]["Authorization"][0] for target in targets[:4]] == [
        "Bearer t0",
        "Bearer t1",
        "Bearer t2",
        "Bearer t0",
    ]
    bodies = [json.loads(base64.b64decode(target["body"])) for target in targets]
    assert {target["method"] for target in targets} == {"POST"}
    assert {target["url"] for target in targets} == {"http://api/api/events/book"}
    assert {body["numberOfSeats"] for body in bodies} == {1, 2, 3, 4}
    hot = sum(1 for body in bodies if body["eventId"] == 7)
    assert {body["eventId"] for body in bodies} == {7, 8, 9}
    assert 0.6 < hot / 300 < 0.8
    assert vegeta_targets("http://api", tokens, (7, [8, 9]), 70, 300, seed=1, tag="r0") == "\n".join(lines) + "\n"


def test_without_spread_events_every_target_is_for_the_hot_event():
    lines = vegeta_targets("http://api", ["t"], (7, []), 0, 20, seed=3, tag="x").splitlines()
    assert {json.loads(base64.b64decode(json.loads(line)["body"]))["eventId"] for line in lines} == {7}


# ----------------------------------------------------------------------------- results


def result(
    seq: int, code: int, latency_ms: float, request_id: str | None = None, error: str = "", late_s: float = 0
) -> str:
    body = json.dumps({"data": {"requestId": request_id}}).encode() if request_id else b'{"error":"x"}'
    return json.dumps(
        {
            "attack": "",
            "seq": seq,
            "code": code,
            "timestamp": f"2026-11-30T03:00:{seq / 10 + late_s:012.9f}Z",  # sent on schedule at 10/s
            "latency": int(latency_ms * 1e6),
            "bytes_out": 40,
            "bytes_in": 60,
            "error": error,
            "body": base64.b64encode(body).decode() if code else None,
            "method": "POST",
            "url": "http://api/api/events/book",
            "headers": {},
        }
    )


def test_only_requests_scheduled_after_the_warm_up_are_measured():
    lines = [
        result(0, 202, 1.0, "warm-0"),  # rate 10/s, 2 s warm-up: seq 0-19 are the warm-up
        result(19, 202, 1.0, "warm-19"),
        result(20, 202, 3.0, "a"),
        result(21, 429, 5.0),
        result(22, 0, 15000.0, error="Post http://api: context deadline exceeded"),
        result(29, 202, 2.0, "b"),
        "",
    ]
    answers = read_results(lines, rate=10, warmup_s=2)
    assert answers.measured == 4
    assert answers.accepted_ids == ["a", "b"]
    assert answers.warmup_ids == ["warm-0", "warm-19"]
    assert answers.http_ms == [3.0, 5.0, 15000.0, 2.0]
    assert answers.statuses == {"202": 2, "429": 1, "error: context deadline exceeded": 1}
    assert answers.sent_per_s == pytest.approx(3 / 0.9)  # 4 sent over 0.9 s
    assert answers.late_ms_max == pytest.approx(0, abs=0.01)


def test_a_generator_behind_its_schedule_does_not_hide_the_wait_it_causes():
    lines = [result(0, 202, 1.0, "a"), result(1, 202, 2.0, "b", late_s=0.5), result(2, 202, 3.0, "c", late_s=0.4)]
    answers = read_results(lines, rate=10, warmup_s=0)
    assert answers.http_ms == pytest.approx([1.0, 502.0, 403.0])  # from the tick, not from the late send
    assert answers.late_ms_max == pytest.approx(500)


def test_a_2xx_whose_body_has_no_request_id_counts_as_sent_but_cannot_be_followed():
    answers = read_results([result(0, 202, 1.0)], rate=1, warmup_s=0)
    assert answers.measured == 1 and answers.accepted_ids == [] and math.isnan(answers.sent_per_s)


def test_quantiles_are_nearest_rank_and_nan_when_nothing_was_measured():
    values = [float(v) for v in range(1, 1001)]
    assert quantiles(values) == {50.0: 500.0, 99.0: 990.0, 99.9: 999.0}
    assert all(math.isnan(v) for v in quantiles([]).values())


# ----------------------------------------------------------------------------- outputs


def test_the_csv_has_a_row_per_rate_with_the_table_s_figures():
    nothing = point("10%", 100)
    nothing.decided_ms = quantiles([])
    rows = list(csv.reader(io.StringIO(csv_text([nothing, point("50%", 500)]))))
    assert rows[0] == CSV_COLUMNS
    assert rows[2] == [
        *("50%", "500", "499.8", "2500", "2499", "1"),
        *("2.5", "9.0", "14.2", "40.0", "120.0", "180.0"),
        *("0", "12"),
    ]
    assert rows[1][9:12] == ["", "", ""]  # not measured: empty, not 0
    assert len(rows) == 3 and all(len(row) == len(CSV_COLUMNS) for row in rows)


def test_the_table_shows_each_rate_with_its_share():
    curve = OpenLoopResult(1000.0, 5, 2, [point("50%", 500), point("800", 800)])
    lines = table_lines(curve)
    assert "HTTP p50 / p99 / p99.9 ms" in lines[0] and "202->decided p50 / p99 / p99.9 ms" in lines[0]
    assert "500 (50%)" in lines[1] and "40.0 / 120.0 / 180.0" in lines[1] and "2.5 / 9.0 / 14.2" in lines[1]
    assert lines[2].split()[0] == "800"
    wide = point("100%", 1000)
    wide.accepted, wide.http_ms = 4495, {50.0: 12449.6, 99.0: 16058.0, 99.9: 16132.1}
    assert " 505 12,449.6 / 16,058.0 / 16,132.1 " in table_lines(OpenLoopResult(1000.0, 5, 2, [wide]))[1]


def test_the_chart_is_an_svg_with_six_series_on_a_log_axis_and_no_script():
    svg = svg_chart([point("10%", 100), point("50%", 500), point("100%", 1000)], "curve")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = svg.decode()
    assert "<script" not in text
    for name in ("HTTP p50", "HTTP p99", "HTTP p99.9", "202 -&gt; decided p50", "202 -&gt; decided p99.9"):
        assert name in text
    assert "ms (log scale)" in text and "offered requests/s, open loop" in text
    assert ">500 (50%)<" in text  # a column per rate, labelled with its share
    assert svg_chart([point("10%", 100)], "curve") == svg_chart([point("10%", 100)], "curve")  # no random id


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (11.3, 12234, [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]),
        (2.5, 180, [2, 5, 10, 20, 50, 100, 200]),
        (1, 1000, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]),
        (0.3, 0.9, [0.2, 0.5, 1]),
        (100, 100, [100]),
    ],
)
def test_the_log_axis_is_labelled_1_2_5_around_the_values(low, high, ticks):
    assert log_ticks(low, high) == ticks


def test_a_value_a_log_axis_cannot_show_is_left_out_of_the_chart():
    empty = point("10%", 100)
    empty.decided_ms = quantiles([])
    empty.http_ms = {50.0: 0.0, 99.0: 1.0, 99.9: 2.0}
    ET.fromstring(svg_chart([empty, point("50%", 500)], "curve"))


# ----------------------------------------------------------------------------- the last line


def test_half_load_p99_is_the_decided_p99_at_half_the_ceiling():
    curve = OpenLoopResult(1000.0, 5, 2, [point("25%", 250, 80.4), point("50%", 500, 212.6), point("100%", 1000)])
    assert half_load_field(curve) == "half_load_p99_ms=213 "
    assert half_load_field(OpenLoopResult(1000.0, 5, 2, [point("400", 400)])) == ""  # no 50% rate asked
    assert half_load_field(None) == ""  # the phase did not run


def test_the_last_line_keeps_its_fields_and_gains_half_load_p99_after_p99():
    from scripts.bench.report import full_final_line

    full = full_result(openloop=OpenLoopResult(1150.4, 5, 2, [point("50%", 575, 187.0)]))
    line = full_final_line(full, 3500.2, 0)
    assert line == "accepted_per_s=1150 decided_per_s=3500 p50_ms=95 p99_ms=410 half_load_p99_ms=187 oversold=0 lost=0"
    fields = dict(part.split("=") for part in line.split())
    assert all(value.isdigit() for value in fields.values())
    full.openloop = None
    assert (
        full_final_line(full, 3500.2, 0)
        == "accepted_per_s=1150 decided_per_s=3500 p50_ms=95 p99_ms=410 oversold=0 lost=0"
    )


def test_the_last_line_gains_the_mailers_rate_before_oversold():
    from scripts.bench.report import full_final_line

    mail = OutboxDrain(30000, 30000, 31.0, 0, 0, MailerFigures(30000, 0, 28, 1043.6, 14000.0, 29000.0))
    full = full_result(openloop=OpenLoopResult(1150.4, 5, 2, [point("50%", 575, 187.0)]), mail=mail)
    line = full_final_line(full, 3500.2, 0)
    assert line.endswith("half_load_p99_ms=187 emails_per_s=1044 oversold=0 lost=0")
    full.mail = OutboxDrain(0, 0, 0.0, 0, 0, mailer_figures([]))  # nothing sent: no figure, no field
    assert "emails_per_s" not in full_final_line(full, 3500.2, 0)


def test_the_last_line_gains_the_worker_alone_rate_after_decided_per_s():
    from types import SimpleNamespace

    from scripts.bench.report import full_final_line

    full = full_result(stages=SimpleNamespace(decided_per_s=10234.6))
    assert full_final_line(full, 3500.2, 0).startswith(
        "accepted_per_s=1150 decided_per_s=3500 worker_decided_per_s=10235 p50_ms=95 "
    )
    full.stages = None  # --skip-stages: no figure, no field
    assert "worker_decided_per_s" not in full_final_line(full, 3500.2, 0)


# ----------------------------------------------------------------------------- the mailer


def at(second: float) -> datetime:
    return datetime(2026, 11, 30, 3, 0, tzinfo=UTC) + timedelta(seconds=second)


def test_the_mailers_rate_counts_only_the_seconds_it_had_a_batch_waiting():
    # 3,000 decisions at once; sent at 1,000/s for 3 s, then 10 stragglers decided late, sent at once.
    rows = [(at(0), at(1 + index / 1000)) for index in range(3000)]
    rows += [(at(60 + index), at(60.01 + index)) for index in range(10)]
    figures = mailer_figures(rows)
    assert (figures.sent, figures.unsent) == (3010, 0)
    assert figures.busy_s == 2  # [1, 2) and [2, 3) began and ended with >= a batch waiting; [3, 4) ended empty
    assert figures.busy_per_s == 1000
    # nearest rank over 10 lags of 10 ms and 3,000 of 1,000 .. 3,999 ms
    assert figures.lag_p50_ms == pytest.approx(2494)
    assert figures.lag_p99_ms == pytest.approx(3969)


def test_the_seconds_the_bench_stopped_the_mailer_are_not_counted_as_slow_ones():
    # 4,000 decisions at once; 1,000 sent in [1, 2), the mailer stopped for [2, 5), 3,000 sent in [5, 8).
    rows = [(at(0), at(1 + index / 1000)) for index in range(1000)]
    rows += [(at(0), at(5 + index / 1000)) for index in range(3000)]
    assert mailer_figures(rows).busy_per_s == 500  # the pause counted: it looks half as fast as it is
    figures = mailer_figures(rows, paused=(at(2), at(5)))
    assert (figures.busy_s, figures.busy_per_s) == (3, 1000)  # [1, 2), [5, 6), [6, 7): [7, 8) ends empty
    assert figures.lag_p99_ms == pytest.approx(7959)  # the lags keep the pause: the e-mails waited


def test_without_a_busy_second_the_rate_is_over_the_span_of_the_sends():
    rows = [(at(index), at(index + 0.5)) for index in range(11)] + [(at(20), None)]
    figures = mailer_figures(rows)
    assert (figures.sent, figures.unsent, figures.busy_s) == (11, 1, 0)
    assert figures.busy_per_s == pytest.approx(1.1)
    assert figures.lag_p50_ms == figures.lag_p99_ms == 500


def test_no_e_mail_sent_gives_no_figures():
    figures = mailer_figures([(at(0), None)])
    assert (figures.sent, figures.unsent) == (0, 1)
    assert math.isnan(figures.busy_per_s) and math.isnan(figures.lag_p99_ms)


def test_the_last_line_gains_the_embedded_rate_before_the_mailers():
    from types import SimpleNamespace

    from scripts.bench.report import embedded_final_line, full_final_line

    embedded = SimpleNamespace(
        accept=SimpleNamespace(accepted_per_s=402.6, duration_s=15.0),
        decided=6040,
        latency=SimpleNamespace(p50_ms=40.2, p99_ms=210.0),
        oversold=0,
        lost=0,
    )
    mail = OutboxDrain(30000, 30000, 31.0, 0, 0, MailerFigures(30000, 0, 28, 1043.6, 14000.0, 29000.0))
    full = full_result(openloop=OpenLoopResult(1150.4, 5, 2, [point("50%", 575, 187.0)]), mail=mail)
    line = full_final_line(full, 3500.2, 0, embedded)
    assert line.endswith("half_load_p99_ms=187 embedded_decided_per_s=403 emails_per_s=1044 oversold=0 lost=0")
    assert "embedded_decided_per_s" not in full_final_line(full, 3500.2, 0)  # --skip-embedded
    assert embedded_final_line(embedded) == (
        "accepted_per_s=403 decided_per_s=403 p50_ms=40 p99_ms=210 embedded_decided_per_s=403 oversold=0 lost=0"
    )


# ----------------------------------------------------------------------------- waits


def test_a_wait_is_asked_again_after_pending_and_after_busy_once_its_retry_after_passed():
    polls = LongPolls("http://127.0.0.1:1", [])
    answers = [("HTTP 503", 0.05), ("pending", 0.0), ("waitlisted", 0.0)]
    asked_at: list[float] = []

    async def ask(request_id: str, token: str) -> tuple[str, float]:
        asked_at.append(time.monotonic())
        return answers.pop(0)

    polls._ask = ask
    assert asyncio.run(polls._one("a-request", "a-token")) == "waitlisted"
    assert (polls.final_first, polls.busy, polls.asked_again) == (0, 1, 1)
    assert asked_at[1] - asked_at[0] >= 0.05  # not before the 503's Retry-After


def test_an_answer_s_retry_after_is_read_from_its_head():
    assert _retry_after_s(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: x\r\nretry-after: 2") == 2.0
    assert _retry_after_s(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: x") == 1.0
