"""Cursor pagination of job lists: newest first, stable while new jobs arrive, no COUNT(*)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC
from typing import Any
from urllib.parse import parse_qsl

from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

__all__ = ["MAX_CURSOR_LENGTH", "PAGE_SIZE_SCHEMA", "JobCursorPagination"]

# DRF's cursors are standard base64 of "o=<offset>&r=1&p=<position>": a few dozen characters.
MAX_CURSOR_LENGTH = 512
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_DIGITS = re.compile(r"[0-9]{1,6}")
_CURSOR_KEYS = frozenset({"o", "r", "p"})
# The OpenAPI schema of ?page_size= (the bounds are those enforced below).
PAGE_SIZE_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}


class JobCursorPagination(CursorPagination):
    """``?cursor=...&page_size=N`` (1..100, default 20) over jobs ordered by ``-created_at``.

    A cursor (rather than page numbers) keeps pages stable while a user's new
    jobs are being created, costs no ``COUNT(*)`` and no deep ``OFFSET``. A bad
    cursor or page size is a 400 naming the parameter, never a silent fallback
    to the first page and never a 500: the cursor is decoded strictly (base64,
    only DRF's keys, each once, an offset within ``offset_cutoff``, and a
    position that is a timezone-aware timestamp the database can store).
    """

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    invalid_cursor_message = "Invalid cursor; follow the `next` or `previous` link of a page."

    def get_page_size(self, request: Request) -> int:
        """The requested page size.

        Raises:
            ValidationError: ``page_size`` is not an integer from 1 to ``max_page_size``.
        """
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        value = int(raw) if _DIGITS.fullmatch(raw) else 0
        if not 1 <= value <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"Must be an integer from 1 to {self.max_page_size}."]}
            )
        return value

    def decode_cursor(self, request: Request) -> Cursor | None:
        """Decode ``?cursor=`` strictly; anything DRF would not have written is a 400.

        Raises:
            ValidationError: the cursor is not one of ours.
        """
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None or encoded == "":
            return None
        try:
            return self._parse_cursor(encoded)
        except (ValueError, TypeError, OverflowError, binascii.Error):
            raise exceptions.ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from None

    def _parse_cursor(self, encoded: str) -> Cursor:
        if len(encoded) > MAX_CURSOR_LENGTH or not _BASE64.fullmatch(encoded):
            raise ValueError("not base64")
        querystring = base64.b64decode(encoded, validate=True).decode("ascii")
        pairs = parse_qsl(querystring, keep_blank_values=True, strict_parsing=True) if querystring else []
        tokens = dict(pairs)
        if len(tokens) != len(pairs) or not set(tokens) <= _CURSOR_KEYS:
            raise ValueError("unknown or repeated cursor keys")
        offset_text = tokens.get("o", "0")
        if not _DIGITS.fullmatch(offset_text) or int(offset_text) > self.offset_cutoff:
            raise ValueError("bad offset")
        if tokens.get("r", "0") not in ("0", "1"):
            raise ValueError("bad direction")
        position = tokens.get("p")
        if position is not None:
            moment = parse_datetime(position)
            if moment is None or moment.tzinfo is None:
                raise ValueError("bad position")
            moment.astimezone(UTC)  # OverflowError at the edges of the calendar (year 1 at +01:00...)
        # DRF's stubs type the position as int; DRF itself stores the ordering field's str() (a timestamp here).
        return Cursor(offset=int(offset_text), reverse=tokens.get("r") == "1", position=position)  # type: ignore[arg-type]
