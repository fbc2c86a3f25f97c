"""The operator's console in Chromium (issue 15, Tests): the spend page, the budget filter, ledger to job.

Signed in through the real login form at 1,280 px: the spend page's chart bars match its figures and
the ledger, the jobs changelist's budget filter narrows the list, a ledger row leads to its job, and
neither page scrolls or cuts anything sideways (in the light and the dark theme).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from pytest_django.live_server_helper import LiveServer

from common.models import JobCost
from tests.browser.browserkit import ACTION_TIMEOUT_MS, DESKTOP, admin_login, horizontal_overflow
from tests.browser.test_admin_browser import png_size
from tests.consolekit import World, build_world, noon

D = Decimal


@pytest.fixture
def world(live_server: LiveServer) -> World:
    return build_world()


def bars(page: Page, chart: str) -> list[dict[str, str | float]]:
    """Each bar of ``chart``: its label, exact value and drawn size (height for columns, width for rows)."""
    found: list[dict[str, str | float]] = page.evaluate(
        """(chart) => [...document.querySelectorAll(`#${chart} rect.vg-bar`)].map((r) => ({
            label: r.dataset.label, value: r.dataset.value,
            height: r.getBBox().height, width: r.getBBox().width}))""",
        chart,
    )
    return found


def test_the_spend_page_charts_match_its_figures_and_fit_1280_px(
    admin_page: Page, live_server: LiveServer, world: World, tmp_path: Path
) -> None:
    admin_page.click("#spend-link a")
    admin_page.wait_for_url(f"{live_server.url}/admin/spend/")
    totals = {
        li.get_attribute("data-period"): D(li.get_attribute("data-exact") or "")
        for li in admin_page.locator("#spend-totals li").all()
    }
    assert totals == {
        "today": world.spent_since(1),
        "7d": world.spent_since(7),
        "30d": world.spent_since(30),
        "all": world.all_time,
        "holds": world.reserved,
    }
    days = bars(admin_page, "chart-day")
    assert len(days) == 30
    assert sum(D(str(b["value"])) for b in days) == totals["30d"]
    tallest = max(days, key=lambda b: D(str(b["value"])))
    for bar in days:  # drawn heights are proportional to the amounts; empty days draw nothing
        expected = float(D(str(bar["value"])) / D(str(tallest["value"]))) * float(tallest["height"])
        assert abs(float(bar["height"]) - expected) < 0.2, bar
    # The API chart over the 30 days: one bar per API, summing to the 30-day total, as the ledger says.
    apis = {str(b["label"]): D(str(b["value"])) for b in bars(admin_page, "chart-api")}
    ledger: dict[str, Decimal] = {}
    for row in JobCost.objects.filter(timestamp__gte=noon(29).replace(hour=0)):
        ledger[row.api_name] = ledger.get(row.api_name, D(0)) + row.cost
    assert apis == ledger
    # The text equivalent for screen readers: the SVG's title and a visually hidden table of the same figures.
    assert admin_page.locator("#chart-day-title").text_content() == "Spend per day, the last 30 days (UTC)"
    hidden = admin_page.locator("#chart-day-table tbody tr")
    assert hidden.count() == 30
    clip = admin_page.evaluate(
        "() => { const box = document.querySelector('#chart-day-table').parentElement.getBoundingClientRect();"
        " return [box.width, box.height]; }"
    )
    assert clip == [1, 1]
    shot = tmp_path / "spend-1280.png"
    admin_page.screenshot(path=str(shot), full_page=True)
    assert png_size(shot)[0] == DESKTOP["width"]
    assert horizontal_overflow(admin_page) == []
    # The period filter, by the form, without a script.
    admin_page.select_option("#id_period", "7d")
    with admin_page.expect_navigation():
        admin_page.click("#spend-filters [type=submit]")
    assert "period=7d" in admin_page.url
    apis_7d = {str(b["label"]): D(str(b["value"])) for b in bars(admin_page, "chart-api")}
    assert sum(apis_7d.values()) == world.spent_since(7)


def test_the_budget_filter_and_a_ledger_row_lead_to_the_job(
    admin_page: Page, live_server: LiveServer, world: World, tmp_path: Path
) -> None:
    admin_page.goto(f"{live_server.url}/admin/common/job/")
    assert admin_page.locator("#result_list tbody tr").count() == 4
    admin_page.click("#changelist-filter a[href='?budget=over']")
    admin_page.wait_for_url("**/admin/common/job/?budget=over")
    codes = admin_page.locator("#result_list tbody th a code")
    assert [codes.nth(n).get_attribute("title") for n in range(codes.count())] == [str(world.jobs["stopped"].id)]
    admin_page.click("#changelist-filter a[href='?budget=near']")
    admin_page.wait_for_url("**/admin/common/job/?budget=near")
    assert codes.count() == 1
    assert codes.first.get_attribute("title") == str(world.jobs["near"].id)
    assert admin_page.locator("#result_list .vg-share--near").count() == 1
    # The ledger: the sum above the list, a row's job link to the job's page.
    admin_page.goto(f"{live_server.url}/admin/common/jobcost/")
    assert admin_page.locator("#ledger-sum strong").get_attribute("title") == str(world.all_time).rstrip("0")
    assert horizontal_overflow(admin_page) == []
    admin_page.screenshot(path=str(tmp_path / "ledger-1280.png"), full_page=True)
    row = admin_page.locator("#result_list tbody tr").filter(has_text="ffmpeg-cloud")
    with admin_page.expect_navigation():
        row.locator("a.vg-job-link").click()
    assert admin_page.url.endswith(f"/admin/common/job/{world.jobs['old'].id}/change/")
    money = admin_page.locator(".vg-money-block")
    assert "$4.00" in money.inner_text()
    assert "$46.00" in money.inner_text()  # spent, remaining of 50.00
    admin_page.screenshot(path=str(tmp_path / "job-1280.png"), full_page=True)
    assert horizontal_overflow(admin_page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_spend_page_reads_in_both_themes(
    browser: Browser, live_server: LiveServer, admin_credentials: tuple[str, str], world: World, scheme: str
) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        page = context.new_page()
        admin_login(page, live_server.url, username=admin_credentials[0], password=admin_credentials[1],
                    next_path="/admin/spend/")  # fmt: skip
        colours = page.evaluate(
            """() => ({bg: getComputedStyle(document.body).backgroundColor,
                      bar: getComputedStyle(document.querySelector('#chart-day rect.vg-bar:not(.vg-bar--zero)')).fill,
                      text: getComputedStyle(document.querySelector('#chart-day text')).fill})"""
        )
        from tests.browser.test_landing_browser import contrast

        assert contrast(colours["bar"], colours["bg"]) >= 3, colours  # WCAG 1.4.11, non-text contrast
        assert contrast(colours["text"], colours["bg"]) >= 4.5, colours
        assert horizontal_overflow(page) == []
    finally:
        context.close()
