"""Cache helpers: one contract over local memory and the real Redis, plus Redis-down behaviour."""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings
from pydantic import BaseModel

from common import cache
from common.cache_keys import cache_settings
from common.conf import app_settings
from common.errors import ValidationError
from tests.envtools import subprocess_env
from tests.servicekit import closed_port

ROOT = Path(__file__).resolve().parent.parent


def redis_caches(url: str) -> dict:
    """CACHES as videogen/settings.py builds them for REDIS_URL."""
    return cache_settings(url)


LOCMEM = cache_settings(None, location="test-cache")


class Colour(Enum):
    RED = "red"


class Scene(BaseModel):
    id: uuid.UUID
    cost: Decimal
    at: dt.datetime
    tags: list[str]


@pytest.fixture(params=["locmem", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The cache configured on one backend (Redis at the ``redis_url`` fixture)."""
    if request.param == "locmem":
        with override_settings(CACHES=LOCMEM):
            yield "locmem"
    else:
        url = request.getfixturevalue("redis_url")
        with override_settings(CACHES=redis_caches(url)):
            yield url


@pytest.fixture
def key() -> Iterator[str]:
    """A fresh key (tests never flush a database; they clean up their own keys)."""
    name = f"test:{uuid.uuid4().hex}"
    yield name
    cache.delete(name)


class TestCacheContract:
    def test_set_get_delete(self, backend: str, key: str) -> None:
        assert cache.get(key) is None
        assert cache.get(key, "fallback") == "fallback"
        assert cache.set(key, {"a": 1}) is True
        assert cache.get(key) == {"a": 1}
        assert cache.delete(key) is True
        assert cache.get(key) is None
        assert cache.delete(key) is True  # deleting a missing key is fine

    def test_ttl_expiry(self, backend: str, key: str) -> None:
        cache.set(key, "soon gone", ex=1)
        assert cache.get(key) == "soon gone"
        deadline = time.monotonic() + 10
        while cache.get(key) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.get(key) is None

    def test_timedelta_ttl(self, backend: str, key: str) -> None:
        assert cache.set(key, 1, ex=dt.timedelta(minutes=5))
        assert cache.get(key) == 1

    def test_no_ttl_means_no_expiry(self, backend: str, key: str) -> None:
        cache.set(key, "kept")
        if backend != "locmem":
            raw = redis.Redis.from_url(backend)
            assert raw.ttl(f"videogen:cache:{key}") == -1
        assert cache.get(key) == "kept"

    def test_json_round_trip(self, backend: str, key: str) -> None:
        job_id = uuid.uuid4()
        when = dt.datetime(2026, 11, 21, 4, 30, 12, 345678, tzinfo=dt.UTC)
        payload = {
            "job_id": job_id,
            "cost": Decimal("12.345600"),
            "at": when,
            "day": dt.date(2026, 11, 21),
            "colour": Colour.RED,
            "tags": ("a", "b"),
            "nested": {"n": [1, 2.5, None, True]},
        }
        assert cache.set_json(key, payload, ttl=60)
        assert cache.get_json(key) == {
            "job_id": str(job_id),
            "cost": "12.345600",  # money is a string in JSON, never a float
            "at": "2026-11-21T04:30:12.345678+00:00",
            "day": "2026-11-21",
            "colour": "red",
            "tags": ["a", "b"],
            "nested": {"n": [1, 2.5, None, True]},
        }

    def test_pydantic_round_trip(self, backend: str, key: str) -> None:
        scene = Scene(id=uuid.uuid4(), cost=Decimal("0.050000"), at=dt.datetime.now(dt.UTC), tags=["intro"])
        cache.set_json(key, scene)
        assert cache.get_json(key, model=Scene) == scene
        assert cache.get_json(key)["cost"] == "0.050000"

    def test_json_miss_and_unreadable(self, backend: str, key: str) -> None:
        assert cache.get_json(key) is None
        assert cache.get_json(key, default=[]) == []
        cache.set(key, "{not json")
        assert cache.get_json(key, default="miss") == "miss"
        cache.set_json(key, {"id": "not-a-uuid"})
        assert cache.get_json(key, default="miss", model=Scene) == "miss"

    def test_bad_input_is_an_error_not_a_miss(self, backend: str, key: str) -> None:
        for bad_key in ("", "has space", "new\nline", None):
            with pytest.raises(ValidationError):
                cache.set(bad_key, 1)  # type: ignore[arg-type]
        for bad_ttl in (0, -1, "10", True):
            with pytest.raises(ValidationError):
                cache.set(key, 1, ex=bad_ttl)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="cannot be stored as JSON"):
            cache.set_json(key, {"x": object()})
        with pytest.raises(ValidationError):
            cache.set_json(key, float("nan"))

    def test_health_check(self, backend: str) -> None:
        assert cache.health_check() is True
        cache.ping()

    async def test_async_twins(self, backend: str, key: str) -> None:
        assert await cache.aset(key, 5, ex=60)
        assert await cache.aget(key) == 5
        assert await cache.aset_json(key, {"d": Decimal("1.10")}, ttl=60)
        assert await cache.aget_json(key) == {"d": "1.10"}
        assert await cache.adelete(key)
        assert await cache.aget(key, "gone") == "gone"
        assert await cache.ahealth_check() is True


class TestRedisKeys:
    def test_key_names_as_seen_by_redis(self, redis_url: str, key: str) -> None:
        raw = redis.Redis.from_url(redis_url)
        with override_settings(CACHES=redis_caches(redis_url)):
            cache.set(key, "v", ex=30)
            cache.set_json(f"{key}:json", {"a": 1}, ttl=30)
            try:
                assert raw.exists(f"videogen:cache:{key}") == 1
                assert raw.exists(f"videogen:cache:{key}:json") == 1
                assert 0 < raw.ttl(f"videogen:cache:{key}") <= 30
                assert raw.keys(f"videogen:cache:{key}*")
                assert all(k.decode().startswith("videogen:cache:test:") for k in raw.keys(f"*{key}*"))
            finally:
                cache.delete(f"{key}:json")


@pytest.fixture
def cache_warnings(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """Records logged by common.cache (the warning throttle is reset)."""
    monkeypatch.setattr(cache, "_last_warning", 0.0)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("common.cache")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


class TestRedisDown:
    """A closed port: every helper answers a miss or False, logs, and never raises."""

    def test_every_helper_degrades(self, cache_warnings: list[logging.LogRecord]) -> None:
        with override_settings(CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0")):
            assert cache.get("k") is None
            assert cache.get("k", "default") == "default"
            assert cache.set("k", 1, ex=5) is False
            assert cache.set_json("k", {"a": Decimal("1")}) is False
            assert cache.get_json("k", default={}) == {}
            assert cache.delete("k") is False
            assert cache.health_check() is False
        warnings = [r for r in cache_warnings if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # throttled: one warning, the rest at debug level
        assert "Cache unavailable" in warnings[0].getMessage()
        assert len(cache_warnings) >= 7

    async def test_async_helpers_degrade(self) -> None:
        with override_settings(CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0")):
            assert await cache.aget("k", 0) == 0
            assert await cache.aset("k", 1) is False
            assert await cache.ahealth_check() is False

    def test_unresponsive_server_times_out(self) -> None:
        """A server that accepts connections and never answers: each call gives up after one bounded wait.

        The bound is proved without timing anything: every socket of the pool has the configured
        connect and read timeout, no retries, and each call opened exactly one connection. A call
        that hung would fail ``result(timeout=...)`` instead of hanging the run.
        """
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent.settimeout(0.05)
        port = silent.getsockname()[1]
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:  # until stopped and no connection is waiting
            while True:
                try:
                    accepted.append(silent.accept()[0])
                except TimeoutError:
                    if stop.is_set():
                        return

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        worker = ThreadPoolExecutor(max_workers=1)
        try:
            with override_settings(
                CACHES=redis_caches(f"redis://127.0.0.1:{port}/0"), VIDEOGEN_COMMON={"CACHE_SOCKET_TIMEOUT": 0.2}
            ):
                assert worker.submit(cache.get, "k", "miss").result(timeout=30) == "miss"
                assert worker.submit(cache.set, "k", 1).result(timeout=30) is False
                kwargs = caches[cache.CACHE_ALIAS].client.get_client().connection_pool.connection_kwargs
            assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.2
            assert kwargs["retry"].get_retries() == 0
            stop.set()
            acceptor.join()
            assert len(accepted) == 2  # one connection per call: nothing was retried
        finally:
            worker.shutdown(wait=False)
            stop.set()
            acceptor.join()
            for conn in accepted:
                conn.close()
            silent.close()

    def test_ping_raises_service_unavailable(self) -> None:
        from common.errors import ServiceUnavailableError

        with (
            override_settings(CACHES=redis_caches(f"redis://127.0.0.1:{closed_port()}/0")),
            pytest.raises(ServiceUnavailableError, match="unreachable"),
        ):
            cache.ping()


class TestConnectionFactory:
    def test_timeouts_follow_the_knob_and_no_retries(self) -> None:
        factory = cache.ConnectionFactory({})
        params = factory.make_connection_params("redis://127.0.0.1:6379/0")
        assert params["socket_timeout"] == app_settings.CACHE_SOCKET_TIMEOUT == 0.5
        assert params["socket_connect_timeout"] == 0.5
        assert params["retry"].get_retries() == 0
        with override_settings(VIDEOGEN_COMMON={"CACHE_SOCKET_TIMEOUT": 0.25}):
            params = cache.ConnectionFactory({}).make_connection_params("redis://127.0.0.1:6379/0")
            assert params["socket_timeout"] == 0.25

    def test_no_retry_even_when_the_url_asks_for_it(self) -> None:
        client = cache.ConnectionFactory({}).connect(f"redis://127.0.0.1:{closed_port()}/0?retry_on_timeout=true")
        connection = client.connection_pool.make_connection()
        assert connection.retry_on_error  # the URL option was read...
        assert connection.retry.get_retries() == 0  # ...and still nothing is retried

    def test_explicit_options_win(self) -> None:
        factory = cache.ConnectionFactory({"SOCKET_TIMEOUT": 2, "SOCKET_CONNECT_TIMEOUT": 1})
        params = factory.make_connection_params("redis://127.0.0.1:6379/0")
        assert (params["socket_timeout"], params["socket_connect_timeout"]) == (2, 1)

    def test_pools_are_keyed_by_timeout(self) -> None:
        url = f"redis://127.0.0.1:{closed_port()}/0"
        short = cache.ConnectionFactory({"SOCKET_TIMEOUT": 0.1}).connect(url)
        long = cache.ConnectionFactory({"SOCKET_TIMEOUT": 0.3}).connect(url)
        assert short.connection_pool is not long.connection_pool
        assert short.connection_pool.connection_kwargs["socket_timeout"] == 0.1


def test_encoder_rejects_unknown_objects() -> None:
    with pytest.raises(ValidationError):
        cache.dumps_json({1, object()})
    assert json.loads(cache.dumps_json({"s": {3}, "td": dt.timedelta(seconds=1.5)})) == {"s": [3], "td": 1.5}


# --------------------------------------------------------------------------- never unpickle what Redis holds


class Exploit:
    """A pickle that, when loaded, writes a marker file (what an attacker with Redis access would plant)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


UNREADABLE_VALUES = {
    "garbage": b"hello",
    "binary": b"\xff\xfe\x00garbage",
    "old-pickle": pickle.dumps({"plan": [1, 2, 3]}),
    "truncated-json": b'{"plan": [1, 2',
    "too-deep": b"[" * 100_000 + b"]" * 100_000,
}


class TestUnreadableValues:
    """Values the app did not write (forged, garbage, old pickles) are misses with a warning, never loaded."""

    def test_a_forged_pickle_never_runs(self, redis_url: str, key: str, tmp_path: Path, cache_warnings: list) -> None:
        marker = tmp_path / "marker"
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"videogen:cache:{key}", pickle.dumps(Exploit(str(marker))))
        with override_settings(CACHES=redis_caches(redis_url)):
            assert cache.get(key, "miss") == "miss"
            assert cache.get_json(key, default="miss") == "miss"
            assert cache.get_many([key]) == {}
            assert caches["default"].get(key, "miss") == "miss"  # Django's own API (DRF's throttle) too
        assert not marker.exists()
        unreadable = [r for r in cache_warnings if r.levelno == logging.WARNING and "unreadable" in r.getMessage()]
        assert len(unreadable) >= 3
        assert all(r.cache_key == key for r in unreadable)

    @pytest.mark.parametrize("raw_value", list(UNREADABLE_VALUES.values()), ids=list(UNREADABLE_VALUES))
    def test_unreadable_value_is_a_miss_with_a_warning(
        self, redis_url: str, key: str, raw_value: bytes, cache_warnings: list
    ) -> None:
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"videogen:cache:{key}", raw_value)
        with override_settings(CACHES=redis_caches(redis_url)):
            assert cache.get(key) is None
            assert cache.get(key, "miss") == "miss"
            assert cache.get_json(key, default="miss") == "miss"
            assert cache.get_many([key]) == {}
        warnings = [r for r in cache_warnings if r.levelno == logging.WARNING]
        assert len(warnings) == 4
        assert all("unreadable" in r.getMessage() and r.cache_key == key for r in warnings)
        assert raw.get(f"videogen:cache:{key}") == raw_value  # reading never changes what is there

    async def test_async_twins_treat_unreadable_values_as_misses(
        self, redis_url: str, key: str, cache_warnings: list
    ) -> None:
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"videogen:cache:{key}", b"hello")
        with override_settings(CACHES=redis_caches(redis_url)):
            assert await cache.aget(key, "miss") == "miss"
            assert await cache.aget_json(key, default="miss") == "miss"
            assert await cache.aget_many([key]) == {}
        assert len([r for r in cache_warnings if r.levelno == logging.WARNING]) == 3

    def test_get_many_keeps_the_readable_values(self, redis_url: str, key: str, cache_warnings: list) -> None:
        raw = redis.Redis.from_url(redis_url)
        with override_settings(CACHES=redis_caches(redis_url)):
            try:
                cache.set(f"{key}:a", {"a": 1})
                raw.set(f"videogen:cache:{key}:bad", b"\x80\x04garbage")
                cache.set(f"{key}:c", [3])
                assert cache.get_many([f"{key}:a", f"{key}:bad", f"{key}:c", f"{key}:missing"]) == {
                    f"{key}:a": {"a": 1},
                    f"{key}:c": [3],
                }
            finally:
                for suffix in ("a", "bad", "c"):
                    cache.delete(f"{key}:{suffix}")

    def test_redis_holds_plain_json(self, redis_url: str, key: str) -> None:
        raw = redis.Redis.from_url(redis_url)
        with override_settings(CACHES=redis_caches(redis_url)):
            cache.set(key, {"cost": Decimal("1.50"), "ids": (1, 2)})
            assert json.loads(raw.get(f"videogen:cache:{key}")) == {"cost": "1.50", "ids": [1, 2]}
            cache.set(key, 7)
            assert raw.get(f"videogen:cache:{key}") == b"7"

    def test_the_shipped_settings_never_unpickle(self, redis_url: str, tmp_path: Path) -> None:
        """A real process configured by videogen/settings.py with REDIS_URL: both APIs refuse the pickle."""
        name = f"test:{uuid.uuid4().hex}"
        marker = tmp_path / "marker"
        raw = redis.Redis.from_url(redis_url)
        raw.set(f"videogen:cache:{name}", pickle.dumps(Exploit(str(marker))))
        code = (
            "from common import cache; from django.core.cache import caches\n"
            f"print(cache.get({name!r}, 'miss'), caches['default'].get({name!r}, 'miss'))\n"
        )
        try:
            result = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", code],
                cwd=ROOT,
                env=subprocess_env({"REDIS_URL": redis_url}),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            raw.delete(f"videogen:cache:{name}")
        assert not marker.exists()
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].split() == ["miss", "miss"]
        assert "Ignoring an unreadable cached value" in result.stderr

    def test_with_django_redis_default_client_too(self, redis_url: str, key: str, cache_warnings: list) -> None:
        """A CACHES that keeps django-redis' own client (only the serializer set) still answers misses."""
        config = redis_caches(redis_url)
        config["default"]["OPTIONS"]["CLIENT_CLASS"] = "django_redis.client.DefaultClient"
        raw = redis.Redis.from_url(redis_url)
        with override_settings(CACHES=config):
            try:
                cache.set(f"{key}:good", [1])
                raw.set(f"videogen:cache:{key}", b"\x80\x04garbage")
                assert cache.get(key, "miss") == "miss"
                assert cache.get_many([key, f"{key}:good"]) == {f"{key}:good": [1]}
            finally:
                cache.delete(f"{key}:good")
        assert len([r for r in cache_warnings if r.levelno == logging.WARNING]) == 2


class TestValuesAreJSON:
    def test_values_come_back_as_json_on_every_backend(self, backend: str, key: str) -> None:
        job = uuid.uuid4()
        cache.set(key, {"cost": Decimal("0.25"), "job": job, "pair": (1, 2), "colour": Colour.RED})
        assert cache.get(key) == {"cost": "0.25", "job": str(job), "pair": [1, 2], "colour": "red"}

    def test_a_value_json_cannot_hold_is_refused_and_nothing_written(self, backend: str, key: str) -> None:
        cache.set(key, "before")
        for bad in (object(), {"x": {1, object()}}, float("nan"), {1j: 2}):
            with pytest.raises(ValidationError, match="cannot be stored as JSON"):
                cache.set(key, bad)
        assert cache.get(key) == "before"

    def test_nan_and_infinite_ttls_are_refused(self, backend: str, key: str) -> None:
        for bad in (float("nan"), float("inf"), -float("inf"), 10**30, dt.timedelta.max):
            with pytest.raises(ValidationError, match="ex must be"):
                cache.set(key, 1, ex=bad)
            with pytest.raises(ValidationError, match="ttl must be"):
                cache.set_json(key, 1, ttl=bad)
        assert cache.get(key) is None

    def test_deeply_nested_values_are_refused(self, backend: str, key: str) -> None:
        deep: list[Any] = []
        for _ in range(100_000):
            deep = [deep]
        with pytest.raises(ValidationError, match="nested too deeply"):
            cache.set_json(key, deep)
        with pytest.raises(ValidationError, match="nested too deeply"):
            cache.set(key, deep)
        assert cache.get(key) is None

    def test_get_many(self, backend: str, key: str) -> None:
        assert cache.get_many([]) == {}
        cache.set(f"{key}:1", 1)
        cache.set(f"{key}:2", "two")
        try:
            assert cache.get_many([f"{key}:1", f"{key}:2", f"{key}:3"]) == {f"{key}:1": 1, f"{key}:2": "two"}
            with pytest.raises(ValidationError):
                cache.get_many([f"{key}:1", "bad key"])
        finally:
            cache.delete(f"{key}:1")
            cache.delete(f"{key}:2")


class TestJSONHelpersEncodeOnce:
    """set_json writes the JSON once; get_json still reads the older two-layer form (JSON inside a JSON string)."""

    def test_redis_holds_the_json_once(self, redis_url: str, key: str) -> None:
        raw = redis.Redis.from_url(redis_url)
        with override_settings(CACHES=redis_caches(redis_url)):
            cache.set_json(key, {"cost": Decimal("1.50"), "ids": (1, 2)})
            assert raw.get(f"videogen:cache:{key}") == b'{"cost":"1.50","ids":[1,2]}'
            assert cache.get(key) == {"cost": "1.50", "ids": [1, 2]}

    def test_values_in_the_older_form_are_still_read(self, backend: str, key: str) -> None:
        scene = Scene(id=uuid.uuid4(), cost=Decimal("0.050000"), at=dt.datetime.now(dt.UTC), tags=["intro"])
        for obj in ({"a": [1, "x"]}, [1, 2], 7, None, "text", scene):
            cache.set(key, cache.dumps_json(obj))  # what set_json wrote before: its JSON, as a JSON string
            assert cache.get_json(key, default="miss") == json.loads(cache.dumps_json(obj))
        assert cache.get_json(key, model=Scene) == scene

    def test_strings_round_trip_even_when_they_hold_json(self, backend: str, key: str) -> None:
        for text in ("plain", '{"a": 1}', '"quoted"', "", "7"):
            cache.set_json(key, text)
            assert cache.get_json(key, default="miss") == text

    def test_get_json_reads_what_set_wrote(self, backend: str, key: str) -> None:
        cache.set(key, {"id": str(uuid.UUID(int=5)), "cost": Decimal("2.5"), "at": "2026-01-31T12:00:00Z", "tags": []})
        assert cache.get_json(key)["cost"] == "2.5"
        assert cache.get_json(key, model=Scene).id == uuid.UUID(int=5)

    def test_garbage_for_a_model_is_a_miss_with_a_warning(
        self, redis_url: str, key: str, cache_warnings: list[logging.LogRecord]
    ) -> None:
        raw = redis.Redis.from_url(redis_url)
        with override_settings(CACHES=redis_caches(redis_url)):
            for stored in (b"\x80\x04garbage", b"{not json", b'"{not json"', b'{"id": "nope"}', b" "):
                raw.set(f"videogen:cache:{key}", stored)
                assert cache.get_json(key, default="miss", model=Scene) == "miss"
                assert cache.get_json(key, default="miss") == (
                    "miss" if stored != b'{"id": "nope"}' else {"id": "nope"}
                )
        warnings = [r for r in cache_warnings if r.levelno == logging.WARNING and "unreadable" in r.getMessage()]
        assert len(warnings) == 9
        assert all(r.cache_key == key for r in warnings)

    def test_with_django_redis_default_client_too(self, redis_url: str, key: str) -> None:
        config = redis_caches(redis_url)
        config["default"]["OPTIONS"]["CLIENT_CLASS"] = "django_redis.client.DefaultClient"
        scene = Scene(id=uuid.uuid4(), cost=Decimal("0.050000"), at=dt.datetime.now(dt.UTC), tags=["intro"])
        with override_settings(CACHES=config):
            cache.set_json(key, scene)
            assert cache.get_json(key, model=Scene) == scene
            cache.set(key, cache.dumps_json(scene))  # the older form
            assert cache.get_json(key, model=Scene) == scene
            assert cache.get_json(key)["cost"] == "0.050000"
