"""``make serve`` as a newcomer runs it (issue 15 item 7): a fresh database, a superuser, demo jobs, the admin.

The real target runs in its own process group on a free port of 127.0.0.1, against its own SQLite
file; the test signs in through the admin's login form over HTTP and reads the demo jobs' changelist.
It runs once, in the SQLite pass: ``make serve`` uses its own SQLite file whatever the suite's database.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 120  # migrate, the demo and runserver's start on a busy 2-core machine; usually ~10 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """The running ``make serve``: its address, its log and its database file."""

    def __init__(self, base: str, log: Path, database: Path, process: subprocess.Popen[bytes]) -> None:
        self.base, self.log, self.database, self.process = base, log, database, process
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Status, final URL and body of a GET (or a form POST when ``data`` is given), cookies kept."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(f"{self.base}{path}", data=body, timeout=30) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read().decode()

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        pytest.fail(f"make serve did not answer within {STARTUP_SECONDS} s:\n{self.log.read_text()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    if connection.vendor != "sqlite":
        pytest.skip("runs once, in the SQLite pass: make serve uses its own SQLite file whatever the suite's database")
    port = free_port()
    database = tmp_path / "serve.sqlite3"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ENVIRONMENT")}
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        VIDEOGEN_ENV_FILE=os.devnull,
        LOG_LEVEL="WARNING",
        DJANGO_SUPERUSER_USERNAME="newcomer",
        DJANGO_SUPERUSER_PASSWORD="newcomer-dev-password",
    )
    # -o: the venv is the suite's own; never reinstall requirements from inside a test.
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "serve", f"SERVE_ADDR=127.0.0.1:{port}"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Served(f"http://127.0.0.1:{port}", log, database, process)
    try:
        server.wait_until_up()
        yield server
    finally:
        # make, runserver and its autoreloader child: the process group this test started.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def test_make_serve_gives_a_newcomer_an_admin_with_demo_jobs(served: Served) -> None:
    status, _, landing = served.get("/")
    assert status == 200
    assert 'href="/admin/"' in landing
    status, _, form = served.get("/admin/login/?next=/admin/")
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token is not None
    credentials = {"username": "newcomer", "password": "newcomer-dev-password", "next": "/admin/"}
    status, url, index = served.get("/admin/login/?next=/admin/", {**credentials, "csrfmiddlewaretoken": token[1]})
    assert (status, url) == (200, f"{served.base}/admin/"), index[:500]
    status, _, changelist = served.get("/admin/common/job/")
    assert status == 200
    assert "3 jobs" in changelist
    with sqlite3.connect(served.database) as db:
        assert db.execute("SELECT username, is_superuser, is_staff FROM auth_user").fetchall() == [("newcomer", 1, 1)]
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (3,)
    log = served.log.read_text()
    assert "superuser: created 'newcomer' (password: DJANGO_SUPERUSER_PASSWORD)" in log
    assert "newcomer-dev-password" not in log
