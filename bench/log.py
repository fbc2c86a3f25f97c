"""The JSON log formatter against python-json-logger, redaction on, in the same run.

Run: .venv/bin/python -m bench.log [--rounds 7] [--seconds 0.2]

Both formatters turn the same LogRecord into one JSON line (python-json-logger with the same fields:
timestamp, level, module, message, the extras, the exception). Ours also redacts: eight configured
secrets (a production-shaped environment of fakes, as tests/envtools.py uses), bearer tokens, URL
credentials and key shapes; python-json-logger redacts nothing. Record kinds: a plain %-formatted
message, one with five extras (Decimal, UUID, float, int, str), one carrying secrets in the message and
in an extra, and one with an exception (also through two handlers, console and LOG_FILE, as
``build_logging_config`` sets them up when LOG_FILE is set). Printed per kind: µs per record of each,
and the speed ratio python-json-logger time / ours (above 1.00x: ours is faster), medians of interleaved
rounds with the min-max. No database, no Redis.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Fake secrets in every secret variable, so the formatter scans for as many as production would.
FAKE_ENV = {
    "ENVIRONMENT": "production",
    "DJANGO_SECRET_KEY": "bench-django-secret-6f1c9a0b7e2d4c8a9b3f5e1d7c2a8b4f6e0d9c3b",
    "DATABASE_URL": "postgresql://videogen:Db-Pa55word-Secret@db.example.com:6543/postgres?sslmode=require",
    "REDIS_URL": "rediss://default:Redis-Pa55word-Secret@cache.example.com:6380/0",
    "SUPABASE_URL": "https://abcdefghijklmnop.supabase.co/",
    "SUPABASE_SERVICE_KEY": "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLW5vdC1yZWFs",
    "SUPABASE_ANON_KEY": "sb_publishable_AnonKeySecretValue123456",
    "OPENAI_API_KEY": "sk-proj-OpenAiSecretValue0123456789abcdef",
    "REPLICATE_API_TOKEN": "r8_ReplicateSecretValue0123456789ab",
    "JWT_SECRET_KEY": "jwt-secret-value-that-is-long-enough-0123456789",
}
os.environ["VIDEOGEN_ENV_FILE"] = os.devnull
os.environ.update(FAKE_ENV)

from pythonjsonlogger.json import JsonFormatter as PythonJsonLoggerFormatter  # noqa: E402

from bench._compare import compare, print_table  # noqa: E402
from common.env import get_secret_values  # noqa: E402
from common.log import JsonFormatter, job_context  # noqa: E402

JOB = uuid.UUID("0b6f3f4e-8a43-4d8c-9d7a-2f1f5d9c0a11")


def records() -> dict[str, logging.LogRecord]:
    """One record of each kind, made the way ``logger.info(...)`` makes them."""
    logger = logging.getLogger("videogen.pipeline.render")

    def make(msg: str, args: tuple[object, ...] = (), extra: dict[str, object] | None = None, exc: bool = False):
        exc_info = None
        if exc:
            try:
                raise TimeoutError("provider did not answer within 30 s")
            except TimeoutError:
                exc_info = sys.exc_info()
        level = logging.ERROR if exc else logging.INFO
        return logger.makeRecord(logger.name, level, __file__, 42, msg, args, exc_info, "render", extra)

    return {
        "plain": make("Rendered clip %d of %d in %.1f s", (3, 12, 4.25)),
        "extras": make(
            "Charged %s for %s",
            ("0.060000", "video_generation"),
            {
                "cost": Decimal("0.060000"),
                "job_ref": JOB,
                "duration_ms": 812.5,
                "attempt": 2,
                "api_name": "replicate/svd",
            },
        ),
        "secrets": make(
            "Calling %s with Authorization: Bearer %s",
            ("https://videogen:Db-Pa55word-Secret@db.example.com/x?token=abcdef123456", "abcdefgh12345678"),
            {"api_key": FAKE_ENV["OPENAI_API_KEY"], "url": "https://api.example.com/v1?key=zzzzzzzzzz&page=2"},
        ),
        "exception": make("Clip %s failed", ("c-17",), {"attempt": 3}, exc=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one round of one case")
    args = parser.parse_args()

    secrets = get_secret_values()
    ours = JsonFormatter()
    theirs = PythonJsonLoggerFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "module"},
        timestamp=True,
    )
    print(f"(configured secrets redacted by ours: {len(secrets)}; python-json-logger redacts nothing)")
    with job_context(JOB, "render"):
        for kind, record in records().items():
            line = ours.format(record)
            assert not any(secret in line for secret in secrets), f"a secret leaked in the {kind} line"

            # Each call formats the record as its first handler would: ours caches the traceback text on
            # the record (as logging.Formatter does), so it is cleared before every call of either.
            def run_theirs(record: logging.LogRecord = record) -> str:
                record.exc_text = None
                return theirs.format(record)

            def run_ours(record: logging.LogRecord = record) -> str:
                record.exc_text = None
                return ours.format(record)

            results = compare(
                {"python-json-logger": run_theirs, "common.log": run_ours},
                baseline="python-json-logger",
                rounds=args.rounds,
                seconds=args.seconds,
            )
            print_table(f"log formatter: {kind} record", results, baseline="python-json-logger", unit="µs/record")

        # With LOG_FILE set, build_logging_config gives every record two handlers (console and file), each
        # formatting it: ours formats a traceback once per record (cached on it), python-json-logger twice.
        record = records()["exception"]
        second_theirs = PythonJsonLoggerFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "module"},
            timestamp=True,
        )
        second_ours = JsonFormatter()

        def two_theirs() -> None:
            record.exc_text = None
            theirs.format(record)
            second_theirs.format(record)

        def two_ours() -> None:
            record.exc_text = None
            ours.format(record)
            second_ours.format(record)

        results = compare(
            {"python-json-logger": two_theirs, "common.log": two_ours},
            baseline="python-json-logger",
            rounds=args.rounds,
            seconds=args.seconds,
        )
        print_table(
            "log formatter: exception record, two handlers (console + LOG_FILE)",
            results,
            baseline="python-json-logger",
            unit="µs/record",
        )


if __name__ == "__main__":
    main()
