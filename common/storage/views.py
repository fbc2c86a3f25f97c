"""The view that serves local-storage files for a valid signed URL."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponseBase, HttpResponseForbidden
from django.views.decorators.http import require_GET

from common.errors import PipelineError
from common.storage.buckets import BUCKETS
from common.storage.content_types import detect_content_type
from common.storage.local import LocalBucketStorage, read_signed_token
from common.storage.paths import clean_object_path

__all__ = ["signed_download"]


@require_GET
def signed_download(request: HttpRequest, bucket: str, path: str) -> HttpResponseBase:
    """Serve ``bucket/path`` when ``?token=`` signs exactly that bucket and path and has not expired.

    A missing, tampered, expired or re-targeted token gets 403; a valid token for a
    file that is gone gets 404.
    """
    token = request.GET.get("token", "")
    if not token or not read_signed_token(token, bucket=bucket, path=path):
        return HttpResponseForbidden("This link is invalid or has expired.", content_type="text/plain")
    if bucket not in BUCKETS:
        raise Http404("No such bucket.")
    from common.storage.facade import get_bucket_storage

    try:
        clean_object_path(path)
        storage = get_bucket_storage(bucket)
    except PipelineError as exc:
        raise Http404("No such file.") from exc
    if not isinstance(storage, LocalBucketStorage):
        raise Http404("This bucket is not stored locally.")
    try:
        head = storage.open(path, "rb")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise Http404("No such file.") from exc
    sample = head.read(4096)
    head.seek(0)
    response = FileResponse(head, content_type=detect_content_type(sample, path))
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
