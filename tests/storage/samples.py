"""Small byte strings with the magic numbers of each supported format."""

MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" + bytes(200)
MP3_FRAME = b"\xff\xfb\x90\x00" + bytes(200)
WAV = b"RIFF" + (236).to_bytes(4, "little") + b"WAVEfmt " + bytes(200)
FLAC = b"fLaC\x00\x00\x00\x22" + bytes(200)
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
