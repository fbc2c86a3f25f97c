"""File storage: four private buckets behind Django's storage API (local files or Supabase Storage).

``from common.storage import upload_file`` etc. give the bucket facade; the
backends are :class:`common.storage.local.LocalBucketStorage` and
:class:`common.storage.supabase.SupabaseStorage`. Names load lazily (PEP 562), so
``videogen/settings.py`` can import :mod:`common.storage.buckets` without loading Django parts.
"""

from __future__ import annotations

from common._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "BUCKETS": "common.storage.buckets",
    "Bucket": "common.storage.buckets",
    "detect_content_type": "common.storage.content_types",
    "clean_object_path": "common.storage.paths",
    "get_supabase_client": "common.storage.client",
    **dict.fromkeys(
        (
            "adelete_file",
            "adelete_prefix",
            "adownload_file",
            "adownload_to",
            "aexists",
            "aget_signed_url",
            "alist_files",
            "aupload_file",
            "delete_file",
            "delete_prefix",
            "download_file",
            "download_to",
            "exists",
            "get_bucket_storage",
            "get_signed_url",
            "list_files",
            "upload_file",
        ),
        "common.storage.facade",
    ),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
