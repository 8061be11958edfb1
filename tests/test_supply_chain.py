"""Supply chain (issue 11 point 10): bandit's configuration skips one check, B101, and only
because the app refuses to run with its asserts stripped; every other check still fires. The
`make audit` target fails when a package could not be checked (pip-audit --strict)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("how", ["-O", "PYTHONOPTIMIZE"])
def test_no_process_starts_with_its_asserts_stripped(how):
    environment = {**os.environ, "PYTHONOPTIMIZE": "1"} if how == "PYTHONOPTIMIZE" else dict(os.environ)
    flags = ["-O"] if how == "-O" else []
    result = subprocess.run(
        [sys.executable, *flags, "-c", "from atomicseats import create_app; create_app('testing')"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "AssertionsOff: AtomicSeats does not run under python -O or PYTHONOPTIMIZE" in result.stderr


def test_bandit_with_the_projects_configuration_skips_asserts_only(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import subprocess\n\n\ndef run(command, count):\n"
        "    assert count >= 0\n"
        "    return subprocess.call(command, shell=True)\n"
    )
    result = subprocess.run(
        [str(BIN / "bandit"), "-c", str(ROOT / "pyproject.toml"), "-q", "-f", "json", str(sample)],
        capture_output=True,
        text=True,
    )
    found = {finding["test_id"] for finding in json.loads(result.stdout)["results"]}
    assert found == {"B404", "B602"}  # subprocess imported, and called with a shell; the assert is not reported
    assert result.returncode == 1


def test_make_audit_checks_every_pin_strictly():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\naudit:", 1)[1].split("\n\n", 1)[0]
    assert "--strict" in recipe and "-r requirements-dev.txt" in recipe
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    for line in (ROOT / "requirements-audit.txt").read_text().splitlines():
        assert line.startswith("#") or re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line), line
