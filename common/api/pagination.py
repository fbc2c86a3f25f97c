"""Cursor pagination of job lists: newest first, stable while new jobs arrive, no COUNT(*)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

__all__ = ["JobCursorPagination"]


class JobCursorPagination(CursorPagination):
    """``?cursor=...&page_size=N`` (1..100, default 20) over jobs ordered by ``-created_at``.

    A cursor (rather than page numbers) keeps pages stable while a user's new
    jobs are being created, costs no ``COUNT(*)`` and no deep ``OFFSET``. A bad
    cursor or page size is a 400 naming the parameter, not a silent fallback.
    """

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        """The requested page size, capped at ``max_page_size``.

        Raises:
            ValidationError: ``page_size`` is not a positive integer.
        """
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"Must be an integer from 1 to {self.max_page_size}."]}
            )
        return min(value, self.max_page_size)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """Decode ``?cursor=``; an invalid one is a 400 (DRF answers 404)."""
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from None
