"""The pages' test client: an app that holds no app context around its requests, so each
request pushes its own as in production (Flask-WTF keeps a request's CSRF token in `g`, which a
held context would share between requests and between two clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.conftest import fresh_app


@pytest.fixture
def app(database_url) -> Iterator[Flask]:
    with fresh_app(database_url, hold_context=False) as application:
        yield application
