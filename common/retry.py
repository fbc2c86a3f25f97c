"""Retry with exponential backoff for sync and async callables.

``@retry_with_backoff()`` retries :class:`~common.errors.RetryableError` (and
its subclass ``ServiceUnavailableError``) up to three attempts, waiting
``base_delay * 2 ** (n - 1)`` seconds after the n-th failure (2 s, 4 s, ...),
capped at ``max_delay``, plus optional jitter (kept under the cap), and never
less than an error's ``retry_after`` (a server's explicit wait beats the cap).
Any other exception propagates at once; after the last attempt the last error
is re-raised unchanged.

Sleeping goes through :data:`sleep` / :data:`async_sleep` so tests can swap in
a fake clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

from common.errors import RetryableError
from common.log import get_logger

__all__ = ["compute_delay", "retry_with_backoff"]

logger = get_logger("common.retry")

F = TypeVar("F", bound=Callable[..., Any])

# Indirections the tests replace; looked up at call time.
sleep: Callable[[float], None] = time.sleep
async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

JitterFunc = Callable[[float], float]


def full_jitter(delay: float) -> float:
    """Add up to 10 % random jitter to ``delay`` (spreads retries of many workers)."""
    return delay + random.uniform(0, delay * 0.1)  # noqa: S311 - not cryptographic


def compute_delay(
    attempt: int,
    *,
    base_delay: float,
    max_delay: float | None,
    jitter: JitterFunc | bool | None,
    error: BaseException | None = None,
) -> float:
    """Return the wait after failed attempt number ``attempt`` (1-based)."""
    delay = base_delay * (2 ** (attempt - 1))
    if max_delay is not None:
        delay = min(delay, max_delay)
    if jitter is True:
        delay = full_jitter(delay)
    elif callable(jitter):
        delay = jitter(delay)
    if max_delay is not None and delay > max_delay:
        # Jitter must not push a wait past the cap; reflect it below instead, so waits at the cap still spread.
        delay = 2 * max_delay - delay
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, (int, float)) and retry_after > delay:
        delay = float(retry_after)
    return max(delay, 0.0)


@overload
def retry_with_backoff(func: F, /) -> F: ...


@overload
def retry_with_backoff(
    *,
    max_attempts: int = 3,
    base_delay: float = 2.0,
    max_delay: float | None = None,
    jitter: JitterFunc | bool | None = False,
    retryable_exceptions: tuple[type[BaseException], ...] = (RetryableError,),
) -> Callable[[F], F]: ...


def retry_with_backoff(
    func: F | None = None,
    /,
    *,
    max_attempts: int = 3,
    base_delay: float = 2.0,
    max_delay: float | None = None,
    jitter: JitterFunc | bool | None = False,
    retryable_exceptions: tuple[type[BaseException], ...] = (RetryableError,),
) -> Callable[[F], F] | F:
    """Decorate a sync or async function to retry it with exponential backoff.

    Args:
        max_attempts: total attempts, including the first (at least 1).
        base_delay: seconds to wait after the first failure; doubles each time.
        max_delay: upper bound for one wait (``None``: unbounded); only ``retry_after`` may exceed it.
        jitter: ``True`` for up to +10 % random jitter, or a function of the delay.
        retryable_exceptions: exception types that are retried; all others propagate at once.

    Raises:
        ValueError: for ``max_attempts < 1`` or a negative delay.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if base_delay < 0 or (max_delay is not None and max_delay < 0):
        raise ValueError("delays must not be negative")

    def decorate(fn: F) -> F:
        name = getattr(fn, "__qualname__", repr(fn))

        def on_failure(attempt: int, exc: BaseException) -> float:
            delay = compute_delay(attempt, base_delay=base_delay, max_delay=max_delay, jitter=jitter, error=exc)
            logger.warning(
                "Retrying %s after attempt %d/%d failed: %s",
                name,
                attempt,
                max_attempts,
                exc,
                extra={
                    "function": name,
                    "attempt": attempt,
                    "max_attempts": max_attempts,
                    "delay_seconds": round(delay, 3),
                    "error_type": type(exc).__name__,
                    "error": str(exc),
                },
            )
            return delay

        def give_up(exc: BaseException) -> None:
            logger.error(
                "%s failed after %d attempts: %s",
                name,
                max_attempts,
                exc,
                extra={"function": name, "attempts": max_attempts, "error_type": type(exc).__name__},
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                for attempt in range(1, max_attempts + 1):
                    try:
                        return await fn(*args, **kwargs)
                    except retryable_exceptions as exc:
                        if attempt == max_attempts:
                            give_up(exc)
                            raise
                        await _module_async_sleep(on_failure(attempt, exc))
                raise AssertionError("unreachable")  # pragma: no cover

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, max_attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except retryable_exceptions as exc:
                    if attempt == max_attempts:
                        give_up(exc)
                        raise
                    _module_sleep(on_failure(attempt, exc))
            raise AssertionError("unreachable")  # pragma: no cover

        return cast(F, sync_wrapper)

    if func is not None:
        return decorate(func)
    return decorate


def _module_sleep(seconds: float) -> None:
    sleep(seconds)


async def _module_async_sleep(seconds: float) -> None:
    await async_sleep(seconds)
