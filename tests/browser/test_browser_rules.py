"""The browser fixtures' rules: a missing Chromium skips the browser tests, or fails them in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.conftest
from tests.browser.browserkit import find_chromium
from tests.browser.conftest import require_chromium


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
