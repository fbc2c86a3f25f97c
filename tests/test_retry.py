"""Tests for common.retry: backoff delays, caps, jitter, retry_after, logging, sync and async; fake sleep only."""

from __future__ import annotations

import logging

import pytest

from common import retry
from common.errors import (
    GenerationError,
    PipelineError,
    RetryableError,
    ServiceUnavailableError,
)
from common.log import job_context
from common.retry import compute_delay, retry_with_backoff


class FakeClock:
    """Records requested sleeps instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(retry, "sleep", fake.sleep)
    monkeypatch.setattr(retry, "async_sleep", fake.async_sleep)
    return fake


class Flaky:
    """Fails with the given errors in order, then returns ``"ok"``."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def transient(n: int = 1) -> list[RetryableError]:
    return [RetryableError(f"transient {i}") for i in range(n)]


# --------------------------------------------------------------------------- delays


def test_default_delays_are_two_then_four_seconds(clock: FakeClock) -> None:
    flaky = Flaky(*transient(2))
    assert retry_with_backoff()(flaky)() == "ok"
    assert flaky.calls == 3
    assert clock.delays == [2.0, 4.0]


def test_delays_double_each_time(clock: FakeClock) -> None:
    flaky = Flaky(*transient(5))
    assert retry_with_backoff(max_attempts=6)(flaky)() == "ok"
    assert clock.delays == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_custom_base_delay(clock: FakeClock) -> None:
    flaky = Flaky(*transient(3))
    retry_with_backoff(max_attempts=4, base_delay=0.5)(flaky)()
    assert clock.delays == [0.5, 1.0, 2.0]


def test_max_delay_caps_each_wait(clock: FakeClock) -> None:
    flaky = Flaky(*transient(5))
    retry_with_backoff(max_attempts=6, max_delay=5)(flaky)()
    assert clock.delays == [2.0, 4.0, 5.0, 5.0, 5.0]


def test_jitter_adds_up_to_ten_percent(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    flaky = Flaky(*transient(4))
    retry_with_backoff(max_attempts=5, jitter=True)(flaky)()
    for delay, base in zip(clock.delays, [2.0, 4.0, 8.0, 16.0], strict=True):
        assert base <= delay <= base * 1.1
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)
    assert compute_delay(1, base_delay=2, max_delay=None, jitter=True) == pytest.approx(2.2)


def test_jitter_never_exceeds_max_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)
    # At the cap (16 s capped to 10 s) the +10 % is reflected below the cap: 10 - 1 = 9 s.
    assert compute_delay(5, base_delay=2, max_delay=10, jitter=True) == pytest.approx(9.0)
    assert compute_delay(5, base_delay=2, max_delay=10, jitter=lambda d: d + 25) == 0.0
    assert compute_delay(2, base_delay=2, max_delay=10, jitter=True) == pytest.approx(4.4)


def test_custom_jitter_function(clock: FakeClock) -> None:
    flaky = Flaky(*transient(2))
    retry_with_backoff(jitter=lambda delay: delay + 0.25)(flaky)()
    assert clock.delays == [2.25, 4.25]


def test_retry_after_is_honoured(clock: FakeClock) -> None:
    flaky = Flaky(RetryableError("rate limited", retry_after=30), RetryableError("again", retry_after=1))
    assert retry_with_backoff(max_delay=10)(flaky)() == "ok"
    # 30 s from the server beats the 2 s backoff (and the cap); 1 s is less than the 4 s backoff, which stands.
    assert clock.delays == [30.0, 4.0]


def test_retry_after_on_service_unavailable(clock: FakeClock) -> None:
    flaky = Flaky(ServiceUnavailableError("replicate busy", retry_after=7.5))
    retry_with_backoff()(flaky)()
    assert clock.delays == [7.5]


def test_compute_delay_ignores_odd_retry_after() -> None:
    class Odd(Exception):
        retry_after = "soon"

    assert compute_delay(1, base_delay=2, max_delay=None, jitter=None, error=Odd()) == 2.0
    assert compute_delay(1, base_delay=0, max_delay=None, jitter=lambda d: d - 5) == 0.0


# --------------------------------------------------------------------------- what is retried


def test_last_error_is_reraised_unchanged(clock: FakeClock) -> None:
    errors = transient(3)
    flaky = Flaky(*errors)
    with pytest.raises(RetryableError) as info:
        retry_with_backoff()(flaky)()
    assert info.value is errors[-1]
    assert info.value.message == "transient 2"
    assert flaky.calls == 3
    assert clock.delays == [2.0, 4.0]


def test_non_retryable_errors_propagate_at_once(clock: FakeClock) -> None:
    for error in (ValueError("bad input"), GenerationError("prompt rejected"), PipelineError("x"), KeyboardInterrupt()):
        flaky = Flaky(error, *transient(2))
        with pytest.raises(type(error)) as info:
            retry_with_backoff()(flaky)()
        assert info.value is error
        assert flaky.calls == 1
    assert clock.delays == []


def test_a_non_retryable_error_after_retries_stops_them(clock: FakeClock) -> None:
    fatal = ValueError("fatal")
    flaky = Flaky(RetryableError("t"), fatal, RetryableError("never reached"))
    with pytest.raises(ValueError) as info:
        retry_with_backoff(max_attempts=5)(flaky)()
    assert info.value is fatal
    assert flaky.calls == 2
    assert clock.delays == [2.0]


def test_custom_retryable_exceptions(clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError("reset"), TimeoutError("slow"))
    decorated = retry_with_backoff(retryable_exceptions=(ConnectionError, TimeoutError))(flaky)
    assert decorated() == "ok"
    assert clock.delays == [2.0, 4.0]
    # RetryableError is no longer in the tuple, so it propagates.
    flaky = Flaky(RetryableError("x"))
    with pytest.raises(RetryableError):
        retry_with_backoff(retryable_exceptions=(ConnectionError,))(flaky)()
    assert flaky.calls == 1


def test_single_attempt_never_sleeps(clock: FakeClock) -> None:
    flaky = Flaky(*transient(1))
    with pytest.raises(RetryableError):
        retry_with_backoff(max_attempts=1)(flaky)()
    assert clock.delays == []


def test_bare_decorator_and_metadata(clock: FakeClock) -> None:
    calls: list[tuple[object, ...]] = []

    @retry_with_backoff
    def fetch(a: int, *, b: int) -> int:
        """Fetch something."""
        calls.append((a, b))
        if len(calls) == 1:
            raise ServiceUnavailableError("down")
        return a + b

    assert fetch(1, b=2) == 3
    assert calls == [(1, 2), (1, 2)]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch something."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": -3}, "max_attempts must be at least 1"),
        ({"base_delay": -1}, "delays must not be negative"),
        ({"max_delay": -0.5}, "delays must not be negative"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retry_with_backoff(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- logging


def test_every_retry_is_logged_with_attempt_delay_and_error(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    errors = transient(3)
    flaky = Flaky(*errors)
    caplog.set_level(logging.WARNING, logger="common.retry")
    with job_context("job-r", "video_generation"), pytest.raises(RetryableError):
        retry_with_backoff(max_delay=3)(flaky)()
    records = [r for r in caplog.records if r.name == "common.retry"]
    assert [r.levelname for r in records] == ["WARNING", "WARNING", "ERROR"]
    first, second, final = records
    assert (first.attempt, first.max_attempts, first.delay_seconds) == (1, 3, 2.0)  # type: ignore[attr-defined]
    assert (second.attempt, second.delay_seconds) == (2, 3.0)  # type: ignore[attr-defined]
    assert first.error == "transient 0"  # type: ignore[attr-defined]
    assert first.error_type == "RetryableError"  # type: ignore[attr-defined]
    assert "Flaky" in first.function or first.function  # type: ignore[attr-defined]
    assert "after attempt 1/3 failed: transient 0" in first.getMessage()
    assert final.attempts == 3  # type: ignore[attr-defined]
    assert "failed after 3 attempts: transient 2" in final.getMessage()


def test_no_log_when_the_first_attempt_succeeds(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="common.retry")
    assert retry_with_backoff()(Flaky())() == "ok"
    assert [r for r in caplog.records if r.name == "common.retry"] == []


# --------------------------------------------------------------------------- async


async def test_async_retries_with_fake_sleep(clock: FakeClock) -> None:
    calls = 0

    @retry_with_backoff(max_attempts=4)
    async def call_api(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ServiceUnavailableError("busy")
        return x * 2

    assert await call_api(21) == 42
    assert calls == 4
    assert clock.delays == [2.0, 4.0, 8.0]


async def test_async_reraises_last_error_and_skips_non_retryable(clock: FakeClock) -> None:
    errors = transient(3)

    @retry_with_backoff()
    async def always_fails() -> None:
        raise errors.pop(0)

    with pytest.raises(RetryableError) as info:
        await always_fails()
    assert info.value.message == "transient 2"
    assert clock.delays == [2.0, 4.0]

    attempts = 0

    @retry_with_backoff()
    async def invalid() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await invalid()
    assert attempts == 1


async def test_async_honours_retry_after(clock: FakeClock) -> None:
    failures = [RetryableError("429", retry_after=12)]

    @retry_with_backoff()
    async def limited() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert await limited() == "done"
    assert clock.delays == [12.0]


def test_sleep_defaults_are_the_real_ones() -> None:
    import asyncio
    import time

    assert retry.sleep is time.sleep
    assert retry.async_sleep is asyncio.sleep
