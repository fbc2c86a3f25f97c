"""Bar charts drawn on the server as inline SVG: no JavaScript, no library, no CDN.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` (what a screen reader
announces), one ``<rect class="vg-bar">`` per figure carrying the exact amount in ``data-value``
and a ``<title>`` tooltip, and the same figures as a table right after it, visually hidden
(the admin's ``visually-hidden``). Colours come from the admin's CSS variables through
``common/console.css`` (``currentColor`` for text), so the charts read in the light and the dark
theme. Geometry is computed in floats (pixels); the amounts shown are the exact decimals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from common.money import format_dollars, format_money

__all__ = ["Bar", "column_chart", "row_chart"]

COLUMN_WIDTH = 1000  # the per-day chart spans the page (about 1,000 px at 1,280)
ROW_WIDTH = 480  # the stage and API charts sit two abreast


@dataclasses.dataclass(frozen=True)
class Bar:
    """One figure of a chart: its label (a day, a stage, an API, ...) and its exact amount."""

    label: str
    value: Decimal
    short_label: str = ""


def _px(value: float) -> str:
    """A coordinate in CSS pixels of the viewBox, one decimal."""
    return f"{value:.1f}"


def _scale(bars: Sequence[Bar]) -> float:
    top = max((b.value for b in bars), default=Decimal(0))
    return float(top) if top > 0 else 1.0


def _text_table(chart_id: str, caption: str, key: str, bars: Sequence[Bar]) -> SafeString:
    rows = format_html_join(
        "", '<tr><th scope="row">{}</th><td>${}</td></tr>', ((b.label, format_money(b.value)) for b in bars)
    )
    return format_html(
        '<div class="visually-hidden"><table id="{}-table"><caption>{}</caption><thead><tr><th scope="col">{}</th>'
        '<th scope="col">spent</th></tr></thead><tbody>{}</tbody></table></div>',
        chart_id,
        caption,
        key,
        rows,
    )


def _describe(bars: Sequence[Bar]) -> str:
    if not bars:
        return "No spend in this period."
    top = max(bars, key=lambda b: b.value)
    total = sum((b.value for b in bars), Decimal(0))
    return (
        f"{len(bars)} bars, {format_dollars(total)} in all; the highest is {top.label} at {format_dollars(top.value)}."
    )


def _svg(chart_id: str, title: str, width: int, height: int, body: SafeString, bars: Sequence[Bar]) -> SafeString:
    return format_html(
        '<svg class="vg-chart" id="{}" role="img" aria-labelledby="{}-title {}-desc" viewBox="0 0 {} {}"'
        ' preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        chart_id,
        chart_id,
        chart_id,
        width,
        height,
        chart_id,
        title,
        chart_id,
        _describe(bars),
        body,
    )


def column_chart(chart_id: str, title: str, bars: Sequence[Bar], *, key: str = "day") -> SafeString:
    """Vertical columns left to right (spend per day): the highest amount on the axis, every 7th label below."""
    height, top, bottom, left, right = 200, 14, 172, 64, COLUMN_WIDTH - 24
    slot = (right - left) / max(len(bars), 1)
    scale = _scale(bars)
    highest = max((b.value for b in bars), default=Decimal(0))
    parts: list[SafeString] = [
        format_html('<line class="vg-axis" x1="{}" y1="{}" x2="{}" y2="{}"/>', left, bottom, right, bottom),
        format_html('<text x="{}" y="{}" text-anchor="end">{}</text>', left - 4, top + 4, format_dollars(highest)),
        format_html('<text x="{}" y="{}" text-anchor="end">$0</text>', left - 4, bottom),
    ]
    for n, bar in enumerate(bars):
        h = float(bar.value) / scale * (bottom - top)
        x = left + n * slot + slot * 0.15
        parts.append(
            format_html(
                '<rect class="vg-bar{}" data-label="{}" data-value="{}" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>",
                "" if bar.value else " vg-bar--zero",
                bar.label,
                format_money(bar.value),
                _px(x),
                _px(bottom - h),
                _px(slot * 0.7),
                _px(h),
                bar.label,
                format_dollars(bar.value),
            )
        )
        if (len(bars) - 1 - n) % 7 == 0:  # the last day, and every 7th day back from it
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle">{}</text>',
                    _px(x + slot * 0.35),
                    bottom + 16,
                    bar.short_label or bar.label,
                )
            )
    body = format_html_join("", "{}", ((p,) for p in parts))
    svg = _svg(chart_id, title, COLUMN_WIDTH, height, body, bars)
    return format_html("{}{}", svg, _text_table(chart_id, title, key, bars))


def row_chart(chart_id: str, title: str, bars: Sequence[Bar], *, key: str) -> SafeString:
    """Horizontal bars top to bottom (spend by stage, by API): label, bar, amount."""
    row, label_w, value_w = 24, 150, 70
    height = max(len(bars), 1) * row + 8
    scale = _scale(bars)
    span = ROW_WIDTH - label_w - value_w - 8
    parts: list[SafeString] = []
    if not bars:
        parts.append(format_html('<text x="{}" y="{}">{}</text>', 8, 18, "No spend in this period."))
    for n, bar in enumerate(bars):
        y = 4 + n * row
        w = float(bar.value) / scale * span
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect class="vg-bar" data-label="{}" data-value="{}" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>"
                '<text x="{}" y="{}">{}</text>',
                label_w - 6,
                y + 15,
                bar.label[:22],
                bar.label,
                format_money(bar.value),
                label_w,
                y + 3,
                _px(w),
                row - 8,
                bar.label,
                format_dollars(bar.value),
                _px(label_w + w + 6),
                y + 15,
                format_dollars(bar.value),
            )
        )
    body = format_html_join("", "{}", ((p,) for p in parts))
    svg = _svg(chart_id, title, ROW_WIDTH, height, body, bars)
    return format_html("{}{}", svg, _text_table(chart_id, title, key, bars))
