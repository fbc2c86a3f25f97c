"""The browser fixtures' rules: a missing Chromium skips the browser tests, or fails them in CI; CI installs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import tests.conftest
from tests.browser.browserkit import find_chromium
from tests.browser.conftest import require_chromium
from tests.conftest import port_open, require_service

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH with no chromium on it."""
    monkeypatch.setenv("PATH", str(tmp_path))


def test_chromium_is_found_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() == str(fake)
    assert require_chromium() == str(fake)


@pytest.mark.usefixtures("no_chromium")
def test_a_missing_chromium_skips_the_browser_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tests.conftest, "REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        require_chromium()


@pytest.mark.usefixtures("no_chromium")
def test_a_missing_chromium_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tests.conftest, "REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        require_chromium()


def test_ci_run_installs_chromium_when_it_is_missing(tmp_path: Path) -> None:
    """``.ci/run`` with no chromium on PATH calls apt-get for it (to stderr), then ``make test`` as before."""
    if not (port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)):
        require_service("PostgreSQL and Redis must be up (.ci/run would start them)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Only what .ci/run calls, so that the machine's own chromium is not on this PATH.
    for tool in ("bash", "dirname", "pg_isready", "redis-cli", "seq", "sleep", "ls"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "apt-get.calls"
    for name, body in (
        ("apt-get", f'echo "apt-get $*" >> {calls}\necho "apt-get talks on stdout"\n'),
        ("make", 'echo "make $*"\n'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    done = subprocess.run([bin_dir / "bash", ROOT / ".ci" / "run"], env=env, capture_output=True, text=True, check=True)
    assert calls.exists(), f"apt-get was not called: {done.stderr}"
    assert calls.read_text().splitlines() == ["apt-get update -q", "apt-get install -y -q chromium"]
    assert done.stdout.strip() == "make test"  # apt-get's own output goes to stderr
    assert "apt-get talks on stdout" in done.stderr
