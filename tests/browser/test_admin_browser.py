"""The admin in a real browser (issue 15, Tests): log in, the index, the jobs changelist at 1,280 px.

The infrastructure's proof: Chromium signs in through the real login form, follows the index's link
to the jobs changelist, sees the jobs the test wrote, and takes a screenshot at 1,280 px. Whether the
changelist fits that width is asserted on its own, with the widest cells the pipeline writes.
"""

from __future__ import annotations

import struct
import uuid
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import Page
from pytest_django.live_server_helper import LiveServer

from common.errors import AudioAnalysisError, BudgetExceededError
from common.models import Job
from common.services import costs, jobs
from tests.browser.browserkit import DESKTOP, horizontal_overflow

USER = uuid.UUID("15151515-1515-4151-8151-151515151515")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (and proof that the file is a PNG)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def make_jobs() -> list[Job]:
    """Three jobs as the pipeline leaves them: one completed, one stopped by its budget, one running."""
    made = []
    for n, budget in enumerate(("20.00", "0.05", "5.00")):
        job = jobs.job_create(
            user_id=USER, audio_url="https://example.test/song.mp3", user_prompt=f"browser job {n}", budget_limit=budget
        )
        jobs.stage_start(job_id=job.id, stage_name="scene_planning")
        costs.track_cost(job.id, "scene_planning", "gpt-4o", None, quantity=Decimal(3))
        if n == 0:
            jobs.stage_complete(job_id=job.id, stage_name="scene_planning")
            jobs.job_complete(job_id=job.id, video_url=f"https://example.test/{job.id}.mp4")
        elif n == 1:
            jobs.job_fail(job_id=job.id, error=BudgetExceededError("clip 4 refused", job_id=job.id))
        made.append(job)
    return made


def open_jobs_changelist(page: Page, live_server: LiveServer) -> list[Job]:
    """Write the jobs, then reach their changelist from the admin index as an operator would."""
    made = make_jobs()
    page.goto(f"{live_server.url}/admin/")
    assert page.title().startswith("Site administration")
    page.click("#content-main a[href='/admin/common/job/']")
    page.wait_for_url(f"{live_server.url}/admin/common/job/")
    return made


def test_a_signed_in_operator_reaches_the_jobs_changelist_and_screenshots_it(
    admin_page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    assert horizontal_overflow(admin_page) == []  # the index fits 1,280 px: the check flags only what is cut
    made = open_jobs_changelist(admin_page, live_server)
    rows = admin_page.locator("#result_list tbody tr")
    assert rows.count() == len(made)
    # Each row's link shows the job's short id; the full id is its tooltip.
    ids = admin_page.locator("#result_list tbody th a code")
    listed = {ids.nth(n).get_attribute("title") for n in range(ids.count())}
    assert listed == {str(job.id) for job in made}
    assert set(ids.all_inner_texts()) == {str(job.id)[:8] for job in made}
    assert admin_page.locator("#result_list tbody").get_by_text("failed").count() == 1
    shot = tmp_path / "jobs-changelist-1280.png"
    admin_page.screenshot(path=str(shot))
    assert png_size(shot) == (DESKTOP["width"], DESKTOP["height"])


def test_the_jobs_changelist_fits_1280_px(admin_page: Page, live_server: LiveServer, tmp_path: Path) -> None:
    open_jobs_changelist(admin_page, live_server)
    # The widest cells the pipeline writes: its longest stage name, a long error code, five-figure money.
    wide = jobs.job_create(
        user_id=USER, audio_url="https://example.test/a.mp3", user_prompt="wide", budget_limit="99999.99"
    )
    jobs.stage_start(job_id=wide.id, stage_name="reference_generation")
    jobs.job_fail(job_id=wide.id, error=AudioAnalysisError("the stem split gave up", job_id=wide.id))
    admin_page.reload()
    assert admin_page.locator("#result_list tbody tr").count() == 4
    admin_page.screenshot(path=str(tmp_path / "jobs-changelist-1280-full.png"), full_page=True)
    assert horizontal_overflow(admin_page) == []
