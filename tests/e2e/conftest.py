"""The end-to-end tests run on the whole full-mode platform: the session fixture `platform`
lives in tests/e2e/stack.py (a plugin tests/conftest.py loads, since the browser tests'
"pipeline" server shares the same stack)."""

from __future__ import annotations


def pytest_collection_modifyitems(session, config, items) -> None:
    """The healthy pipeline first, then the faults (a broken pipeline shows up as such first)."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/e2e/test_faults.py"))
