"""Tests for common.validation: audio uploads in every form (bytes, paths, streams), size limits, prompts, sizes.

What the bytes are (formats, malformed headers, what other content looks like) is in tests/test_media.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

import common
from common.errors import ValidationError
from common.validation import (
    MAX_HEADER_BYTES,
    AudioFormat,
    validate_audio_file,
    validate_file_size,
    validate_prompt,
)
from tests.mediasamples import flac_bytes, id3_tag, mp3_frames, mp3_with_id3, wav_bytes

MB = 1024 * 1024


class CountingBytesIO(io.BytesIO):
    """A BytesIO that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def rejected(data: object, **kwargs: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate_audio_file(data, **kwargs)  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------- inputs: bytes, paths, file objects


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_accepts_bytes_like(wrap: type) -> None:
    assert validate_audio_file(wrap(wav_bytes())) == "wav"


def test_accepts_path_and_str_path(tmp_path: Path) -> None:
    target = tmp_path / "song.flac"
    target.write_bytes(flac_bytes())
    assert validate_audio_file(target) is AudioFormat.FLAC
    assert validate_audio_file(str(target)) is AudioFormat.FLAC


def test_extension_is_ignored_content_decides(tmp_path: Path) -> None:
    lying = tmp_path / "song.mp3"
    lying.write_bytes(wav_bytes())
    assert validate_audio_file(lying) is AudioFormat.WAV
    png = tmp_path / "cover.mp3"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert "PNG image" in rejected(png).message


def test_accepts_open_file_and_restores_position(tmp_path: Path) -> None:
    target = tmp_path / "a.wav"
    target.write_bytes(wav_bytes(2000))
    with target.open("rb") as handle:
        handle.seek(123)
        assert validate_audio_file(handle) is AudioFormat.WAV
        assert handle.tell() == 123


def test_django_uploaded_file_with_lying_content_type() -> None:
    upload = SimpleUploadedFile("track.wav", mp3_with_id3(), content_type="audio/wav")
    upload.read(10)
    assert validate_audio_file(upload) is AudioFormat.MP3
    assert upload.tell() == 10


def test_position_restored_when_rejected() -> None:
    stream = io.BytesIO(b"%PDF-1.7 not audio at all" + b"\x00" * 100)
    stream.seek(7)
    with pytest.raises(ValidationError):
        validate_audio_file(stream)
    assert stream.tell() == 7


def test_reads_only_the_header_of_a_large_file() -> None:
    big = CountingBytesIO(wav_bytes(4 * MB))  # ~8 MB of samples
    assert validate_audio_file(big) is AudioFormat.WAV
    assert 0 < big.bytes_read <= 4096

    tagged = CountingBytesIO(id3_tag(3 * MB) + mp3_frames(1000))  # a 3 MB ID3 tag (cover art) is skipped, not read
    assert validate_audio_file(tagged) is AudioFormat.MP3
    assert 0 < tagged.bytes_read <= MAX_HEADER_BYTES
    assert tagged.bytes_read < 10_000


# --------------------------------------------------------------------------- size limits


@pytest.mark.parametrize("data", [b"", bytearray(), io.BytesIO(b"")], ids=["bytes", "bytearray", "stream"])
def test_empty_is_rejected(data: object) -> None:
    error = rejected(data)
    assert error.code == "EMPTY_FILE"
    assert error.details == {"size_bytes": 0}
    assert "empty" in error.message


def test_empty_path_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.touch()
    assert rejected(empty).code == "EMPTY_FILE"


def test_oversized_is_rejected_without_reading() -> None:
    data = wav_bytes(3 * MB)  # 6 MB
    stream = CountingBytesIO(data)
    error = rejected(stream, max_size_mb=5)
    assert error.code == "FILE_TOO_LARGE"
    assert error.details == {"size_bytes": len(data), "max_size_bytes": 5 * MB}
    assert "limit is 5 MB" in error.message
    assert stream.bytes_read == 0
    assert validate_audio_file(data, max_size_mb=6.5) is AudioFormat.WAV


def test_default_limit_is_ten_mebibytes() -> None:
    at_limit = mp3_frames() + b"\x00" * (10 * MB - len(mp3_frames()))
    assert validate_audio_file(at_limit) is AudioFormat.MP3
    assert rejected(at_limit + b"\x00").code == "FILE_TOO_LARGE"


@pytest.mark.parametrize(
    "limit", [0, -1, -0.0, True, False, "10", None, float("inf"), float("-inf"), float("nan"), 1j, b"10"]
)
def test_bad_limit_is_a_clear_validation_error(limit: object) -> None:
    """Issue 10, item 12: ``max_size_mb=inf`` gave OverflowError, NaN and the rest ValueError."""
    with pytest.raises(ValidationError) as info:
        validate_audio_file(wav_bytes(), max_size_mb=limit)  # type: ignore[arg-type]
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.details == {"field": "max_size_mb", "value": repr(limit)}
    assert "max_size_mb must be a positive, finite number" in info.value.message


def test_huge_finite_limit_does_not_overflow() -> None:
    assert validate_audio_file(wav_bytes(), max_size_mb=1e308) is AudioFormat.WAV
    assert validate_audio_file(wav_bytes(), max_size_mb=10**400) is AudioFormat.WAV
    assert validate_audio_file(wav_bytes(), max_size_mb=0.5) is AudioFormat.WAV


# --------------------------------------------------------------------------- unreadable inputs


def test_missing_path(tmp_path: Path) -> None:
    error = rejected(tmp_path / "nope.mp3")
    assert error.code == "NOT_FOUND"
    assert "'nope.mp3' does not exist" in error.message


def test_directory_path(tmp_path: Path) -> None:
    error = rejected(tmp_path)
    assert error.code == "UNREADABLE_FILE"
    assert error.details["reason"] == "not_a_file"


def test_os_errors_become_validation_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.wav"
    target.write_bytes(wav_bytes())

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    error = rejected(target)
    assert error.code == "UNREADABLE_FILE"
    assert "Permission denied" in error.message
    assert isinstance(error.__cause__, PermissionError)

    monkeypatch.setattr(Path, "stat", denied)
    assert rejected(target).details["reason"] == "os_error"


def test_text_mode_file(tmp_path: Path) -> None:
    target = tmp_path / "a.wav"
    target.write_bytes(b"RIFF plain ascii text")
    with target.open("r") as handle:
        handle.seek(3)
        error = rejected(handle)
        assert handle.tell() == 3
    assert error.code == "UNREADABLE_FILE"
    assert error.details["reason"] == "text_mode"


class Unseekable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        return 0


def test_unseekable_stream() -> None:
    error = rejected(Unseekable())
    assert error.code == "UNREADABLE_FILE"
    assert error.details["reason"] == "unseekable"


def test_closed_stream() -> None:
    stream = io.BytesIO(wav_bytes())
    stream.close()
    assert rejected(stream).details["reason"] == "unseekable"


def test_stream_whose_seek_returns_none() -> None:
    class OldStyle:
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._inner.read(size)

        def seek(self, offset: int, whence: int = 0) -> None:
            self._inner.seek(offset, whence)

        def tell(self) -> int:
            return self._inner.tell()

    stream = OldStyle(flac_bytes())
    assert validate_audio_file(stream) is AudioFormat.FLAC
    assert stream.tell() == 0


class FailingRead(io.BytesIO):
    """A seekable binary stream whose read() fails like a dropped network mount or upload."""

    def read(self, size: int | None = -1) -> bytes:
        raise OSError(5, "Input/output error")


def test_a_read_that_raises_is_unreadable_not_a_raw_os_error() -> None:
    """Issue 10, item 12: the stream's OSError escaped raw."""
    stream = FailingRead(wav_bytes())
    stream.seek(4)
    error = rejected(stream)
    assert error.code == "UNREADABLE_FILE"
    assert error.details == {"reason": "read_failed", "error": "OSError"}
    assert "Input/output error" in error.message
    assert stream.tell() == 4


class OddStream(io.BytesIO):
    """A stream whose read() or seek()/tell() answer with nonsense, or fail when asked to restore the position."""

    def __init__(self, data: bytes, *, read_result: object = None, tell_result: object = None, fail_restore=False):
        super().__init__(data)
        self.read_result, self.tell_result, self.fail_restore = read_result, tell_result, fail_restore
        if fail_restore:
            super().seek(5)  # the position to restore, never read from

    def read(self, size: int | None = -1) -> bytes:
        return self.read_result if self.read_result is not None else super().read(size)  # type: ignore[return-value]

    def tell(self) -> int:
        return self.tell_result if self.tell_result is not None else super().tell()  # type: ignore[return-value]

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.fail_restore and (offset, whence) == (5, 0):
            raise OSError(9, "Bad file descriptor")
        return super().seek(offset, whence)


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (OddStream(wav_bytes(), read_result=12), "read_failed"),
        (OddStream(wav_bytes(), read_result=[1, 2]), "read_failed"),
        (OddStream(b"", tell_result="0"), "unseekable"),
    ],
    ids=["read-int", "read-list", "tell-str"],
)
def test_nonsense_from_a_stream_is_unreadable(stream: OddStream, reason: str) -> None:
    assert rejected(stream).details["reason"] == reason


def test_a_read_returning_more_than_asked_is_cut() -> None:
    class Greedy(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(-1)

    assert validate_audio_file(Greedy(wav_bytes())) is AudioFormat.WAV


def test_a_position_that_cannot_be_restored_is_reported() -> None:
    stream = OddStream(flac_bytes(), fail_restore=True)
    error = rejected(stream)
    assert error.code == "UNREADABLE_FILE"
    assert error.details["reason"] == "restore_failed"


@pytest.mark.parametrize("path", ["song\x00.mp3", "/tmp/a\x00b", "\ud800.wav"], ids=["nul", "nul-dir", "surrogate"])
def test_a_path_that_cannot_name_a_file_is_a_validation_error(path: str) -> None:
    """Issue 10, item 12: a NUL in the path gave ``ValueError: embedded null byte``."""
    error = rejected(path)
    assert error.code == "UNREADABLE_FILE"
    assert error.details["reason"] == "invalid_path"
    assert error.details["path"] == repr(path)
    error = rejected(Path(path))
    assert error.details["reason"] == "invalid_path"


def test_a_pathlike_returning_bytes() -> None:
    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"/tmp/song.mp3"

    assert rejected(BytesPath()).details["reason"] == "invalid_path"


@pytest.mark.parametrize("value", [None, 42, 3.5, {"name": "song.mp3"}, ["a"]])
def test_unsupported_types(value: object) -> None:
    error = rejected(value)
    assert error.code == "UNREADABLE_FILE"
    assert error.details == {"reason": "unsupported_type", "type": type(value).__name__}


# --------------------------------------------------------------------------- prompts

GOOD_PROMPT = "A neon-lit city at night, rain on the streets, slow camera moves, synthwave mood."


def prompt_error(prompt: object, **kwargs: int) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate_prompt(prompt, **kwargs)
    assert info.value.code == "INVALID_PROMPT"
    return info.value


def test_prompt_is_returned_stripped() -> None:
    assert validate_prompt(f"  \n{GOOD_PROMPT}\t ") == GOOD_PROMPT


def test_prompt_bounds_are_inclusive_after_strip() -> None:
    assert validate_prompt("  " + "x" * 50 + "  ") == "x" * 50
    assert validate_prompt("x" * 500) == "x" * 500
    assert prompt_error("x" * 49 + " " * 10).details == {
        "reason": "too_short",
        "length": 49,
        "min_length": 50,
        "max_length": 500,
    }
    error = prompt_error("x" * 501)
    assert error.details["reason"] == "too_long"
    assert error.message == "Prompt is 501 characters long; it must be at most 500."


def test_prompt_custom_bounds() -> None:
    assert validate_prompt("short", min_length=1, max_length=5) == "short"
    assert prompt_error("toolong", min_length=1, max_length=5).details["reason"] == "too_long"
    assert validate_prompt("   ", min_length=0, max_length=5) == ""


def test_prompt_length_counts_characters_not_bytes() -> None:
    assert validate_prompt("é" * 50) == "é" * 50
    assert validate_prompt("🎵" * 500) == "🎵" * 500


@pytest.mark.parametrize("value", ["", "   ", "\n\t\r\n"])
def test_empty_prompt(value: str) -> None:
    error = prompt_error(value)
    assert error.details["reason"] == "empty"
    assert "Prompt is empty" in error.message


@pytest.mark.parametrize("value", [None, 42, b"x" * 60, ["x" * 60], {"prompt": "x"}])
def test_prompt_must_be_a_string(value: object) -> None:
    error = prompt_error(value)
    assert error.details == {"reason": "not_a_string", "type": type(value).__name__}


@pytest.mark.parametrize(
    ("char", "name"),
    [("\x00", "NUL"), ("\x07", "U+0007"), ("\x1b", "U+001B"), ("\x7f", "U+007F"), ("\x85", "U+0085")],
)
def test_control_characters_rejected(char: str, name: str) -> None:
    error = prompt_error(GOOD_PROMPT[:30] + char + GOOD_PROMPT[30:])
    assert error.details == {"reason": "control_character", "character": name, "position": 30}
    assert f"({name}) at position 30" in error.message


def test_newlines_and_tabs_allowed_crlf_normalised() -> None:
    text = "Verse one:\tslow pans over the sea.\r\nVerse two:\tthe storm arrives.\rChorus: lightning."
    result = validate_prompt(text)
    assert "\r" not in result
    assert result == "Verse one:\tslow pans over the sea.\nVerse two:\tthe storm arrives.\nChorus: lightning."


def test_zero_width_joiner_emoji_allowed() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert family in validate_prompt(GOOD_PROMPT + " " + family)


def test_lone_surrogate_rejected() -> None:
    error = prompt_error(GOOD_PROMPT + "\ud800")
    assert error.details["reason"] == "invalid_unicode"
    assert error.details["character"] == "U+D800"


@pytest.mark.parametrize(
    ("low", "high"), [(-1, 10), (10, -1), (20, 10), (float("nan"), 10), ("5", 10), (True, 10), (1, None), (1.5, 10)]
)
def test_bad_prompt_bounds(low: int, high: int) -> None:
    with pytest.raises(ValidationError, match="bad prompt bounds"):
        validate_prompt(GOOD_PROMPT, min_length=low, max_length=high)


# --------------------------------------------------------------------------- file sizes


def test_file_size_within_limit() -> None:
    assert validate_file_size(0, 10) is None
    assert validate_file_size(10 * MB, max_size_bytes=10 * MB) is None


def test_file_size_too_large() -> None:
    with pytest.raises(ValidationError) as info:
        validate_file_size(10 * MB + 1, max_size_bytes=10 * MB)
    assert info.value.code == "FILE_TOO_LARGE"
    assert info.value.details == {"size_bytes": 10 * MB + 1, "max_size_bytes": 10 * MB}
    assert info.value.message == "File is 10 MB; the limit is 10 MB."
    with pytest.raises(ValidationError, match=r"File is 2\.0 KB; the limit is 1\.0 KB\."):
        validate_file_size(2048, 1024)
    with pytest.raises(ValidationError, match=r"File is 11 bytes; the limit is 10 bytes\."):
        validate_file_size(11, 10)
    with pytest.raises(ValidationError, match=r"File is 15\.5 MB; the limit is 10 MB\."):
        validate_file_size(int(15.5 * MB), 10 * MB)


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        (-1, "negative"),
        (True, "not_an_integer"),
        (False, "not_an_integer"),
        (1.0, "not_an_integer"),
        ("10", "not_an_integer"),
        (None, "not_an_integer"),
    ],
)
def test_file_size_bad_values(size: object, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_file_size(size, 100)  # type: ignore[arg-type]
    assert info.value.code == "INVALID_FILE_SIZE"
    assert info.value.details["reason"] == reason


@pytest.mark.parametrize("limit", [-1, True, 1.5, "10", None, float("inf"), float("nan"), 10.0])
def test_file_size_bad_limit(limit: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_file_size(1, limit)  # type: ignore[arg-type]
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.details == {"field": "max_size_bytes", "value": repr(limit)}
    assert "max_size_bytes must be a non-negative whole number of bytes" in info.value.message


def test_file_size_huge_values() -> None:
    assert validate_file_size(10**30, 10**40) is None
    with pytest.raises(ValidationError) as info:
        validate_file_size(10**400, 10**30)
    assert info.value.code == "FILE_TOO_LARGE"
    assert "limit is" in info.value.message
    for size in (float("inf"), float("nan")):
        with pytest.raises(ValidationError) as info:
            validate_file_size(size, 100)  # type: ignore[arg-type]
        assert info.value.details["reason"] == "not_an_integer"


# --------------------------------------------------------------------------- package exports


def test_short_imports_from_common() -> None:
    assert common.validate_audio_file is validate_audio_file
    assert common.validate_prompt is validate_prompt
    assert common.validate_file_size is validate_file_size
    assert common.AudioFormat is AudioFormat
