"""Real-browser fixtures: Debian's Chromium driven by Playwright against pytest-django's ``live_server``.

Rules:

* **Chromium missing**: the browser tests are skipped, and fail instead when
  ``VIDEOGEN_REQUIRE_SERVICES=1`` (CI), like every other service (``tests.conftest.require_service``).
  ``.ci/run`` installs Debian's ``chromium`` when it is missing. Playwright never downloads a browser.
* **One browser for the package**: Playwright and Chromium start once for ``tests/browser`` (about a
  second) and stop when the package is done; each test gets a fresh context (no cookies shared).
* **Bounded**: every Playwright wait gives up after ``ACTION_TIMEOUT_MS``, the launch after
  ``LAUNCH_TIMEOUT_MS`` (``tests.browser.browserkit``).

Why ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set while the browser runs: Playwright's sync API runs an
asyncio event loop in this thread (it switches to it with greenlets), so ``asyncio.get_running_loop()``
answers in test code, and Django's ``async_unsafe`` guard refuses every ORM call with
``SynchronousOnlyOperation`` ("You cannot call this from an async context"): the test's own queries,
and pytest-django's flush of the transactional database. The guard protects coroutines sharing a
connection; here the test code is plain synchronous code that never runs inside that loop, so the
guard is switched off, for ``tests/browser`` only and only while Playwright is started (restored
afterwards). The server side needs nothing: ``live_server`` answers from its own thread, with no loop.

Why the database is transactional: ``live_server`` serves from another thread, which cannot see rows
inside the test's transaction, so pytest-django gives every test using it ``transactional_db``
(tables flushed after each test). On SQLite the test database is in memory, and pytest-django shares
that one connection with the server thread; on PostgreSQL the server thread uses its own pooled
connections.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.browserkit import ACTION_TIMEOUT_MS, DESKTOP, admin_login, find_chromium, launch_chromium
from tests.conftest import require_service

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from playwright.sync_api import Browser, Page
    from pytest_django.live_server_helper import LiveServer


def require_chromium() -> str:
    """The path of Debian's Chromium; skip the test when it is missing (fail with VIDEOGEN_REQUIRE_SERVICES=1)."""
    path = find_chromium()
    if path is None:
        require_service("Chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    assert path is not None
    return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the whole ``tests/browser`` package (see the module docstring for the rules)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        with sync_playwright() as playwright:
            chromium = launch_chromium(playwright, executable)
            yield chromium
            chromium.close()


@pytest.fixture
def admin_credentials(live_server: LiveServer, django_user_model: type[User]) -> tuple[str, str]:
    """A staff superuser in the test database: ``(username, password)``."""
    password = secrets.token_urlsafe(16)
    django_user_model.objects.create_superuser("operator", email="operator@example.test", password=password)
    return "operator", password


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own cookies) at 1,280 x 800 CSS pixels, every wait bounded."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def admin_page(page: Page, live_server: LiveServer, admin_credentials: tuple[str, str]) -> Page:
    """``page``, signed in as a staff superuser through the admin's real login form, on the admin index."""
    username, password = admin_credentials
    admin_login(page, live_server.url, username=username, password=password)
    return page
