"""Tests for common.media: one signature table, read by storage's sniffer and by the strict audio parser.

``sniff_content_type`` names what storage records; ``read_audio_format`` accepts MP3, WAV and FLAC headers
and names anything else in its ``INVALID_AUDIO`` message. The two agree on what a file is.
"""

from __future__ import annotations

import pytest

from common import media
from common.errors import ValidationError, get_user_friendly_message
from common.media import AudioFormat, read_audio_format, sniff_content_type
from tests.mediasamples import flac_bytes, fmt_chunk, id3_tag, mp3_frames, mp3_with_id3, riff, streaminfo, wav_bytes
from tests.storage import samples


def audio_format(data: bytes) -> AudioFormat:
    """The format :func:`read_audio_format` finds in ``data`` (read from memory, as validate_audio_file does)."""
    return read_audio_format(lambda offset, length: data[offset : offset + length], len(data))


def rejected(data: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        audio_format(data)
    return info.value


# --------------------------------------------------------------------------- one table, two readers


@pytest.mark.parametrize(
    ("data", "content_type", "found"),
    [
        (samples.PNG, "image/png", "looks like a PNG image"),
        (samples.JPEG, "image/jpeg", "looks like a JPEG image"),
        (samples.GIF, "image/gif", "looks like a GIF image"),
        (samples.WEBP, "image/webp", "looks like a WebP image"),
        (samples.MP4, "video/mp4", "looks like an MP4/M4A/MOV file (brand 'isom'; AAC/ALAC audio is not supported)"),
        (
            samples.MOV,
            "video/quicktime",
            "looks like an MP4/M4A/MOV file (brand 'qt'; AAC/ALAC audio is not supported)",
        ),
        (samples.WEBM, "video/webm", "looks like a Matroska/WebM file"),
        (samples.MKV, "video/x-matroska", "looks like a Matroska/WebM file"),
        (samples.OGG, "audio/ogg", "looks like an Ogg file (Vorbis/Opus are not supported)"),
        (b"%PDF-1.7\n", "application/pdf", "looks like a PDF document"),
    ],
)
def test_what_storage_records_is_what_the_audio_refusal_names(data: bytes, content_type: str, found: str) -> None:
    assert sniff_content_type(data) == content_type
    error = rejected(data)
    assert error.code == "INVALID_AUDIO"
    assert error.details["found"] == found


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (samples.MP3, AudioFormat.MP3),
        (samples.MP3_FRAME, AudioFormat.MP3),
        (samples.WAV, AudioFormat.WAV),
        (samples.FLAC, AudioFormat.FLAC),
        (wav_bytes(), AudioFormat.WAV),
        (flac_bytes(), AudioFormat.FLAC),
    ],
)
def test_the_audio_storage_sniffs_is_the_audio_the_parser_accepts(data: bytes, expected: AudioFormat) -> None:
    assert audio_format(data) is expected
    assert sniff_content_type(data) == expected.content_type


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"PK\x03\x04" + bytes(40), "looks like a ZIP archive (or an Office document)"),
        (b"\x1f\x8b\x08\x00" + bytes(20), "looks like a gzip archive"),
        (b"\x7fELF\x02\x01\x01", "looks like an ELF executable"),
        (b"FORM\x00\x00\x10\x00AIFFCOMM", "looks like an AIFF audio file"),
        (riff(b"RMID", (b"data", bytes(8))), "looks like a RIFF MIDI file"),
        (b"\x00\x00\x00\x18ftyp", "looks like an MP4/M4A/MOV file (brand ''; AAC/ALAC audio is not supported)"),
    ],
)
def test_content_that_is_only_named_is_not_sniffed(data: bytes, found: str) -> None:
    # Storage then falls back to the file's extension (a .docx is a ZIP archive, named by its extension).
    assert rejected(data).details["found"] == found
    assert sniff_content_type(data) is None


def test_a_zip_archive_does_not_hide_a_later_signature_from_the_sniffer() -> None:
    # Rows without a MIME type never stop the sniffer: it looks further down the table, as before the merge.
    assert sniff_content_type(b"PK\x03\x04ftypisom" + bytes(20)) == "video/mp4"


def test_a_matroska_file_is_matroska_whatever_its_bytes_4_to_8_say() -> None:
    """Decision (issue 13): the EBML magic at offset 0 wins over an "ftyp" box at offset 4 for both readers.

    Before the merge the storage sniffer said video/mp4 here and the validator said Matroska.
    """
    data = b"\x1aE\xdf\xa3ftypisom" + bytes(40)
    assert sniff_content_type(data) == "video/x-matroska"
    assert rejected(data).details["found"] == "looks like a Matroska/WebM file"


def test_an_id3_tag_followed_by_a_webp_image_names_it() -> None:
    """Decision (issue 13): after an ID3 tag the RIFF forms of the table are named too.

    Before the merge this said "an ID3 tag followed by no MPEG frame sync".
    """
    error = rejected(id3_tag(10) + riff(b"WEBP", (b"VP8 ", bytes(8))))
    assert error.details["found"] == "an ID3 tag followed by a WebP image"
    assert error.details["reason"] == "malformed"


def test_json_is_sniffed_by_parsing_it() -> None:
    assert sniff_content_type(samples.JSON) == "application/json"
    assert sniff_content_type(b" " * 70 + b"{}") is None  # only the first 64 bytes are looked at for the brace
    assert sniff_content_type(b"[" + b"1," * 600_000 + b"1]") is None  # over 1 MiB: not parsed
    assert rejected(samples.JSON).details["found"] == "looks like JSON text"


# --------------------------------------------------------------------------- the strict audio parser


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
    result = audio_format(data)
    assert result is expected
    assert result == expected.value  # a StrEnum: compares equal to "mp3", "wav", "flac"


def test_header_budget_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "MAX_HEADER_BYTES", 100)
    error = rejected(id3_tag(20) + mp3_frames())
    assert error.code == "INVALID_AUDIO"
    assert error.details["reason"] == "header_too_long"


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


def test_at_most_four_id3_tags_are_skipped() -> None:
    assert audio_format(id3_tag(5) * 4 + mp3_frames()) is AudioFormat.MP3
    error = rejected(id3_tag(5) * 5 + mp3_frames())
    assert error.details["reason"] == "malformed"
    assert "an ID3 tag followed by" in error.message
