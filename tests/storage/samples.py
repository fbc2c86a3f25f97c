"""Small byte strings with the magic numbers (and, for audio, valid headers) of each supported format."""

import struct

MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" + bytes(200)
MP3_FRAME = b"\xff\xfb\x90\x00" + bytes(200)
_FMT = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)  # PCM, stereo, 44.1 kHz, 16 bit
WAV = b"RIFF" + struct.pack("<I", 236) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + _FMT + b"data"
WAV += struct.pack("<I", 200) + bytes(200)
# STREAMINFO: block sizes 4096, frame sizes unknown, 44100 Hz, 2 channels, 16 bits, no sample count, no MD5.
_STREAMINFO = struct.pack(">HH", 4096, 4096) + bytes(6) + bytes([0x0A, 0xC4, 0x42, 0xF0]) + bytes(4) + bytes(16)
FLAC = b"fLaC" + bytes([0x80, 0x00, 0x00, 0x22]) + _STREAMINFO + bytes(200)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100)
WEBP = b"RIFF" + (100).to_bytes(4, "little") + b"WEBPVP8 " + bytes(100)
GIF = b"GIF89a" + bytes(50)
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(100)
MOV = b"\x00\x00\x00\x14ftypqt  " + bytes(100)
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(100)
MKV = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska" + bytes(100)
OGG = b"OggS\x00\x02" + bytes(100)
JSON = b'  {"scenes": [1, 2, 3]}'


def mp4_of(size: int) -> bytes:
    """An MP4-looking object of exactly ``size`` bytes (the header, then a repeating pattern)."""
    pattern = bytes(range(256)) * 4
    body = (pattern * (size // len(pattern) + 1))[: size - len(MP4)]
    return MP4 + body
