"""Tests for common.validation: audio detection by content, prompts, file sizes."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

import common
from common import validation
from common.errors import ValidationError, get_user_friendly_message
from common.validation import (
    MAX_HEADER_BYTES,
    AudioFormat,
    validate_audio_file,
    validate_file_size,
    validate_prompt,
)

MB = 1024 * 1024

# MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding, stereo: a 417-byte frame.
MP3_FRAME_HEADER = bytes([0xFF, 0xFB, 0x90, 0x64])


def mp3_frames(count: int = 3) -> bytes:
    return (MP3_FRAME_HEADER + b"\x00" * 413) * count


def id3_tag(body_size: int = 100, *, major: int = 3, flags: int = 0) -> bytes:
    size = body_size
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3" + bytes([major, 0, flags]) + syncsafe + b"\x00" * body_size


def mp3_with_id3(body_size: int = 100, **kwargs: int) -> bytes:
    return id3_tag(body_size, **kwargs) + mp3_frames()


def wav_bytes(frames: int = 100, *, channels: int = 1, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * frames * channels)
    return buffer.getvalue()


def riff(form: bytes, *chunks: tuple[bytes, bytes]) -> bytes:
    body = form
    for chunk_id, data in chunks:
        body += chunk_id + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(channels: int = 2, rate: int = 44100, bits: int = 16) -> bytes:
    block_align = channels * bits // 8
    return struct.pack("<HHIIHH", 1, channels, rate, rate * block_align, block_align, bits)


def streaminfo(*, rate: int = 44100, min_block: int = 4096, max_block: int = 4096) -> bytes:
    packed = (rate << 44) | (1 << 41) | (15 << 36) | 1000
    return struct.pack(">HH", min_block, max_block) + b"\x00" * 6 + packed.to_bytes(8, "big") + b"\x00" * 16


def flac_bytes(*, block_type: int = 0, length: int = 34, info: bytes | None = None) -> bytes:
    info = streaminfo() if info is None else info
    return b"fLaC" + bytes([0x80 | block_type]) + length.to_bytes(3, "big") + info + b"\x00" * 64


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


# --------------------------------------------------------------------------- accepted formats


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (mp3_frames(), AudioFormat.MP3),
        (mp3_with_id3(), AudioFormat.MP3),
        (mp3_with_id3(2000, major=4), AudioFormat.MP3),
        (mp3_with_id3(50, major=2), AudioFormat.MP3),
        (id3_tag(100, major=4, flags=0x10) + b"3DI" + b"\x00" * 7 + mp3_frames(), AudioFormat.MP3),
        (id3_tag(100) + b"\x00" * 300 + mp3_frames(), AudioFormat.MP3),  # padding outside the declared size
        (id3_tag(20) + id3_tag(30) + mp3_frames(), AudioFormat.MP3),  # two tags in a row
        (bytes([0xFF, 0xF3, 0x64, 0xC4]) + b"\x00" * 200, AudioFormat.MP3),  # MPEG-2 Layer III
        (bytes([0xFF, 0xE3, 0x18, 0xC4]) + b"\x00" * 200, AudioFormat.MP3),  # MPEG-2.5 Layer III
        (wav_bytes(), AudioFormat.WAV),
        (wav_bytes(channels=2, rate=48000), AudioFormat.WAV),
        (riff(b"WAVE", (b"JUNK", b"\x00" * 27), (b"fmt ", fmt_chunk()), (b"data", b"\x00" * 8)), AudioFormat.WAV),
        (riff(b"WAVE", (b"LIST", b"x" * 5000), (b"fmt ", fmt_chunk(1, 8000, 8))), AudioFormat.WAV),
        (flac_bytes(), AudioFormat.FLAC),
        (id3_tag(64) + flac_bytes(), AudioFormat.FLAC),  # some taggers prepend ID3 to FLAC
    ],
    ids=[
        "mp3-bare",
        "mp3-id3v2.3",
        "mp3-id3v2.4",
        "mp3-id3v2.2",
        "mp3-id3v2.4-footer",
        "mp3-id3-padding",
        "mp3-two-id3-tags",
        "mp3-mpeg2",
        "mp3-mpeg2.5",
        "wav-mono",
        "wav-stereo-48k",
        "wav-junk-chunk-odd-size",
        "wav-big-list-chunk",
        "flac",
        "flac-after-id3",
    ],
)
def test_detects_supported_formats(data: bytes, expected: AudioFormat) -> None:
    result = validate_audio_file(data)
    assert result is expected
    assert result == expected.value  # a StrEnum: compares equal to "mp3", "wav", "flac"


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


def test_header_budget_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "MAX_HEADER_BYTES", 100)
    error = rejected(id3_tag(20) + mp3_frames())
    assert error.code == "INVALID_AUDIO"
    assert error.details["reason"] == "header_too_long"


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


# --------------------------------------------------------------------------- rejected content


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "looks like a PNG image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "looks like a JPEG image"),
        (b"GIF89a" + b"\x00" * 40, "looks like a GIF image"),
        (b"%PDF-1.4\n", "looks like a PDF document"),
        (b"PK\x03\x04" + b"\x00" * 40, "looks like a ZIP archive"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 20, "looks like a gzip archive"),
        (b"OggS\x00\x02" + b"\x00" * 40, "looks like an Ogg file"),
        (b"\x1aE\xdf\xa3" + b"\x00" * 40, "looks like a Matroska/WebM file"),
        (b"MThd\x00\x00\x00\x06", "looks like a MIDI file"),
        (b"\x7fELF\x02\x01\x01", "looks like an ELF executable"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "looks like an MP4/M4A/MOV file (brand 'M4A'"),
        (b"FORM\x00\x00\x10\x00AIFFCOMM", "looks like an AIFF audio file"),
        (bytes([0xFF, 0xF1, 0x50, 0x80]) + b"\x00" * 20, "looks like AAC audio in ADTS frames"),
        (riff(b"AVI ", (b"LIST", b"\x00" * 8)), "looks like an AVI video"),
        (riff(b"WEBP", (b"VP8 ", b"\x00" * 8)), "looks like a WebP image"),
        (riff(b"ABCD", (b"LIST", b"\x00" * 8)), "a RIFF file of type 'ABCD', not WAVE"),
        (b"<!DOCTYPE html><html>", "looks like an HTML or XML document"),
        (b'{"audio": "not really"}', "looks like JSON text"),
        (b"hello, this is just some text\n", "looks like plain text"),
        ("é".encode() * 40, "looks like plain text"),  # 80 bytes: the 64-byte window cuts nothing
        (b"a" * 63 + "é".encode(), "looks like plain text"),  # the window cuts a 2-byte character
        (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", "unknown content starting with 0x0001020304050607"),
        (b"\xff", "unknown content starting with 0xff"),
    ],
)
def test_other_content_is_named(data: bytes, found: str) -> None:
    error = rejected(data)
    assert error.code == "INVALID_AUDIO"
    assert found in error.message
    assert error.message.startswith("Not a supported audio file (MP3, WAV or FLAC): ")
    assert found.split("(")[0].strip() in error.details["found"] or found in error.message
    assert get_user_friendly_message(error.code) == "The audio file is not a supported MP3, WAV or FLAC file."


def test_invalid_utf8_is_unknown_content() -> None:
    data = b"\xc3\x28" + b"a" * 70
    assert "unknown content starting with 0xc328" in rejected(data).message


def test_rejection_details_carry_the_header_hex() -> None:
    error = rejected(b"\x89PNG\r\n\x1a\n" + b"\x01" * 40)
    assert error.details["header_hex"] == "89504e470d0a1a0a0101010101010101"
    assert error.details["reason"] == "unsupported"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (bytes([0xFF, 0xEB, 0x90, 0x64]), "reserved MPEG version bits"),
        (bytes([0xFF, 0xE1, 0x90, 0x64]), "reserved MPEG layer bits"),  # MPEG-2.5 with layer 00 (not ADTS)
        (bytes([0xFF, 0xFD, 0x90, 0x64]), "MPEG Layer II audio (MP2), not MP3"),
        (bytes([0xFF, 0xFF, 0x90, 0x64]), "MPEG Layer I audio (MP1), not MP3"),
        (bytes([0xFF, 0xFB, 0xF0, 0x64]), "invalid MPEG bitrate index"),
        (bytes([0xFF, 0xFB, 0x9C, 0x64]), "reserved MPEG sample-rate index"),
        (bytes([0xFF, 0xFB, 0x90, 0x66]), "reserved MPEG emphasis bits"),
    ],
)
def test_malformed_mpeg_frame_headers(header: bytes, problem: str) -> None:
    error = rejected(header + b"\x00" * 20)
    assert error.code == "INVALID_AUDIO"
    assert problem in error.message
    assert error.details["reason"] == "malformed"


def test_mpeg2_adts_sync_is_named_aac() -> None:
    # 0xFFF9: layer bits 00 with the MPEG-2 version bit; this is how AAC ADTS frames start.
    assert "AAC audio in ADTS frames" in rejected(bytes([0xFF, 0xF9, 0x50, 0x80]) + b"\x00" * 20).message


# --------------------------------------------------------------------------- truncated


@pytest.mark.parametrize(
    ("data", "fmt", "needed"),
    [
        (b"ID3\x03\x00", "mp3", 10),
        (b"ID", "mp3", 10),
        (b"RIFF\x10\x00", "wav", 12),
        (b"RI", "wav", 12),
        (b"RIFF\x04\x00\x00\x00WAVE", "wav", 20),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "wav", 36),
        (b"fLaC\x80\x00\x00\x22" + b"\x00" * 10, "flac", 42),
        (b"fLa", "flac", 42),
        (b"\xff\xfb\x90", "mp3", 4),
    ],
)
def test_truncated_headers(data: bytes, fmt: str, needed: int) -> None:
    error = rejected(data)
    assert error.code == "INVALID_AUDIO"
    assert error.details["reason"] == "truncated"
    assert error.details["format"] == fmt
    assert error.details["needed_bytes"] == needed
    assert error.details["size_bytes"] == len(data)
    assert "truncated" in error.message


def test_id3_tag_larger_than_the_file() -> None:
    data = id3_tag(1000)[:500]
    error = rejected(data)
    assert error.details["reason"] == "truncated"
    assert "ID3 tag of 1010 bytes with no audio after it (the file has 500 bytes)" in error.message


def test_id3_followed_only_by_padding() -> None:
    error = rejected(id3_tag(10) + b"\x00" * 50)
    assert error.details["reason"] == "truncated"
    assert "followed only by padding" in error.message


def test_id3_followed_by_a_cut_frame_header() -> None:
    data = id3_tag(10) + b"\xff\xfb"
    error = rejected(data)
    assert error.details["reason"] == "truncated"
    assert error.details["needed_bytes"] == len(data) + 2


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (id3_tag(10) + b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "an ID3 tag followed by a PNG image"),
        (id3_tag(10) + b"garbage!" * 4, "an ID3 tag followed by plain text"),
        (id3_tag(10) + b"\x01\x02\x03\x04\x05", "an ID3 tag followed by no MPEG frame sync"),
        (id3_tag(10) + bytes([0xFF, 0xFD, 0x90, 0x64]), "an ID3 tag followed by MPEG Layer II audio"),
        (b"ID3\x05\x00\x00\x00\x00\x00\x10" + mp3_frames(), "a malformed ID3v2 tag header"),
        (b"ID3\x03\xff\x00\x00\x00\x00\x10" + mp3_frames(), "a malformed ID3v2 tag header"),
        (b"ID3\x03\x00\x00\x00\x00\x80\x10" + mp3_frames(), "a malformed ID3v2 tag header"),
    ],
)
def test_bad_id3_content(data: bytes, found: str) -> None:
    error = rejected(data)
    assert error.code == "INVALID_AUDIO"
    assert found in error.message


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (riff(b"WAVE", (b"fmt ", fmt_chunk()[:12])), "a WAV fmt chunk of 12 bytes (at least 16 needed)"),
        (riff(b"WAVE", (b"fmt ", fmt_chunk(channels=0))), "a WAV fmt chunk with 0 channels at 44100 Hz"),
        (riff(b"WAVE", (b"fmt ", fmt_chunk(rate=0))), "a WAV fmt chunk with 2 channels at 0 Hz"),
        (riff(b"WAVE", (b"data", b"\x00" * 8), (b"fmt ", fmt_chunk())), "data chunk comes before its fmt chunk"),
        (riff(b"WAVE", *[(b"JUNK", b"") for _ in range(40)]), "no fmt chunk in its first 32 chunks"),
    ],
)
def test_malformed_wav(data: bytes, found: str) -> None:
    error = rejected(data)
    assert error.details["reason"] == "malformed"
    assert found in error.message


def test_wav_cut_inside_a_later_chunk_header() -> None:
    data = riff(b"WAVE", (b"JUNK", b"\x00" * 4)) + b"fm"
    error = rejected(data)
    assert error.details["reason"] == "truncated"
    assert error.details["needed_bytes"] == 32


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (flac_bytes(block_type=4), "first metadata block is not STREAMINFO"),
        (flac_bytes(length=40), "first metadata block is not STREAMINFO"),
        (flac_bytes(info=streaminfo(rate=0)), "impossible values"),
        (flac_bytes(info=streaminfo(min_block=8, max_block=8)), "impossible values"),
        (flac_bytes(info=streaminfo(min_block=4096, max_block=1024)), "impossible values"),
    ],
)
def test_malformed_flac(data: bytes, found: str) -> None:
    error = rejected(data)
    assert error.details["reason"] == "malformed"
    assert found in error.message


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


@pytest.mark.parametrize(
    "code",
    [
        "EMPTY_FILE",
        "FILE_TOO_LARGE",
        "INVALID_AUDIO",
        "UNREADABLE_FILE",
        "NOT_FOUND",
        "INVALID_FILE_SIZE",
        "INVALID_PROMPT",
    ],
)
def test_every_validation_code_has_a_friendly_message(code: str) -> None:
    from common.errors import _FALLBACK_MESSAGE

    assert get_user_friendly_message(code) != _FALLBACK_MESSAGE


def test_at_most_four_id3_tags_are_skipped() -> None:
    assert validate_audio_file(id3_tag(5) * 4 + mp3_frames()) is AudioFormat.MP3
    error = rejected(id3_tag(5) * 5 + mp3_frames())
    assert error.details["reason"] == "malformed"
    assert "an ID3 tag followed by" in error.message
