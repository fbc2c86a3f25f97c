"""The landing page in Chromium, JavaScript off: readable in the light and dark themes, on a desktop and a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser
from pytest_django.live_server_helper import LiveServer

from tests.browser.browserkit import ACTION_TIMEOUT_MS, horizontal_overflow


def luminance(css_color: str) -> float:
    """WCAG relative luminance of a computed ``rgb(...)``/``rgba(...)`` colour."""
    r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", css_color)[:3])

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two computed colours (1 to 21)."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(("scheme", "width"), [("light", 1280), ("dark", 1280), ("light", 375), ("dark", 375)])
def test_the_landing_page_reads_without_javascript(
    browser: Browser, live_server: LiveServer, scheme: str, width: int
) -> None:
    context = browser.new_context(
        java_script_enabled=False,
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport={"width": width, "height": 800},
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/")
        links = page.locator("#landing-links th a")
        assert links.all_inner_texts() == ["Admin", "Spend", "API schema", "Health"]
        assert all(links.nth(n).is_visible() for n in range(links.count()))
        colours = page.evaluate(
            """() => {
              const style = (sel) => getComputedStyle(document.querySelector(sel));
              return {bg: style('body').backgroundColor, text: style('#content-main p').color,
                      link: style('#landing-links th a').color};
            }"""
        )
        if scheme == "dark":
            assert luminance(colours["bg"]) < 0.05, colours
        else:
            assert luminance(colours["bg"]) > 0.9, colours
        assert contrast(colours["text"], colours["bg"]) >= 4.5, colours
        assert contrast(colours["link"], colours["bg"]) >= 3, colours
        assert horizontal_overflow(page) == []
    finally:
        context.close()
