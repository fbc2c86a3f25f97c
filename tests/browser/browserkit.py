"""Headless Chromium for the browser tests and ``bin/screenshot``: find it, launch it, log in to the admin.

The browser is Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it when it is
missing), found on ``PATH`` as ``chromium`` and driven by Playwright for Python, whose package ships
its driver. Playwright never downloads a browser here: it is always launched with
``executable_path``, and nothing runs ``playwright install``.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright, ViewportSize

# The machine notes' flags: without the background-networking ones Chromium keeps dialling Google's
# hosts, which this machine's closed network refuses. Playwright adds a fresh, empty --user-data-dir.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Every Playwright wait (navigation, click, selector) gives up after this many milliseconds, and
# the launch after LAUNCH_TIMEOUT_MS, so a hung browser or server fails a test instead of stalling it.
ACTION_TIMEOUT_MS = 15_000
LAUNCH_TIMEOUT_MS = 30_000
# The width the console must fit (issue 15): 1,280 CSS pixels.
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


class LoginFailed(RuntimeError):
    """The admin login form did not let the user in."""


def find_chromium() -> str | None:
    """The path of Debian's Chromium (``which chromium``), or ``None`` when it is not installed."""
    return shutil.which("chromium")


def launch_chromium(playwright: Playwright, executable: str) -> Browser:
    """Start headless Chromium from ``executable`` with :data:`CHROMIUM_ARGS`."""
    return playwright.chromium.launch(
        executable_path=executable, headless=True, args=list(CHROMIUM_ARGS), timeout=LAUNCH_TIMEOUT_MS
    )


def admin_login(page: Page, base_url: str, *, username: str, password: str, next_path: str = "/admin/") -> None:
    """Sign in through the admin's real login form and land on ``next_path``.

    Raises:
        LoginFailed: the form came back (wrong credentials, or not a staff user).
    """
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("#login-form [type=submit]")
    if page.locator("#login-form").count():
        errors = page.locator(".errornote").all_inner_texts()
        raise LoginFailed(f"the admin refused {username!r}: {' '.join(errors) or 'no error shown'}")


# The document, and every box that scrolls or clips sideways, measured against its own width. Django's
# changelist wraps its table in a box with `overflow-x: auto`, so a too-wide table cuts its last columns
# there (issue 15 item 2) while the document itself never scrolls: checking the document alone misses it.
_OVERFLOW_JS = """() => {
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + [...el.classList].map((c) => '.' + c).join('');
  const found = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) found.push(`document: ${root.scrollWidth - root.clientWidth} px`);
  for (const el of document.body.querySelectorAll('*')) {
    const style = getComputedStyle(el).overflowX;
    // A 1-pixel clipped box is screen-reader text (Django's .visually-hidden), cut on purpose.
    if (style !== 'visible' && el.clientWidth > 1 && el.clientHeight > 1 && el.scrollWidth > el.clientWidth) {
      found.push(`${name(el)}: ${el.scrollWidth - el.clientWidth} px`);
    }
  }
  return found;
}"""


def horizontal_overflow(page: Page) -> list[str]:
    """What is wider than its room, as ``"<box>: <n> px"`` lines; empty when nothing scrolls or is cut sideways.

    The boxes are the document and every element that scrolls or clips horizontally (``overflow-x``
    other than ``visible``), except 1-pixel boxes: screen-reader-only text is clipped on purpose.
    """
    found: list[str] = page.evaluate(_OVERFLOW_JS)
    return found
