"""Tests for common.conf: the app's knobs (VIDEOGEN_COMMON over DEFAULTS, read at call time) and its re-exports."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from common import conf, env
from common.conf import DEFAULTS, app_settings

# --------------------------------------------------------------------------- app settings


def test_app_settings_defaults() -> None:
    assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET
    assert isinstance(app_settings.DEFAULT_JOB_BUDGET, Decimal)
    assert DEFAULTS["TEMP_DIR"] == app_settings.TEMP_DIR
    assert set(app_settings) == set(DEFAULTS)


def test_app_settings_follow_override_settings() -> None:
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGET": Decimal("5.50")}):
        assert Decimal("5.50") == app_settings.DEFAULT_JOB_BUDGET
        assert DEFAULTS["TEMP_DIR"] == app_settings.TEMP_DIR  # untouched keys keep their defaults
        with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGET": Decimal("1")}):
            assert Decimal("1") == app_settings.DEFAULT_JOB_BUDGET
        assert Decimal("5.50") == app_settings.DEFAULT_JOB_BUDGET
    assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET


def test_app_settings_read_at_call_time(settings: object) -> None:
    # pytest-django's ``settings`` fixture also sends setting_changed.
    settings.VIDEOGEN_COMMON = {"TEMP_MAX_AGE_HOURS": 1}  # type: ignore[attr-defined]
    assert app_settings.TEMP_MAX_AGE_HOURS == 1


def test_app_settings_unknown_keys_raise() -> None:
    with override_settings(VIDEOGEN_COMMON={"DEFAULT_JOB_BUDGTE": Decimal("1"), "ZZZ": 1}):
        assert app_settings.unknown_keys() == ["DEFAULT_JOB_BUDGTE", "ZZZ"]
        with pytest.raises(ImproperlyConfigured, match="VIDEOGEN_COMMON has unknown keys: DEFAULT_JOB_BUDGTE, ZZZ"):
            app_settings.DEFAULT_JOB_BUDGET  # noqa: B018
    assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET


def test_app_settings_invalid_attribute() -> None:
    with pytest.raises(AttributeError, match="Invalid VIDEOGEN_COMMON setting: 'NOT_A_KNOB'"):
        app_settings.NOT_A_KNOB  # noqa: B018
    with pytest.raises(AttributeError):
        app_settings._private  # noqa: B018


def test_app_settings_none_is_empty() -> None:
    with override_settings(VIDEOGEN_COMMON=None):
        assert app_settings.user_settings() == {}
        assert Decimal("20.00") == app_settings.DEFAULT_JOB_BUDGET


def test_other_setting_changes_keep_the_cache() -> None:
    app_settings.DEFAULT_JOB_BUDGET  # noqa: B018 - fill the cache
    cached = app_settings._merged
    with override_settings(DEBUG=True):
        assert app_settings._merged is cached


@pytest.mark.parametrize("name", [n for n in conf.__all__ if n not in ("DEFAULTS", "AppSettings", "app_settings")])
def test_the_environment_api_is_still_importable_from_conf(name: str) -> None:
    # The seeds' shared.config and the pipeline modules' settings import these from common.conf (README).
    assert getattr(conf, name) is getattr(env, name)
    assert name in env.__all__
