"""The SMTP sink (scripts/smtp_sink.py) as a benchmark uses it: counting, storing nothing."""

from __future__ import annotations

import smtplib
import sys

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from smtp_sink import start_sink  # noqa: E402  (a script, not a package)


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
