"""Redaction of log lines: configured secrets, bearer tokens, URL credentials and key shapes.

:func:`redact` runs on every log record (:class:`common.log.JsonFormatter`), so each pattern is tried only
where the literal each of its matches contains occurs; the result is exactly the plain ``re.sub`` of every
pattern over the whole text (tests/test_log.py checks both agree on generated text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from common.masking import CREDENTIAL_PARAM_NAMES

__all__ = ["REDACTED", "as_in_json", "configured_secrets", "redact"]

REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
# URL credentials in query parameters (?password=, ?token=, ?key=, ?access_token=, &signature=, X-Amz-Signature=,
# Django signed "sig" ...: the names common.masking masks). The value stops at a backslash too, so redacting a
# serialised JSON line never eats an escape.
_URL_TOKEN = re.compile(rf"(?i)([?&;](?:{CREDENTIAL_PARAM_NAMES})=)[^&\s\"'\\]+")
# The password of scheme://user:password@host (up to the last "@" before the path): any length, configured or not.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:\"'\\]*:)[^\s/\"'\\]+@")
_KEY_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{20,}|r8_[A-Za-z0-9]{20,}|sb_secret_[A-Za-z0-9_-]{8,})")


_env_module: Any = None


def configured_secrets() -> tuple[str, ...]:
    """Secret values of the environment (valid or not, so an invalid setup still redacts); empty if unreadable."""
    global _env_module
    try:
        if _env_module is None:  # imported once, on first use: common.env logs through this module
            from common import env

            _env_module = env
        return _env_module.get_secret_values()
    except Exception:  # noqa: BLE001 - redaction must never break logging
        return ()


_last_json_forms: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


def as_in_json(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`_json_forms` of ``secrets``, the last answer kept (the environment's tuple is the same object)."""
    global _last_json_forms
    known, forms = _last_json_forms
    if secrets is not known:
        forms = _json_forms(secrets)
        _last_json_forms = (secrets, forms)
    return forms


@lru_cache(maxsize=4)
def _json_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """The secrets plus their forms inside a JSON string (a quote, backslash or tab escaped), longest first."""
    forms = set(secrets) | {json.dumps(secret, ensure_ascii=False)[1:-1] for secret in secrets}
    return tuple(sorted(forms, key=len, reverse=True))


def _bearer_replacement(match: re.Match[str]) -> str:
    return f"{match[1]} {REDACTED}"


def _prefix_replacement(match: re.Match[str]) -> str:
    return f"{match[1]}{REDACTED}"


def _password_replacement(match: re.Match[str]) -> str:
    return f"{match[1]}{REDACTED}@"


def _whole_replacement(match: re.Match[str]) -> str:
    return REDACTED


def _sub_near(
    pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str], text: str, candidate: Callable[[int], int]
) -> str:
    r"""``pattern.sub(replace, text)``, searched only from where a match could begin.

    ``candidate(pos)`` is at most the start of the first match at or after ``pos`` (the next place the literal
    every match contains could start one), or -1 when no match can follow. The engine still sees the whole
    text (``\b`` looks at the character before), so the matches are exactly those of ``sub``; the stretches
    between candidates, and the text after the last one, are just not searched.
    """
    parts: list[str] = []
    last = pos = 0
    while (start := candidate(pos)) >= 0:
        match = pattern.search(text, start)
        if match is None:
            break
        parts.append(text[last : match.start()])
        parts.append(replace(match))
        last = pos = match.end()
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _scheme_start(text: str, at: int) -> int:
    """The start of the run of scheme-like characters before ``text[at]`` (a superset of what a scheme allows)."""
    while at > 0 and (text[at - 1].isalnum() or text[at - 1] in "+.-_"):
        at -= 1
    return at


def _first(text: str, literals: tuple[str, ...], pos: int) -> int:
    """The first index at or after ``pos`` where one of ``literals`` occurs, or -1."""
    found = [i for i in (text.find(literal, pos) for literal in literals) if i >= 0]
    return min(found) if found else -1


_KEY_PREFIXES = ("sk-", "r8_", "sb_secret_")


def redact(text: str, secrets: Sequence[str] | None = None) -> str:
    """Replace configured secrets, bearer tokens, URL credentials and key shapes in ``text``."""
    for secret in secrets if secrets is not None else configured_secrets():
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    # This runs on every log record, so each pattern first needs the literal every match of it contains
    # (a substring test costs next to nothing; a pattern a few microseconds per line even when nothing
    # matches), and is then searched only from the places where that literal could begin a match.
    lowered = text.lower()
    if "bearer" in lowered:
        # lower() lengthens a few characters (U+0130): its indexes are the text's only when the lengths agree.
        aligned = len(lowered) == len(text)
        text = _sub_near(
            _BEARER, _bearer_replacement, text, lambda pos: lowered.find("bearer", pos) if aligned else pos
        )
    if "=" in text:
        text = _URL_TOKEN.sub(_prefix_replacement, text)
    if "@" in text and "://" in text:
        found = text

        def scheme(pos: int) -> int:
            at = found.find("://", pos)
            return at if at < 0 else max(pos, _scheme_start(found, at))

        text = _sub_near(_URL_PASSWORD, _password_replacement, text, scheme)
    if "sk-" in text or "r8_" in text or "sb_secret_" in text:
        keyed = text
        text = _sub_near(_KEY_SHAPES, _whole_replacement, text, lambda pos: _first(keyed, _KEY_PREFIXES, pos))
    return text
