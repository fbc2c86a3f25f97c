"""``bin/screenshot`` (issue 15 item 7): an admin URL to a PNG, signing in on the way; refusals write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from pytest_django.live_server_helper import LiveServer

from tests.browser.conftest import require_chromium
from tests.browser.test_admin_browser import png_size

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bin" / "screenshot"


@pytest.fixture(autouse=True)
def _chromium() -> None:
    require_chromium()


def screenshot(*args: str) -> subprocess.CompletedProcess[str]:
    # The suite's own Python (the venv's), so the script needs no re-exec; bounded like the browser tests.
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120, check=False)


def test_renders_an_admin_page_after_signing_in(
    live_server: LiveServer, admin_credentials: tuple[str, str], tmp_path: Path
) -> None:
    username, password = admin_credentials
    out = tmp_path / "shots" / "admin-index.png"
    done = screenshot(f"{live_server.url}/admin/", str(out), "--width", "1000", "--username", username,
                      "--password", password)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out} ({live_server.url}/admin/ at 1000 px wide)"
    assert png_size(out) == (1000, 800)


def test_a_refused_sign_in_writes_nothing(
    live_server: LiveServer, admin_credentials: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "admin-index.png"
    done = screenshot(f"{live_server.url}/admin/", str(out), "--username", admin_credentials[0], "--password", "wrong")
    assert done.returncode == 1
    assert "the admin refused 'operator'" in done.stderr
    assert not out.exists()


@pytest.mark.django_db(transaction=True)
def test_an_http_error_writes_nothing(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "missing.png"
    done = screenshot(f"{live_server.url}/no-such-page", str(out))
    assert done.returncode == 1
    assert f"{live_server.url}/no-such-page answered HTTP 404; nothing written" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [["ftp://example.test/", "x.png"], ["http://127.0.0.1:1/", "x.png", "--width", "5"], ["only-one-argument"]],
)
def test_bad_arguments_exit_2(args: list[str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    assert "usage: bin/screenshot" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_readme_regenerates_the_spend_page_picture_with_nothing_running(tmp_path: Path) -> None:
    """``bin/screenshot --readme OUT``: a throwaway ``make serve`` (its own SQLite file), the spend page, 1,280 px."""
    if connection.vendor != "sqlite":
        pytest.skip("runs once, in the SQLite pass: the throwaway server uses its own SQLite file")
    out = tmp_path / "spend.png"
    done = subprocess.run(
        [sys.executable, SCRIPT, "--readme", str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out} (the spend page of a fresh `make serve`, 1280 px wide)"
    width, height = png_size(out)
    assert width == 1280
    assert height > 800  # the whole page: totals, charts and the job lists


def test_the_readme_shows_the_committed_spend_page_picture() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "![The spend page" in readme
    assert "](docs/spend.png)" in readme
    assert "bin/screenshot --readme" in readme
    assert png_size(ROOT / "docs" / "spend.png")[0] == 1280


def test_readme_refuses_a_second_argument(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, SCRIPT, "--readme", "a.png", "b.png"], capture_output=True, text=True, cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--readme takes at most one argument" in done.stderr
