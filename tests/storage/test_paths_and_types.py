"""Object path checks and content-type detection."""

from __future__ import annotations

import importlib
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import errors
from common.storage.content_types import detect_content_type, normalize_content_type, sniff_content_type
from common.storage.paths import clean_object_path, clean_prefix, quote_object_path
from tests.storage import samples
from tests.storage.fake_supabase import decode_uri
from tests.storage.fake_supabase import is_valid_key as fake_is_valid_key
from tests.storage.test_contract import BAD_PATHS, PROJECT_REFUSES, SERVER_REFUSES, TRICKY_NAMES

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = string.ascii_letters + string.digits + "_/!-.*'() &$@=:+,"


@pytest.mark.parametrize(
    "path",
    [
        "a.mp3",
        "user/job/file.mp3",
        "job_1/clip-0.mp4",
        "a b/c.png",
        "p/it's (final) take*2!.mp4",
        "p/a&b=c+d,e@f:g$h.mp4",
        *TRICKY_NAMES,
        "x" * 255,
        "/".join(["y" * 200] * 5)[:1024].rstrip("/"),
    ],
)
def test_good_paths(path: str) -> None:
    assert clean_object_path(path) == path


@pytest.mark.parametrize(
    "path", [*BAD_PATHS, *SERVER_REFUSES, *PROJECT_REFUSES, None, 42, b"bytes.mp3", " lead/x", "trail /x", "z" * 256]
)
def test_bad_paths(path: object) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        clean_object_path(path)
    assert caught.value.code == "INVALID_PATH"
    assert "Invalid object path" in caught.value.message


def test_bad_character_is_named() -> None:
    with pytest.raises(errors.ValidationError, match=r"'%' \(U\+0025\)"):
        clean_object_path("p/x%41.mp4")


def test_prefix() -> None:
    assert clean_prefix("") == ""
    assert clean_prefix(None) == ""
    assert clean_prefix("job/") == "job"
    with pytest.raises(errors.ValidationError):
        clean_prefix("../job")


@given(st.text())
def test_accepted_paths_are_safe(path: str) -> None:
    try:
        clean_object_path(path)
    except errors.ValidationError:
        return
    segments = path.split("/")
    assert not path.startswith("/")
    assert ".." not in segments
    assert "." not in segments
    assert "" not in segments
    assert set(path) <= set(ALLOWED)
    assert len(path.encode()) <= 1024


@given(st.text(alphabet=ALLOWED, min_size=1, max_size=60))
def test_accepted_names_reach_the_server_unchanged(path: str) -> None:
    """What the server decodes from the URL, and what it signs (decodeURI), is exactly the checked name."""
    try:
        clean_object_path(path)
    except errors.ValidationError:
        return
    quoted = quote_object_path(path)
    assert unquote(quoted, errors="strict") == path  # route parameters (find-my-way)
    assert decode_uri(quoted) == path  # the signed-URL token (storage/object.ts)
    assert fake_is_valid_key(path)  # the real server's isValidKey


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (samples.MP3, "audio/mpeg"),
        (samples.MP3_FRAME, "audio/mpeg"),
        (samples.WAV, "audio/wav"),
        (samples.FLAC, "audio/flac"),
        (samples.OGG, "audio/ogg"),
        (samples.PNG, "image/png"),
        (samples.JPEG, "image/jpeg"),
        (samples.WEBP, "image/webp"),
        (samples.GIF, "image/gif"),
        (samples.MP4, "video/mp4"),
        (samples.MOV, "video/quicktime"),
        (samples.WEBM, "video/webm"),
        (samples.MKV, "video/x-matroska"),
        (samples.JSON, "application/json"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x00\x00\x00\x18ftypM4A ", "audio/mp4"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
    ],
)
def test_sniffing(data: bytes, expected: str) -> None:
    assert sniff_content_type(data) == expected
    assert detect_content_type(data, "misleading.txt") == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("song.MP3", "audio/mpeg"),
        ("a.flac", "audio/flac"),
        ("clip.mov", "video/quicktime"),
        ("data.json", "application/json"),
        ("page.html", "text/html"),
        ("noext", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_extension_fallback(name: str | None, expected: str) -> None:
    assert detect_content_type(b"\x00\x01 unknown bytes", name) == expected


def test_not_json_and_not_aac() -> None:
    assert sniff_content_type(b"{not json") is None
    assert sniff_content_type(b"\xff\xf1\x50\x80") is None  # AAC ADTS, not MP3


def test_normalize() -> None:
    assert normalize_content_type("Audio/MP3; charset=binary") == "audio/mpeg"
    assert normalize_content_type("image/jpg") == "image/jpeg"
    assert normalize_content_type("audio/x-wav") == "audio/wav"
    assert normalize_content_type("video/mp4") == "video/mp4"


def test_package_exports_lazily() -> None:
    import common
    import common.storage as package
    from common.storage import facade

    assert package.upload_file is facade.upload_file
    assert "list_files" in dir(package)
    assert common.get_signed_url is facade.get_signed_url
    with pytest.raises(AttributeError):
        _ = package.no_such_name
    # The package repeats the facade's names (it cannot read facade.__all__ without importing it): keep them in step.
    assert set(facade.__all__) <= set(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is getattr(importlib.import_module(package._LAZY[name]), name)


def test_settings_import_of_buckets_stays_light() -> None:
    """videogen/settings.py imports common.storage.buckets: that must not load the facade or Django's storage."""
    heavy = ("common.storage.facade", "django.core.files.storage", "django.apps")
    code = f"import sys, common.storage.buckets; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
