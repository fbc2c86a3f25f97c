"""Database helpers against the real database: health check, retries of lost connections only, atomic blocks."""

from __future__ import annotations

import psycopg.errors
import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from common import db, retry
from common.errors import ServiceUnavailableError, ValidationError
from tests.servicekit import broken_database

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fake_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(retry, "sleep", slept.append)
    return slept


@pytest.fixture
def table() -> str:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE dbhelper_items (id integer PRIMARY KEY, name varchar(20) NOT NULL)")
    yield "dbhelper_items"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE dbhelper_items")


def insert(item_id: int, name: str = "x", using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("INSERT INTO dbhelper_items (id, name) VALUES (%s, %s)", [item_id, name])


def count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM dbhelper_items")
        return cursor.fetchone()[0]


class TestHealthCheck:
    def test_up(self) -> None:
        assert db.health_check() is True
        db.ping()

    def test_down(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with broken_database(monkeypatch) as (alias, _broken):
            assert db.health_check(using=alias) is False
            with pytest.raises(ServiceUnavailableError) as caught:
                db.ping(using=alias)
        assert caught.value.details["alias"] == alias
        assert isinstance(caught.value.__cause__, OperationalError)

    @pytest.mark.postgres
    def test_statement_timeout_is_local_to_the_check(self) -> None:
        db.ping(timeout=1.5)
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"

    @pytest.mark.postgres
    def test_ping_is_cancelled_by_its_statement_timeout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # ping() itself, with a probe that would take 2 s: the server cancels it after 50 ms.
        monkeypatch.setattr(db, "_PROBE_SQL", "SELECT 1 FROM pg_sleep(2)")
        with pytest.raises(ServiceUnavailableError) as caught:
            db.ping(timeout=0.05)
        assert isinstance(caught.value.__cause__, OperationalError)
        assert isinstance(caught.value.__cause__.__cause__, psycopg.errors.QueryCanceled)
        monkeypatch.setattr(db, "_PROBE_SQL", "SELECT 1")
        db.ping()  # the next probe works: the timeout did not outlive the check

    @pytest.mark.postgres
    def test_sub_millisecond_timeout_is_not_zero(self) -> None:
        with CaptureQueriesContext(connection) as queries:
            db.ping(timeout=0.0001)  # 0 ms would mean "no timeout" to PostgreSQL
        assert any("'1ms'" in q["sql"] for q in queries.captured_queries)

    @pytest.mark.parametrize("timeout", [0, -1, float("nan"), "3", True])
    def test_bad_timeout_is_a_validation_error(self, timeout: object) -> None:
        with pytest.raises(ValidationError, match="timeout"):
            db.ping(timeout=timeout)  # type: ignore[arg-type]

    @pytest.mark.postgres
    def test_statement_timeout_applies(self) -> None:
        # The same SET the check uses stops a slow statement at the server.
        def slow() -> None:
            # SET LOCAL, as the check does: it ends with the transaction (pooled connections stay clean).
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = '50ms'")
                cursor.execute("SELECT pg_sleep(2)")

        with pytest.raises(OperationalError):
            slow()
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"


class TestRetryOnConnectionError:
    def test_lost_connection_is_retried_then_succeeds(
        self, monkeypatch: pytest.MonkeyPatch, fake_sleep: list[float], table: str
    ) -> None:
        calls: list[str] = []

        @db.retry_on_connection_error
        def write() -> None:
            calls.append("x")
            if len(calls) == 1:
                with broken_database(monkeypatch) as (_, broken), broken.cursor() as cursor:
                    cursor.execute("SELECT 1")  # a real connection failure
            insert(1)

        write()
        assert len(calls) == 2
        assert len(fake_sleep) == 1
        assert count() == 1

    def test_gives_up_after_three_attempts(self, monkeypatch: pytest.MonkeyPatch, fake_sleep: list[float]) -> None:
        attempts: list[int] = []
        with broken_database(monkeypatch) as (alias, broken):

            @db.retry_on_connection_error(using=alias)
            def read() -> None:
                attempts.append(1)
                with broken.cursor() as cursor:
                    cursor.execute("SELECT 1")

            with pytest.raises(ServiceUnavailableError, match="after 3 attempts") as caught:
                read()
        assert len(attempts) == 3
        assert len(fake_sleep) == 2
        assert fake_sleep[1] > fake_sleep[0]
        assert isinstance(caught.value.__cause__, OperationalError)

    def test_integrity_error_is_never_retried(self, fake_sleep: list[float], table: str) -> None:
        insert(1)
        attempts: list[int] = []

        @db.retry_on_connection_error
        def duplicate() -> None:
            attempts.append(1)
            insert(1)

        with pytest.raises(IntegrityError):
            duplicate()
        assert attempts == [1]
        assert fake_sleep == []
        assert count() == 1

    def test_query_errors_are_not_retried(self, fake_sleep: list[float]) -> None:
        attempts: list[int] = []

        @db.retry_on_connection_error
        def bad_query() -> None:
            attempts.append(1)
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table_anywhere")

        with pytest.raises(Exception) as caught:
            bad_query()
        assert not isinstance(caught.value, ServiceUnavailableError)
        assert attempts == [1]
        assert fake_sleep == []

    def test_not_retried_inside_a_transaction(self, monkeypatch: pytest.MonkeyPatch, fake_sleep: list[float]) -> None:
        attempts: list[int] = []
        with broken_database(monkeypatch) as (_alias, broken):

            @db.retry_on_connection_error(using="default")
            def inner() -> None:
                attempts.append(1)
                with broken.cursor() as cursor:
                    cursor.execute("SELECT 1")

            with pytest.raises(ServiceUnavailableError), db.atomic():
                inner()
        assert attempts == [1]
        assert fake_sleep == []

    def test_async_functions_refused(self) -> None:
        async def job() -> None:
            return None

        with pytest.raises(TypeError):
            db.retry_on_connection_error(job)

    def test_max_attempts_override(self, monkeypatch: pytest.MonkeyPatch, fake_sleep: list[float]) -> None:
        attempts: list[int] = []
        with broken_database(monkeypatch) as (alias, broken):

            @db.retry_on_connection_error(using=alias, max_attempts=2)
            def read() -> None:
                attempts.append(1)
                broken.ensure_connection()

            with pytest.raises(ServiceUnavailableError):
                read()
        assert len(attempts) == 2


class TestAtomic:
    def test_commits(self, table: str) -> None:
        with db.atomic():
            insert(1)
            insert(2)
        assert count() == 2

    def test_integrity_error_rolls_back_everything(self, table: str) -> None:
        insert(1)

        def write_both() -> None:
            with db.atomic():
                insert(2)
                insert(1)

        with pytest.raises(IntegrityError):
            write_both()
        assert count() == 1  # no half-written rows

    def test_lost_connection_becomes_service_unavailable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with (
            broken_database(monkeypatch) as (alias, _),
            pytest.raises(ServiceUnavailableError) as caught,
            db.atomic(using=alias),
        ):
            pass
        assert caught.value.retryable

    def test_other_errors_pass_through(self, table: str) -> None:
        def fail_midway() -> None:
            with db.atomic():
                insert(1)
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            fail_midway()
        assert count() == 0


class TestIsConnectionError:
    @staticmethod
    def wrapped(cause: BaseException, cls: type[Exception] = OperationalError) -> Exception:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise cls(str(inner)) from inner
        except Exception as outer:
            return outer

    def test_classification(self) -> None:
        from django.db import InterfaceError

        assert db.is_connection_error(InterfaceError("connection already closed"))
        assert db.is_connection_error(self.wrapped(psycopg.errors.AdminShutdown("terminating connection")))
        assert db.is_connection_error(self.wrapped(psycopg.errors.CannotConnectNow("starting up")))
        assert db.is_connection_error(self.wrapped(psycopg.OperationalError("connection refused")))
        assert not db.is_connection_error(self.wrapped(psycopg.errors.QueryCanceled("statement timeout")))
        assert not db.is_connection_error(self.wrapped(psycopg.errors.DeadlockDetected("deadlock")))
        assert not db.is_connection_error(OperationalError("database is locked"))
        assert db.is_connection_error(OperationalError("unable to open database file"))
        assert not db.is_connection_error(IntegrityError("duplicate key"))
        assert not db.is_connection_error(ValueError("connection"))


async def test_async_twins() -> None:
    from asgiref.sync import sync_to_async

    try:
        assert await db.ahealth_check() is True
        await db.aping()
    finally:
        # The ORM thread asgiref used keeps its connection; close it so the test database can be dropped.
        await sync_to_async(connections.close_all)()
