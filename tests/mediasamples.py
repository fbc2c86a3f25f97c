"""Audio byte strings built header by header (MP3 frames and ID3 tags, WAV chunks, FLAC STREAMINFO) for the tests."""

from __future__ import annotations

import io
import struct
import wave

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
