"""Keeping secrets out of every output: the :class:`Secret` wrapper and URL credential masking.

:mod:`common.env` wraps every secret value in :class:`Secret` and shows URLs through
:func:`mask_url`; :mod:`common.log` redacts the same credential names (``CREDENTIAL_PARAM_NAMES``)
and the values :func:`url_secrets` finds. Nothing here raises on a malformed URL: a URL that
cannot be parsed can still carry a password that must not be shown.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["CREDENTIAL_PARAM_NAMES", "MIN_REDACTED_LENGTH", "Secret", "mask_url", "url_pieces", "url_secrets"]

# Shorter values are not redacted: replacing every "abc" in the logs would hide more than it protects.
MIN_REDACTED_LENGTH = 8

# Query parameters that carry a credential (?password=, ?token=, ?key=, ?access_token=, ?X-Amz-Signature=, ...):
# long words match with any prefix (sslpassword, access_token), short ones alone or after "_"/"-" (api_key,
# x-api-key), so sortkey, keyword, monkey or token_type stay visible. common.log redacts the same names.
CREDENTIAL_PARAM_NAMES = (
    r"[a-z0-9_.-]*(?:password|passwd|secret|token|signature|credential)s?"
    r"|(?:[a-z0-9_.-]*[_-])?(?:key|apikey|sig|pwd|pass|auth)s?"
)
_CREDENTIAL_PARAM = re.compile(rf"(?:{CREDENTIAL_PARAM_NAMES})", re.IGNORECASE)
_QUERY_PAIR = re.compile(r"(^|[&;])([^&;=]+)=([^&;]*)")
_MASK = "***"


class Secret:
    """A string that never shows its value in ``repr``/``str``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)


def url_pieces(url: str) -> tuple[str, str, str, str]:
    """Split ``url`` into (before the netloc, netloc, path, rest from ``?``/``#``); never raises.

    A hand-rolled split, not ``urlsplit``: it must work on URLs ``urlsplit`` refuses (an unbalanced IPv6
    bracket), since a broken URL can still carry a password that must not be shown.
    """
    head, sep, tail = url.partition("://")
    if not sep:
        head, tail = "", url
    else:
        head += sep
    end = min((i for i in (tail.find("/"), tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    netloc, after = tail[:end], tail[end:]
    cut = min((i for i in (after.find("?"), after.find("#")) if i >= 0), default=len(after))
    return head, netloc, after[:cut], after[cut:]


def _is_credential(match: re.Match[str]) -> bool:
    return _CREDENTIAL_PARAM.fullmatch(unquote(match[2])) is not None


def mask_url(url: str) -> str:
    """Return ``url`` with its password and credential query values replaced by ``***``.

    Masked: ``user:password@``, and ``?password=``, ``?token=``, ``?key=``, ``?access_token=``,
    ``?api_key=``, ``?secret=``, ``?sig=``... (see ``CREDENTIAL_PARAM_NAMES``). The user, host, path and
    other parameters stay. Never raises, even for a URL ``urlsplit`` refuses.
    """
    head, netloc, path, rest = url_pieces(url)
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{_MASK}@{hostport}"
    if rest.startswith("?"):
        query, hash_, fragment = rest[1:].partition("#")
        query = _QUERY_PAIR.sub(lambda m: f"{m[1]}{m[2]}={_MASK}" if _is_credential(m) else m[0], query)
        rest = f"?{query}{hash_}{fragment}"
    return f"{head}{netloc}{path}{rest}"


def url_secrets(url: str | None) -> set[str]:
    """The password and credential query values of ``url``, as written and decoded, when long enough to redact."""
    _, netloc, _, rest = url_pieces((url or "").strip())
    userinfo, at, _ = netloc.rpartition("@")
    found = [userinfo.partition(":")[2]] if at and ":" in userinfo else []
    if rest.startswith("?"):
        found += [m[3] for m in _QUERY_PAIR.finditer(rest[1:].partition("#")[0]) if _is_credential(m)]
    return {form for value in found for form in (value, unquote(value)) if len(form) >= MIN_REDACTED_LENGTH}
