"""The four storage buckets, their limits, and the ``STORAGES`` entries that configure them.

Importable from ``videogen/settings.py``: it imports nothing from Django's app registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUDIO_UPLOADS",
    "BUCKETS",
    "REFERENCE_IMAGES",
    "VIDEO_CLIPS",
    "VIDEO_OUTPUTS",
    "Bucket",
    "bucket_storages",
    "supabase_selected",
]

MB = 1024 * 1024

LOCAL_BACKEND = "common.storage.local.LocalBucketStorage"
SUPABASE_BACKEND = "common.storage.supabase.SupabaseStorage"


@dataclass(frozen=True)
class Bucket:
    """One private bucket: its name, the largest object it accepts and the content types it allows."""

    name: str
    max_size: int
    allowed_content_types: tuple[str, ...]
    description: str
    public: bool = False

    def options(self) -> dict[str, Any]:
        """Return the ``STORAGES[...]["OPTIONS"]`` for this bucket."""
        return {
            "bucket": self.name,
            "max_size": self.max_size,
            "allowed_content_types": list(self.allowed_content_types),
        }


AUDIO_UPLOADS = Bucket(
    "audio-uploads",
    max_size=10 * MB,
    allowed_content_types=("audio/mpeg", "audio/wav", "audio/flac"),
    description="User-uploaded songs (MP3, WAV, FLAC)",
)
REFERENCE_IMAGES = Bucket(
    "reference-images",
    max_size=20 * MB,
    allowed_content_types=("image/png", "image/jpeg", "image/webp"),
    description="Generated reference images",
)
VIDEO_CLIPS = Bucket(
    "video-clips",
    max_size=200 * MB,
    allowed_content_types=("video/mp4", "video/webm", "video/quicktime"),
    description="Generated video clips",
)
VIDEO_OUTPUTS = Bucket(
    "video-outputs",
    max_size=1024 * MB,
    allowed_content_types=("video/mp4", "video/webm", "video/quicktime"),
    description="Final composed videos",
)

BUCKETS: dict[str, Bucket] = {b.name: b for b in (AUDIO_UPLOADS, REFERENCE_IMAGES, VIDEO_CLIPS, VIDEO_OUTPUTS)}


def bucket_storages(*, supabase: bool) -> dict[str, dict[str, Any]]:
    """Return one ``STORAGES`` entry per bucket: Supabase Storage when ``supabase``, else local files."""
    backend = SUPABASE_BACKEND if supabase else LOCAL_BACKEND
    return {name: {"BACKEND": backend, "OPTIONS": bucket.options()} for name, bucket in BUCKETS.items()}


def supabase_selected(env: Any, problems: Iterable[Any] = ()) -> bool:
    """True when the environment asks for Supabase Storage: ``SUPABASE_URL`` or ``SUPABASE_SERVICE_KEY`` is given.

    A given but invalid value (``SUPABASE_SERVICE_KEY=abc``) still selects Supabase: every storage call
    then refuses with ``ConfigError`` naming the problem, instead of silently storing files locally.
    ``env`` and ``problems`` are what ``common.env.load_env_settings(strict=False)`` returns.
    """
    given = {getattr(p, "variable", None) for p in problems}
    return (
        getattr(env, "supabase_url", None) is not None
        or getattr(env, "supabase_service_key", None) is not None
        or bool(given & {"SUPABASE_URL", "SUPABASE_SERVICE_KEY"})
    )
