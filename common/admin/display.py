"""Small HTML pieces the console's lists and pages share: short ids, dollar amounts, the budget bar.

Every piece is built with ``format_html`` (values escaped) from the row itself: no query.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from common.money import format_dollars, format_money, format_share

__all__ = ["CONSOLE_CSS", "dollars", "exact_dollars", "moment", "share_bar", "short_id", "wrappable"]

# The console's stylesheet (colours from the admin's CSS variables, so both themes read).
CONSOLE_CSS = "common/console.css"
_STATE_WORDS = {"ok": "within budget", "near": "near its budget", "over": "over budget"}


def short_id(value: UUID | str | None) -> SafeString:
    """The first 8 hex digits of an id in monospace, the full id in the tooltip (and for screen readers)."""
    if value is None:
        return format_html("{}", "-")
    text = str(value)
    return format_html('<code class="vg-id" title="{}" aria-label="{}">{}</code>', text, text, text[:8])


def wrappable(name: str) -> SafeString:
    """A snake_case name that may break after its underscores (``reference_<wbr>generation``) in a narrow column."""
    return format_html_join(format_html("_<wbr>"), "{}", ((part,) for part in name.split("_")))


def dollars(amount: Decimal | None) -> SafeString:
    """An amount for a list: ``$1,234.57`` (cents), the exact figure in the tooltip."""
    if amount is None:
        return format_html("{}", "-")
    return format_html('<span class="vg-money" title="{}">{}</span>', format_money(amount), format_dollars(amount))


def exact_dollars(amount: Decimal) -> str:
    """An amount for a detail page: every decimal the ledger holds (``$0.0055``)."""
    return f"${format_money(amount)}"


def moment(value: datetime | None) -> SafeString:
    """A compact local date and time for a list (``2026-11-26 15:04``), the full ISO moment in the tooltip."""
    if value is None:
        return format_html("{}", "-")
    local = timezone.localtime(value)
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), local.isoformat(),
                       local.strftime("%Y-%m-%d %H:%M"))  # fmt: skip


def share_bar(share: Decimal | None, state: str) -> SafeString:
    """The share of a budget used as a small bar coloured by ``state``, with the percentage beside it.

    The colour is not the only sign: the percentage is printed, and the state is spelled out for
    screen readers and in the tooltip.
    """
    if share is None:
        return format_html('<span class="vg-share vg-share--{}" title="no budget">-</span>', state)
    width = max(min(share * 100, Decimal(100)), Decimal(0))
    label = format_share(share)
    return format_html(
        '<span class="vg-share vg-share--{}" title="{} used: {}">'
        '<span class="vg-share__track" aria-hidden="true"><span class="vg-share__fill" style="width: {}%"></span>'
        '</span> {}<span class="visually-hidden"> ({})</span></span>',
        state,
        label,
        _STATE_WORDS[state],
        f"{width:.1f}",
        label,
        _STATE_WORDS[state],
    )
