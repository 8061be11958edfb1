"""A write transaction bounds its waits on Postgres (services/unit_of_work.py): lock_timeout and
statement_timeout are set for it alone, in its first statement, and end with it."""

from __future__ import annotations

from sqlalchemy import text

from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.services.unit_of_work import unit_of_work
from tests.conftest import fresh_app


def test_a_write_transaction_bounds_its_waits_and_only_its_own(postgres_url):
    timeouts = text(  # in milliseconds, the unit both settings are kept in
        "SELECT max(setting) FILTER (WHERE name = 'lock_timeout'),"
        " max(setting) FILTER (WHERE name = 'statement_timeout') FROM pg_settings"
    )
    with fresh_app(postgres_url):
        defaults = db.session.execute(timeouts).one()
        with unit_of_work() as work:
            inside = work.session.execute(timeouts).one()
        after = db.session.execute(timeouts).one()
    assert tuple(inside) == (str(limits.LOCK_TIMEOUT_MS), str(limits.STATEMENT_TIMEOUT_MS))
    assert tuple(after) == tuple(defaults) != tuple(inside)  # SET LOCAL: the next transaction has the server's own
