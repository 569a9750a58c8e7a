"""Fixtures shared by every test tier live in ``tests/support/fixtures.py``; helpers in ``tests/support``."""

from __future__ import annotations

import sys

import pytest

pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """Keep pytest's rewritten test modules (``__pycache__``, git-ignored) even where ``PYTHONDONTWRITEBYTECODE`` is
    set: rewriting every test module's assertions again costs each run ~6 s of collection."""
    sys.dont_write_bytecode = False


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The real-pods tier runs last, in its own order: it is the longest tier, and each of its serving modes checks
    the clock against CI's 90 minutes before it starts (``tests/cluster/realpods/conftest.py``), which it can only
    do right when nothing else is left to run after it."""
    items.sort(key=lambda item: item.get_closest_marker("realpods") is not None)  # a stable sort
