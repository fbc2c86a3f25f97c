"""The console's changelists and job page (issue 15 items 2-4): budget states, dollars, ledger links and sums."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse

from common.errors import BudgetExceededError, GenerationError
from common.models import Job, JobCost
from common.money import format_dollars
from common.services.jobs import job_fail
from tests.consolekit import ALICE, BOB, build_world, charge, new_job

pytestmark = pytest.mark.django_db

D = Decimal
JOBS = reverse("admin:common_job_changelist")
COSTS = reverse("admin:common_jobcost_changelist")


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_user("operator", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_job", "change_job", "view_jobcost", "view_jobstage"])
    )
    client = Client()
    client.force_login(user)
    return client


def listed(client: Client, query: str = "") -> list[str]:
    """The job ids a jobs changelist shows, in order (from the rows' tooltips)."""
    html = client.get(JOBS + query).content.decode()
    return re.findall(r'<code class="vg-id" title="([0-9a-f-]{36})"[^>]*>[0-9a-f]{8}</code></a></th>', html)


def test_format_dollars_rounds_for_lists_only() -> None:
    assert format_dollars(D("1234.565")) == "$1,234.56"  # half-even, to the cent
    assert format_dollars(D("0.0055")) == "$0.01"
    assert format_dollars(D("0.004")) == "<$0.01"  # not a misleading $0.00
    assert format_dollars(D("0")) == "$0.00"
    assert format_dollars(None) == ""


def test_budget_filter_at_the_thresholds(staff: Client) -> None:
    jobs = {}
    for name, budget, spent in [("ok", "1.00", "0.79"), ("near", "1.00", "0.80"), ("over", "1.00", "1.01"),
                                ("zero", "0", "0")]:  # fmt: skip
        jobs[name] = new_job(budget, user=ALICE, prompt=name)
        if D(spent):
            charge(jobs[name], spent, stage="video_generation", api="svd")
    stopped = jobs["stopped"] = new_job("1.00", user=BOB, prompt="stopped")
    charge(stopped, "0.10", stage="video_generation", api="svd")
    job_fail(job_id=stopped.id, error=BudgetExceededError("clip 4 refused", job_id=stopped.id))
    ids = {name: str(job.id) for name, job in jobs.items()}
    assert set(listed(staff, "?budget=ok")) == {ids["ok"], ids["zero"]}
    assert set(listed(staff, "?budget=near")) == {ids["near"]}
    # Over: spent more than the budget, or stopped by it (BUDGET_EXCEEDED) while under it.
    assert set(listed(staff, "?budget=over")) == {ids["over"], ids["stopped"]}
    assert len(listed(staff)) == 5
    html = staff.get(JOBS).content.decode()
    assert "near (at or above 80.0%)" in html


@override_settings(VIDEOGEN_COMMON={"BUDGET_WARNING_THRESHOLDS": (D("0.5"), D("0.9"))})
def test_near_follows_the_first_warning_threshold(staff: Client) -> None:
    half = new_job("1.00", user=ALICE, prompt="half")
    charge(half, "0.50", stage="video_generation", api="svd")
    assert listed(staff, "?budget=near") == [str(half.id)]


def test_the_budget_bar_is_coloured_by_state_and_sortable(staff: Client) -> None:
    world = build_world()
    html = staff.get(JOBS).content.decode()
    assert html.count("vg-share--over") == 1
    assert html.count("vg-share--near") == 1
    assert 'style="width: 85.0%"' in html  # near: 0.85 of 1.00
    assert "85.0%" in html
    # Sorted by share used, descending: near (85 %), stopped (72.6 %), big (18.8 %), old (8 %).
    header = re.search(r'<th scope="col" class="sortable column-budget_used">.*?<a href="\?o=(\d+)[."]', html, re.S)
    assert header is not None
    order = listed(staff, f"?o=-{header.group(1)}")
    assert order == [str(world.jobs[k].id) for k in ("near", "stopped", "big", "old")]


def test_list_columns_user_error_and_dollars(staff: Client) -> None:
    world = build_world()
    html = staff.get(JOBS).content.decode()
    assert f'href="?user_id={BOB}"' in html
    assert re.search(r'<code class="vg-code" title="clip 4 refused">BUDGET_<wbr>EXCEEDED</code>', html)
    assert '<span class="vg-money" title="3.7555">$3.76</span>' in html  # big's spent: cents, exact in the tooltip
    assert ">3.755500<" not in html  # no six-decimal money in the list
    assert set(listed(staff, f"?user_id={ALICE}")) == {str(world.jobs["big"].id), str(world.jobs["old"].id)}


def test_job_page_money_block_and_latest_charges(staff: Client) -> None:
    job = new_job("5.00", user=ALICE, prompt="many charges")
    for n in range(7):
        charge(job, "0.25", stage="video_generation" if n % 2 else "reference_generation", api=f"api-{n % 3}")
    html = staff.get(reverse("admin:common_job_change", args=[job.pk])).content.decode()
    block = html[html.index('class="vg-money-block"') :]
    for figure in ("Spent<b>$1.75</b>", "Reserved (open holds)<b>$0.00</b>", "Budget<b>$5.00</b>",
                   "Remaining<b>$3.25</b>"):  # fmt: skip
        assert figure in block
    assert '<td>video_generation</td><td class="num">$0.75</td>' in block
    assert '<td>reference_generation</td><td class="num">$1.00</td>' in block
    assert '<td>api-0</td><td class="num">$0.75</td>' in block
    # Five rows shown, the rest in the ledger filtered to this job.
    ledger = html[html.index('class="vg-table vg-ledger"') :]
    assert ledger[: ledger.index("</table>")].count("<tr>") == 6  # header + 5
    assert f'href="{COSTS}?job={job.id}">Show all of this job&#x27;s charges' in ledger
    rows = staff.get(f"{COSTS}?job={job.id}")
    assert rows.status_code == 200
    assert rows.context_data["ledger_sum"]["rows"] == 7


def test_a_failed_stage_shows_its_error_readably(staff: Client) -> None:
    job = new_job("5.00", user=ALICE, prompt="fails")
    job_fail(job_id=job.id, error=GenerationError("the model returned no frames", job_id=job.id,
                                                   details={"clip": 3, "model": "svd"}))  # fmt: skip
    html = staff.get(reverse("admin:common_job_change", args=[job.pk])).content.decode()
    assert "<strong>GENERATION_FAILED</strong>: the model returned no frames" in html
    assert "<dt>clip</dt><dd>3</dd><dt>model</dt><dd>svd</dd>" in html
    assert "{&quot;error&quot;" not in html  # no raw JSON


def test_ledger_rows_link_to_their_job_and_the_sum_follows_the_filters(staff: Client) -> None:
    world = build_world()
    html = staff.get(COSTS).content.decode()
    for job in world.jobs.values():
        assert f'<a class="vg-job-link" href="{reverse("admin:common_job_change", args=[job.id])}">' in html
    total = staff.get(COSTS).context_data["ledger_sum"]
    assert (total["rows"], total["total"]) == (8, world.all_time)
    assert 'id="ledger-sum"' in html
    assert 'Sum of the 8 charges selected: <strong title="8.9685">$8.97</strong>' in " ".join(html.split())
    svd = staff.get(f"{COSTS}?api_name=svd").context_data["ledger_sum"]
    assert (svd["rows"], svd["total"]) == (3, D("4.35"))
    searched = staff.get(f"{COSTS}?q={world.jobs['near'].id}").context_data["ledger_sum"]
    assert searched["total"] == D("0.85")


def test_a_ledger_rows_page_shows_its_timestamp_and_exact_amounts(staff: Client) -> None:
    job = new_job("5.00", user=ALICE, prompt="one")
    row = charge(job, "0.0055", stage="reference_generation", api="sdxl")
    row = JobCost.objects.get(pk=row.pk)
    html = staff.get(reverse("admin:common_jobcost_change", args=[row.pk])).content.decode()
    assert "Timestamp" in html
    assert row.timestamp.strftime("%Y") in html
    assert "$0.0055" in html
    assert reverse("admin:common_job_change", args=[job.id]) in html


def test_the_admin_index_links_the_spend_page_and_has_no_sidebar(staff: Client) -> None:
    html = staff.get("/admin/").content.decode()
    assert 'href="/admin/spend/"' in html
    assert 'id="nav-sidebar"' not in html
    assert Job.objects.count() == 0
