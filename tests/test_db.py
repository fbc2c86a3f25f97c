"""Database helpers against the real database: health check, retries of lost connections only, atomic blocks."""

from __future__ import annotations

import uuid

import psycopg.errors
import pytest
from django.db import DataError, IntegrityError, OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from common import db, retry
from common.errors import PipelineError, ServiceUnavailableError, ValidationError
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


# --------------------------------------------------------------------------- the error boundary


@pytest.fixture
def constrained() -> str:
    """Two tables with every kind of constraint, created with raw SQL on the test database."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE dbhelper_parent (id integer PRIMARY KEY)")
        cursor.execute(
            "CREATE TABLE dbhelper_c (id integer PRIMARY KEY, name varchar(5) NOT NULL,"
            " qty smallint CONSTRAINT qty_non_negative CHECK (qty >= 0),"
            " parent integer REFERENCES dbhelper_parent (id), doc text)"
        )
    yield "dbhelper_c"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE dbhelper_c")
        cursor.execute("DROP TABLE dbhelper_parent")


@db.boundary("items.add")
def add_item(item_id: int, name: object = "x", qty: object = 0, parent: object = None, doc: object = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO dbhelper_c (id, name, qty, parent, doc) VALUES (%s, %s, %s, %s, %s)",
            [item_id, name, qty, parent, doc],
        )


def rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM dbhelper_c")
        return cursor.fetchone()[0]


class TestBoundaryIntegrity:
    def test_duplicate(self, constrained: str) -> None:
        add_item(1)
        with pytest.raises(ValidationError) as caught:
            add_item(1)
        assert caught.value.code == "DUPLICATE_RECORD"
        assert caught.value.details["fields"] == ["id"]
        assert caught.value.message.startswith("items.add: a record with these values already exists")
        assert rows() == 1

    def test_missing_value_names_the_column(self, constrained: str) -> None:
        with pytest.raises(ValidationError) as caught:
            add_item(1, name=None)
        assert caught.value.code == "MISSING_VALUE"
        assert "name" in (caught.value.details.get("field"), *caught.value.details.get("fields", []))
        assert rows() == 0

    def test_check_names_the_constraint(self, constrained: str) -> None:
        with pytest.raises(ValidationError) as caught:
            add_item(1, qty=-1)
        assert caught.value.code == "CONSTRAINT_VIOLATED"
        assert "qty_non_negative" in caught.value.details["constraint"]
        assert rows() == 0

    def test_missing_related_record(self, constrained: str) -> None:
        with pytest.raises(ValidationError) as caught:
            add_item(1, parent=999)
        assert caught.value.code == "RELATED_RECORD_MISSING"
        assert rows() == 0


@pytest.mark.postgres
class TestBoundaryDataErrors:
    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"name": "too long"}, "value too long"),
            ({"name": "nul\x00"}, "NUL"),
            ({"doc": "nul\x00"}, "NUL"),
            ({"qty": 40000}, "out of range"),
        ],
    )
    def test_refused_values_are_validation_errors(
        self, constrained: str, kwargs: dict[str, object], fragment: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            add_item(1, **kwargs)
        assert caught.value.code == "VALIDATION_ERROR"
        assert caught.value.message.startswith("items.add: the database refused a value")
        assert fragment in caught.value.message
        assert rows() == 0


class TestBoundary:
    def test_missing_table_is_a_database_error_not_retryable(self) -> None:
        @db.boundary
        def read() -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table_anywhere")

        with pytest.raises(PipelineError) as caught:
            read()
        assert caught.value.code == "DATABASE_ERROR"
        assert not caught.value.retryable
        assert "manage.py migrate" in caught.value.message
        assert caught.value.message.startswith("test_db.read: ")

    @pytest.mark.postgres
    def test_statement_timeout_is_retryable(self) -> None:
        @db.boundary("slow.read")
        def slow() -> None:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = '20ms'")
                cursor.execute("SELECT pg_sleep(2)")

        with pytest.raises(ServiceUnavailableError) as caught:
            slow()
        assert caught.value.details["reason"] == "operational"
        assert caught.value.retryable
        assert isinstance(caught.value.__cause__, OperationalError)

    def test_unreachable_database(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with broken_database(monkeypatch) as (alias, broken):

            @db.boundary("probe", using=alias)
            def probe() -> None:
                with broken.cursor() as cursor:
                    cursor.execute("SELECT 1")

            with pytest.raises(ServiceUnavailableError) as caught:
                probe()
        assert caught.value.details["reason"] == "unreachable"
        assert caught.value.details["alias"] == alias
        assert caught.value.message.startswith("probe: the database is unavailable: the server is unreachable")
        assert "exhausted" not in caught.value.message

    def test_as_a_with_block(self, constrained: str) -> None:
        add_item(1)
        with pytest.raises(ValidationError) as caught, db.boundary("bulk import"):
            insert_raw(1)
        assert caught.value.code == "DUPLICATE_RECORD"
        assert caught.value.message.startswith("bulk import: ")

    def test_pipeline_errors_and_other_errors_pass_through(self) -> None:
        original = ValidationError("bad input")

        @db.boundary
        def refuse() -> None:
            raise original

        with pytest.raises(ValidationError) as caught:
            refuse()
        assert caught.value is original
        with pytest.raises(ZeroDivisionError), db.boundary("maths"):
            1 / 0  # noqa: B018

    def test_names_the_job(self) -> None:
        job_id = uuid.uuid4()

        @db.boundary
        def read(job_id: object, *, table: str = "no_such_table_anywhere") -> None:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT * FROM {table}")

        for call in (lambda: read(job_id), lambda: read(job_id=str(job_id))):
            with pytest.raises(PipelineError) as caught:
                call()
            assert caught.value.job_id == job_id
        with pytest.raises(PipelineError) as caught:
            read("not-a-uuid")
        assert caught.value.job_id is None

    async def test_async_functions(self) -> None:
        from asgiref.sync import sync_to_async

        def read() -> None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT * FROM no_such_table_anywhere")
            finally:
                connection.close()

        @db.boundary
        async def aread() -> None:
            await sync_to_async(read)()

        with pytest.raises(PipelineError) as caught:
            await aread()
        assert caught.value.code == "DATABASE_ERROR"
        assert caught.value.message.startswith("test_db.aread: ")


def insert_raw(item_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO dbhelper_c (id, name) VALUES (%s, 'x')", [item_id])


def test_services_refuse_what_the_database_refuses_with_a_pipeline_error() -> None:
    # NaN is not JSON: PostgreSQL would refuse it (DataError), SQLite's JSON_VALID check too (IntegrityError);
    # the service refuses it first, naming the field, with the job's id and nothing written.
    from common.models import Job
    from common.services import jobs

    job = jobs.job_create(user_id=uuid.uuid4(), audio_url="https://example.com/a.mp3", user_prompt="p")
    with pytest.raises(PipelineError) as caught:
        jobs.stage_start(job_id=job.id, stage_name="audio_analysis", metadata={"score": float("nan")})
    assert caught.value.job_id == job.id
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.message.startswith("metadata['score']")
    assert Job.objects.get(pk=job.id).status == "queued"


class TestPoolSettings:
    def test_defaults(self) -> None:
        from common.conf import load_env_settings

        env, problems = load_env_settings({}, strict=False)
        assert (env.database_pool_size, env.database_pool_timeout, problems) == (10, 5.0, [])

    def test_values(self) -> None:
        from common.conf import load_env_settings

        env, problems = load_env_settings({"DATABASE_POOL_SIZE": "24", "DATABASE_POOL_TIMEOUT": "2.5"}, strict=False)
        assert (env.database_pool_size, env.database_pool_timeout, problems) == (24, 2.5, [])

    @pytest.mark.parametrize("size", ["0", "-1", "1001", "ten", "2.5", "1e3", "٣"])
    def test_bad_size(self, size: str) -> None:
        from common.conf import load_env_settings

        env, problems = load_env_settings({"DATABASE_POOL_SIZE": size}, strict=False)
        assert env.database_pool_size == 10
        assert [p.variable for p in problems] == ["DATABASE_POOL_SIZE"]

    @pytest.mark.parametrize("wait", ["0", "-1", "601", "nan", "inf", "soon"])
    def test_bad_timeout(self, wait: str) -> None:
        from common.conf import load_env_settings

        env, problems = load_env_settings({"DATABASE_POOL_TIMEOUT": wait}, strict=False)
        assert env.database_pool_timeout == 5.0
        assert [p.variable for p in problems] == ["DATABASE_POOL_TIMEOUT"]

    def test_settings_build_the_pool_from_the_environment(self) -> None:
        import json
        import os
        import subprocess
        import sys
        from pathlib import Path

        code = (
            "import json, django; django.setup(); from django.conf import settings; "
            "d = settings.DATABASES['default']; print(json.dumps([d['ENGINE'], d['OPTIONS']]))"
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "videogen.settings",
            "VIDEOGEN_ENV_FILE": os.devnull,
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
            "DATABASE_POOL_SIZE": "3",
            "DATABASE_POOL_TIMEOUT": "0.75",
        }
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        engine, options = json.loads(out.splitlines()[-1])
        assert engine == "common.db_backends.postgresql"
        assert options["pool"] == {"name": "videogen-default", "min_size": 1, "max_size": 3, "timeout": 0.75}
        assert options["connect_timeout"] == 10


@pytest.mark.postgres
def test_raw_psycopg_errors_are_translated_too(constrained: str) -> None:
    # The cost ledger's prepared statement runs on the raw psycopg connection: its errors are not Django's.
    add_item(1)

    @db.boundary("ledger.raw")
    def raw_duplicate() -> None:
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            cursor.execute("INSERT INTO dbhelper_c (id, name) VALUES (1, 'x')")

    with pytest.raises(ValidationError) as caught:
        raw_duplicate()
    assert caught.value.code == "DUPLICATE_RECORD"
    assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation)
    assert rows() == 1


def test_a_message_never_carries_a_nul() -> None:
    error = db.translate_error(DataError("bad value 'a\x00b'"), operation="write")
    assert "\x00" not in error.message
    assert "a\\x00b" in error.message


# --------------------------------------------------------------------------- SQLite's locks are retried


def test_retry_locked_retries_a_locked_database_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db.time, "sleep", lambda seconds: None)
    calls: list[bool] = []

    def flaky() -> str:
        calls.append(connection.in_atomic_block)
        if len(calls) < 3:
            raise OperationalError("database is locked")
        return "done"

    assert db.retry_locked(flaky) == "done"
    assert calls == [True, True, True]  # each attempt in a transaction of its own
    calls.clear()
    assert db.retry_locked(flaky, atomic=False) == "done"
    assert calls == [False, False, False]


@pytest.mark.parametrize("error", [OperationalError("disk I/O error"), IntegrityError("UNIQUE constraint failed")])
def test_retry_locked_lets_other_errors_through_at_once(error: Exception) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        db.retry_locked(broken)
    assert calls == [1]


def test_retry_locked_never_retries_inside_a_callers_transaction() -> None:
    calls: list[int] = []

    def locked() -> None:
        calls.append(1)
        raise OperationalError("database table is locked")

    with pytest.raises(OperationalError), transaction.atomic():
        db.retry_locked(locked)
    assert calls == [1]


def test_a_service_retries_a_locked_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hold services run their writes through retry_locked: a lock is latency, not an error."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from common.models import Job, JobCostHold
    from common.services.holds import hold_reserve

    monkeypatch.setattr(db.time, "sleep", lambda seconds: None)
    job = Job.objects.create(user_id=uuid.uuid4(), audio_url="a", user_prompt="p")
    # A hold past its term: on PostgreSQL the reservation's single statement declines and the locked ORM
    # path (the one retry_locked guards, and SQLite's only path) expires it first and writes the hold.
    JobCostHold.objects.create(
        job=job, stage_name="s", api_name="svd", amount=Decimal("0.50"), created_at=timezone.now() - timedelta(days=1)
    )
    refused: list[str] = []

    def locked_twice(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().upper().startswith("INSERT") and len(refused) < 2:
            refused.append(sql)
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(locked_twice):
        hold = hold_reserve(job_id=job.id, stage="video_generation", api_name="svd", estimate=Decimal("0.30"))
    assert len(refused) == 2
    job.refresh_from_db()
    assert job.reserved_cost == Decimal("0.30")
    assert hold.amount == Decimal("0.30")


# --------------------------------------------------------------------------- every public service and selector


def _public_functions() -> list[tuple[str, str, object]]:
    """Every public function (sync and async) of common.services.* and common.selectors, by module and name."""
    import importlib
    import inspect
    import pkgutil

    import common.selectors
    import common.services

    modules = ["common.selectors"]
    for package in (common.services, common.selectors):
        modules += [
            f"{package.__name__}.{info.name}"
            for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_")
        ]
    found = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if inspect.isfunction(value) or inspect.iscoroutinefunction(value):
                found.append((module_name, name, value))
    return found


# Public functions that are not wrapped, and why none of them can let a django.db exception out: they
# never touch the database (proven below by running them while every query fails), or they only
# compose wrapped services (the context managers: proven below by running them with the database refusing).
NO_DATABASE = {
    "default_lease_owner",  # host and pid
    "check_lease_owner",  # a string check
    "job_lease_duration",  # a setting
    "job_queued_stale_after",  # a setting
    "hold_cutoff",  # a setting and the clock
    "holds_open",  # builds a lazy queryset; whoever iterates it runs the query inside their own boundary
    "reserved_sum",  # builds an SQL expression, no query
    "price_table",  # the app settings
    "price_get",
    "price_of",
    "price_estimate",
    "estimate_cost",  # costs: the seeds' name of price_estimate
    "get_price",
    "get_price_table",
    "validate_money",  # costs re-exports common.money's helpers
    "format_money",
    "money_sum",  # an SQL expression, no query
    "money_from_sum",
    "parse_job_id",  # common.ids, re-exported by common.selectors
    "parse_user_id",
    "release_holds_on_finish",  # the job_finished receiver: calls the wrapped job_holds_release
}
COMPOSED = {"stage_lease", "astage_lease", "hold_reservation", "ahold_reservation", "reservation", "areservation"}


def test_every_public_service_and_selector_runs_inside_the_boundary() -> None:
    functions = _public_functions()
    assert len({name for _, name, _ in functions}) > 80  # the scan found the modules
    unwrapped = sorted(
        f"{module}.{name}"
        for module, name, value in functions
        if not db.is_wrapped(value) and name not in NO_DATABASE | COMPOSED
    )
    assert unwrapped == []
    listed_but_wrapped = sorted(name for _, name, value in functions if name in NO_DATABASE and db.is_wrapped(value))
    assert listed_but_wrapped == []


def test_the_unwrapped_functions_never_touch_the_database() -> None:
    from decimal import Decimal

    from common.services import prices

    def refuse(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        raise OperationalError("no query expected here")

    calls = {
        "default_lease_owner": lambda f: f(),
        "check_lease_owner": lambda f: f("worker-1"),
        "job_lease_duration": lambda f: f(),
        "job_queued_stale_after": lambda f: f(),
        "hold_cutoff": lambda f: f(),
        "holds_open": lambda f: f(),
        "reserved_sum": lambda f: f(),
        "price_table": lambda f: f(),
        "price_get": lambda f: f(api_name="svd"),
        "price_of": lambda f: f(prices.price_get(api_name="svd"), Decimal(2)),
        "price_estimate": lambda f: f(api_name="svd", quantity=2),
        "estimate_cost": lambda f: f("svd", 2),
        "get_price": lambda f: f("svd"),
        "get_price_table": lambda f: f(),
        "validate_money": lambda f: f(Decimal("0.5")),
        "format_money": lambda f: f(Decimal("0.5")),
        "money_sum": lambda f: f(),
        "money_from_sum": lambda f: f(None),
        "parse_job_id": lambda f: f(str(uuid.uuid4())),
        "parse_user_id": lambda f: f(str(uuid.uuid4())),
    }
    assert set(calls) == NO_DATABASE - {"release_holds_on_finish"}
    seen = set()
    with connection.execute_wrapper(refuse):
        for _module, name, function in _public_functions():
            if name in calls:
                calls[name](function)
                seen.add(name)
    assert seen == set(calls)


def test_the_composed_ones_let_only_pipeline_errors_out() -> None:
    """The context managers call wrapped services only: with every query failing, a PipelineError comes out."""
    from decimal import Decimal

    from asgiref.sync import async_to_sync

    from common.services import costs, holds, leases

    def refuse(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        raise OperationalError("connection refused")

    job_id = uuid.uuid4()
    blocks = [
        lambda: holds.hold_reservation(job_id=job_id, stage="s", api_name="svd", estimate=Decimal(1)),
        lambda: costs.reservation(job_id, "s", "svd", Decimal(1)),
        lambda: leases.stage_lease(job_id=job_id, stage_name="audio_analysis", owner="w"),
    ]
    async_blocks = [
        lambda: holds.ahold_reservation(job_id=job_id, stage="s", api_name="svd", estimate=Decimal(1)),
        lambda: costs.areservation(job_id, "s", "svd", Decimal(1)),
        lambda: leases.astage_lease(job_id=job_id, stage_name="audio_analysis", owner="w"),
    ]

    async def enter_async() -> int:
        refused = 0
        for block in async_blocks:
            with pytest.raises(ServiceUnavailableError):
                async with block():
                    pass
            refused += 1
        return refused

    # Under async_to_sync, sync_to_async runs the services on this thread: the wrapper sees their queries.
    with connection.execute_wrapper(refuse):
        for block in blocks:
            with pytest.raises(ServiceUnavailableError), block():
                pass
        assert async_to_sync(enter_async)() == 3
