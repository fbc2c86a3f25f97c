"""Issue 11 item 6: with SUPABASE_URL (or SUPABASE_SERVICE_KEY) set, storage is Supabase or it refuses, never local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.storage.buckets import supabase_selected
from tests.storage.fake_supabase import FakeSupabase

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.conf import settings
from common.errors import PipelineError
from common.storage import facade
out = {"backend": settings.STORAGES["video-clips"]["BACKEND"]}
try:
    facade.upload_file("video-clips", "a.mp4", b"\\x00\\x00\\x00\\x18ftypisom" + bytes(100))
    out["uploaded"] = True
except PipelineError as exc:
    out["error"] = [type(exc).__name__, exc.code, exc.message]
print(json.dumps(out))
"""


def probe(tmp_path: Path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "DATABASE_URL", "ENVIRONMENT"))}
    base.update(
        VIDEOGEN_ENV_FILE=os.devnull,
        DJANGO_SETTINGS_MODULE="videogen.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        LOG_LEVEL="ERROR",
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def server() -> FakeSupabase:
    fake = FakeSupabase(key="sb_secret_" + "k" * 32, buckets=("video-clips",)).start()
    yield fake
    fake.stop()


def test_malformed_service_key_refuses_instead_of_local_files(tmp_path: Path, server: FakeSupabase) -> None:
    out = probe(tmp_path, SUPABASE_URL=server.url, SUPABASE_SERVICE_KEY="abc")
    assert out["backend"] == "common.storage.supabase.SupabaseStorage"
    kind, code, message = out["error"]
    assert (kind, code) == ("ConfigError", "CONFIG_ERROR")
    assert "SUPABASE_SERVICE_KEY" in message
    assert server.count() == 0
    assert not (tmp_path / "media").exists()


def test_url_without_key_refuses(tmp_path: Path, server: FakeSupabase) -> None:
    out = probe(tmp_path, SUPABASE_URL=server.url)
    assert out["backend"] == "common.storage.supabase.SupabaseStorage"
    assert out["error"][:2] == ["ConfigError", "CONFIG_ERROR"]
    assert "SUPABASE_SERVICE_KEY" in out["error"][2]


def test_bad_url_refuses(tmp_path: Path) -> None:
    out = probe(tmp_path, SUPABASE_URL="ftp://example.com", SUPABASE_SERVICE_KEY="sb_secret_" + "k" * 32)
    assert out["backend"] == "common.storage.supabase.SupabaseStorage"
    assert "SUPABASE_URL" in out["error"][2]


def test_valid_pair_uses_supabase(tmp_path: Path, server: FakeSupabase) -> None:
    out = probe(tmp_path, SUPABASE_URL=server.url, SUPABASE_SERVICE_KEY=server.key)
    assert out == {"backend": "common.storage.supabase.SupabaseStorage", "uploaded": True}
    assert list(server.objects("video-clips")) == ["a.mp4"]


def test_nothing_set_is_local(tmp_path: Path) -> None:
    out = probe(tmp_path, MEDIA_ROOT_UNUSED="1")
    assert out["backend"] == "common.storage.local.LocalBucketStorage"


def test_selection_rule() -> None:
    from common.conf import ConfigProblem, EnvSettings

    assert not supabase_selected(EnvSettings(), [])
    assert supabase_selected(EnvSettings(supabase_url="https://x.supabase.co"), [])
    assert supabase_selected(EnvSettings(), [ConfigProblem("SUPABASE_SERVICE_KEY", "must be a JWT")])
    assert not supabase_selected(EnvSettings(), [ConfigProblem("REDIS_URL", "bad")])
