"""The SMTP sink (scripts/smtp_sink.py) as a benchmark uses it: counting, storing nothing, cheaply."""

from __future__ import annotations

import smtplib
import sys

import pytest
from aiosmtpd.smtp import SMTP

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import smtp_sink  # noqa: E402  (a script, not a package)
from smtp_sink import start_sink  # noqa: E402


def test_a_discarding_sink_counts_what_it_accepts_and_stores_nothing(tmp_path):
    controller = start_sink("127.0.0.1", 0, tmp_path / "smtp")
    controller.handler.store = False
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("pipelining")
            for number in range(3):
                client.sendmail("from@example.test", [f"to{number}@example.test"], b"Subject: x\r\n\r\nbody\r\n")
    finally:
        controller.stop()
    assert controller.handler.count == 3
    assert controller.messages() == []


@pytest.mark.parametrize(
    "arg",
    [
        "<guest1@example.test>",
        "<guest1@example.test> SIZE=2052",
        " <first.last+tag@sub.example.test>\tBODY=8BITMIME",
        "<a!#$%&'*+/=?^_`{|}~-b@x-y.z>",
        "<.dot@example.test>",  # not a dot-atom: aiosmtpd's parse
        "<guest@example.test> (comment) SIZE=1",
        "guest@example.test",
        "<>",
        '<"quoted local"@example.test>',
    ],
)
def test_the_sinks_quick_path_parse_agrees_with_aiosmtpds(tmp_path, arg):
    server = smtp_sink._make_server(smtp_sink.SinkHandler(tmp_path, store=False), "sink")
    assert server._getaddr(arg) == SMTP._getaddr(server, arg)
