"""The spend page at /admin/spend/ (issue 15 item 1): figures against the ledger, filters, links, queries."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from common.models import Job, JobCost, JobStage
from common.money import format_dollars
from tests.consolekit import ALICE, BOB, build_world, charge, new_job

pytestmark = pytest.mark.django_db

URL = "/admin/spend/"
D = Decimal


class Page(HTMLParser):
    """The page's totals, chart bars (label -> exact value per chart) and links."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, str] = {}
        self.bars: dict[str, dict[str, str]] = {}
        self.links: list[str] = []
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "li" and a.get("data-period"):
            self.totals[a["data-period"] or ""] = a.get("data-exact") or ""
        elif tag == "svg":
            self._chart = a.get("id")
            self.bars[self._chart or ""] = {}
        elif tag == "rect" and self._chart and "vg-bar" in (a.get("class") or ""):
            self.bars[self._chart][a["data-label"] or ""] = a["data-value"] or ""
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_job", "view_jobcost"]))
    client = Client()
    client.force_login(user)
    return client


def get(client: Client, query: str = "") -> tuple[str, Page]:
    response = client.get(URL + query)
    assert response.status_code == 200, response.content[:500]
    html = response.content.decode()
    return html, parse(html)


def test_only_staff_with_view_permissions_see_it(client: Client) -> None:
    assert client.get(URL).status_code == 302  # to the admin's login
    assert "/admin/login/" in client.get(URL)["Location"]
    plain = User.objects.create_user("plain", is_staff=False)
    client.force_login(plain)
    assert client.get(URL).status_code == 302
    bare = User.objects.create_user("bare", is_staff=True)
    client.force_login(bare)
    assert client.get(URL).status_code == 403


def test_the_admin_index_links_the_spend_page(staff: Client) -> None:
    # Part of the admin site (admin:spend), so any project serving admin.site.urls has it.
    assert reverse("admin:spend") == URL
    assert URL in parse(staff.get("/admin/").content.decode()).links


def test_totals_equal_the_ledger_and_holds(staff: Client) -> None:
    world = build_world()
    _, page = get(staff)
    assert D(page.totals["all"]) == world.all_time == sum((c.cost for c in JobCost.objects.all()), D(0))
    assert D(page.totals["today"]) == world.spent_since(1) == D("1.2555")
    assert D(page.totals["7d"]) == world.spent_since(7) == D("4.6055")
    assert D(page.totals["30d"]) == world.spent_since(30) == D("4.9685")
    # Open holds only: the released hold (0.70) was refunded and reserves nothing.
    assert D(page.totals["holds"]) == world.reserved == D("0.40")


def test_per_day_chart_has_30_days_with_the_empty_ones(staff: Client) -> None:
    world = build_world()
    _, page = get(staff)
    days = page.bars["chart-day"]
    assert len(days) == 30
    values = [D(v) for v in days.values()]  # oldest first
    expected = [world.per_day.get(days_ago, D(0)) for days_ago in range(29, -1, -1)]
    assert values == expected
    assert values.count(D(0)) == 26  # 30 days, spend on 4 of them (the 40-days-ago charge is outside)
    assert sum(values) == D(page.totals["30d"])


def test_stage_and_api_charts_match_the_ledger_in_the_period(staff: Client) -> None:
    build_world()
    _, page = get(staff, "?period=7d")
    assert {k: D(v) for k, v in page.bars["chart-stage"].items()} == {
        "reference_generation": D("0.0055"),
        "scene_planning": D("0.25"),
        "video_generation": D("4.35"),
    }
    assert {k: D(v) for k, v in page.bars["chart-api"].items()} == {
        "gpt-4o": D("0.25"),
        "sdxl": D("0.0055"),
        "svd": D("4.35"),
    }
    _, everything = get(staff, "?period=all")
    assert sum(D(v) for v in everything.bars["chart-api"].values()) == D(everything.totals["all"])


def test_the_status_filter_narrows_every_figure(staff: Client) -> None:
    world = build_world()
    _, page = get(staff, "?period=all&status=failed")
    stopped = world.jobs["stopped"]
    assert D(page.totals["all"]) == stopped.total_cost == D("0.363")
    assert D(page.totals["holds"]) == 0  # the open hold is on a processing job
    assert set(page.bars["chart-api"]) == {"whisper", "gpt-4o"}


def test_near_and_over_jobs_at_their_thresholds_link_to_their_pages(staff: Client) -> None:
    world = build_world()
    # Exactly at the 80 % threshold is near; a cent under is ok.
    at = new_job("1.00", user=BOB, prompt="at threshold")
    charge(at, "0.80", stage="video_generation", api="svd")
    under = new_job("1.00", user=BOB, prompt="under threshold")
    charge(under, "0.79", stage="video_generation", api="svd")
    html, page = get(staff, "?period=all")
    section = html[html.index('id="budget-jobs"') : html.index('id="top-jobs"')]
    listed = re.findall(r"/admin/common/job/([0-9a-f-]{36})/change/", section)
    # Over first (the job stopped by BUDGET_EXCEEDED, though under its budget), then near by share used.
    assert listed == [str(world.jobs["stopped"].id), str(world.jobs["near"].id), str(at.id)]
    assert str(under.id) not in section
    assert str(world.jobs["big"].id) not in section
    assert "/admin/common/job/?budget=near" in page.links
    assert "/admin/common/job/?budget=over" in page.links


def test_top_jobs_and_users_link_to_the_job_and_the_filtered_changelist(staff: Client) -> None:
    world = build_world()
    html, page = get(staff, "?period=30d")
    top_jobs = html[html.index('id="top-jobs"') : html.index('id="top-users"')]
    assert re.findall(r"/admin/common/job/([0-9a-f-]{36})/change/", top_jobs) == [
        str(world.jobs[k].id) for k in ("big", "near", "stopped")
    ]
    assert format_dollars(D("3.7555")) in top_jobs  # big's spend in the period
    assert f"/admin/common/job/?user_id={ALICE}" in page.links
    assert f"/admin/common/job/?user_id={BOB}" in page.links
    # ... and those links answer with that user's jobs only.
    listed = staff.get(f"/admin/common/job/?user_id={BOB}").content.decode()
    assert str(world.jobs["near"].id) in listed
    assert str(world.jobs["big"].id) not in listed


def test_a_ledger_link_for_the_period_answers(staff: Client) -> None:
    build_world()
    html, _ = get(staff, "?period=7d")
    match = re.search(r'<a href="([^"]+)">The ledger for the last 7 days</a>', html)
    assert match is not None
    response = staff.get(match.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    assert response.context_data["ledger_sum"]["total"] == D("4.6055")


@pytest.mark.parametrize("query", ["", "?status=failed", "?status=processing"])
def test_each_total_links_to_the_ledger_rows_it_sums(staff: Client, query: str) -> None:
    build_world()
    html, page = get(staff, query)
    section = html[html.index('id="spend-totals"') : html.index("</ul>", html.index('id="spend-totals"'))]
    links = re.findall(r'href="([^"]+)"', section)
    assert len(links) == 4
    for key, link in zip(("today", "7d", "30d", "all"), links, strict=True):
        response = staff.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link
        assert response.context_data["ledger_sum"]["total"] == D(page.totals[key]), (key, link)


def test_no_spend_at_all_reads_as_zero(staff: Client) -> None:
    html, page = get(staff)
    assert page.totals == dict.fromkeys(("today", "7d", "30d", "all", "holds"), "0.00")
    assert "No job is near or over its budget." in html
    assert list(page.bars["chart-day"].values()) == ["0.00"] * 30


@pytest.mark.parametrize("query", ["?period=year", "?status=lost"])
def test_a_bad_filter_is_a_400_naming_it(staff: Client, query: str) -> None:
    response = staff.get(URL + query)
    assert response.status_code == 400
    html = response.content.decode()
    assert "errornote" in html
    assert "Select a valid choice" in html
    assert 'id="spend-totals"' not in html


def test_charts_have_a_text_equivalent(staff: Client) -> None:
    build_world()
    html, _ = get(staff)
    for chart in ("chart-day", "chart-stage", "chart-api"):
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in html
        assert f'<div class="visually-hidden"><table id="{chart}-table">' in html
    assert "<script" not in html.split('id="content-main"')[1]


def add_jobs(n: int) -> None:
    """``n`` more jobs with a stage and a charge each, half of them near their budget (bulk, to be quick)."""
    jobs = Job.objects.bulk_create(
        Job(user_id=uuid.uuid4(), audio_url="a", user_prompt=f"job {i}", status="processing",
            total_cost=D("0.90") if i % 2 else D("0.10"), budget_limit=D("1.00"))
        for i in range(n)
    )  # fmt: skip
    JobStage.objects.bulk_create(JobStage(job=j, stage_name="composition", status="processing") for j in jobs)
    JobCost.objects.bulk_create(
        JobCost(job=j, stage_name="composition", api_name="ffmpeg", cost=j.total_cost) for j in jobs
    )


def count_queries(client: Client, query: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(URL + query)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("query", ["", "?period=all&status=processing"])
def test_the_same_number_of_queries_for_10_and_200_jobs(staff: Client, query: str) -> None:
    build_world()
    add_jobs(6)
    count_queries(staff, query)  # warm caches (content types, permissions)
    ten = count_queries(staff, query)
    add_jobs(190)
    assert Job.objects.count() == 200
    assert count_queries(staff, query) == ten
