"""Helpers to make a service unreachable for a test: closed ports and a database connection that cannot connect."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connections
from django.db.utils import load_backend

BROKEN_ALIAS = "unreachable"


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, read, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def broken_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """A real connection like ``default`` that cannot connect (closed port, or a missing SQLite folder).

    It is reachable as ``connections["unreachable"]`` (and so by ``transaction.atomic(using=...)``) from
    every thread, but not listed in DATABASES: Django's test cases refuse aliases added there after setup.
    """
    settings = dict(connections.settings["default"])
    if settings["ENGINE"].endswith("sqlite3"):
        settings["NAME"] = "/nonexistent-videogen-dir/db.sqlite3"
    else:
        options = {k: v for k, v in settings.get("OPTIONS", {}).items() if k != "pool"}
        settings.update(HOST="127.0.0.1", PORT=str(closed_port()), OPTIONS={**options, "connect_timeout": 2})
    wrapper = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, BROKEN_ALIAS)
    wrapper.inc_thread_sharing()
    handler_class = type(connections)
    original = handler_class.__getitem__

    def getitem(self: Any, alias: str) -> Any:
        return wrapper if alias == BROKEN_ALIAS else original(self, alias)

    monkeypatch.setattr(handler_class, "__getitem__", getitem)
    try:
        yield BROKEN_ALIAS, wrapper
    finally:
        wrapper.close()
