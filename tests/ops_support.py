"""Helpers of the operations tests: fresh databases, gunicorn instances as subprocesses,
secretaries that log in and book over real HTTP (CSRF tokens read from the forms), and the
invariants that must hold afterwards whatever happened to the processes."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = "ops-test-secret-" + "0" * 32
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PHONE = "13912345678"


def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs PostgreSQL: set TEST_DATABASE_URL (e.g. postgresql+psycopg://root@127.0.0.1:5432/partyday_x)")
    from blueprints.core.config import normalise_database_url

    return normalise_database_url(url)


def libpq_url(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://… -> postgresql://… for pg_dump, pg_restore and psql."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_postgres_database(label: str):
    """A new, empty database next to TEST_DATABASE_URL's (named after it), dropped afterwards."""
    base = make_url(postgres_url())
    name = f"{base.database}_{label}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def server_env(database_url: str, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "GUNICORN_"))}
    env.update(DATABASE_URL=database_url, SECRET_KEY=SECRET_KEY, DEMO_MODE="0", LOG_FORMAT="json",
               PYTHONUNBUFFERED="1")
    env.pop("REDIS_URL", None)
    env.update({key: str(value) for key, value in extra.items() if value is not None})
    return env


def flask_cli(*args: str, database_url: str, check: bool = True, **env) -> subprocess.CompletedProcess:
    """``flask --app app ARGS`` in a subprocess, as an operator would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO, env=server_env(database_url, **env),
        capture_output=True, text=True, timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def flask_db_upgrade(database_url: str) -> None:
    """``flask db upgrade`` (the command itself, run in this process: a subprocess would spend
    seconds importing the app again) on the database at ``database_url``."""
    app = make_app(database_url)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from blueprints.core.extensions import db

        db.engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` (the production configuration) on a free port."""

    def __init__(self, database_url: str, log_dir: Path, name: str, workers: int = 2, **env):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.stderr.log"
        self.env = server_env(database_url, PORT=self.port, HOST="127.0.0.1", WEB_CONCURRENCY=workers, **env)
        self.process: subprocess.Popen | None = None

    def start(self) -> "Gunicorn":
        """Launch (without waiting: start several, then ``wait_ready`` each)."""
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: master and workers, ended together
        )
        return self

    def wait_ready(self, timeout: float = 60) -> "Gunicorn":
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"gunicorn did not become healthy in {timeout}s:\n{self.log_text()}")

    def wait_every_worker(self, count: int, timeout: float = 90) -> "Gunicorn":
        """Until ``count`` workers have answered: with preload_app off each worker imports the
        app after the fork, so on a busy machine the first can serve for seconds alone."""
        import requests
        from concurrent.futures import ThreadPoolExecutor

        def ping(_):
            with contextlib.suppress(requests.RequestException):
                requests.get(self.base_url + "/healthz", timeout=5)

        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=count * 2) as pool:
            while len(self.served_pids()) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"only {len(self.served_pids())} of {count} workers answered")
                list(pool.map(ping, range(count * 4)))
                time.sleep(0.2)
        return self

    def worker_pids(self) -> list[int]:
        """The master's children (its workers), from /proc."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            return []
        return [int(child) for child in children]

    def served_pids(self) -> set[int]:
        """Workers that have answered a request (booted ones): the pids in the access log."""
        import json

        with contextlib.suppress(Exception):
            self._log.flush()
        pids = set()
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"event": "access"' in line:
                with contextlib.suppress(ValueError):
                    pids.add(json.loads(line)["pid"])
        return pids

    def stop(self) -> None:
        """SIGKILL the master and its workers at once (their process group). Graceful shutdown
        is gunicorn's business and costs seconds per worker on a busy machine; what these tests
        check is in the database, which a killed process cannot leave inconsistent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()

    def log_text(self) -> str:
        with contextlib.suppress(Exception):
            self._log.flush()
        return self.log_path.read_text(errors="replace")


class Secretary:
    """A browser-like HTTP client: a cookie session, CSRF tokens read from the pages."""

    def __init__(self, username: str, password: str, timeout: float = 20):
        import requests

        self.username = username
        self.password = password
        self.http = requests.Session()
        self.timeout = timeout
        self.csrf = ""

    def _token_from(self, response) -> str:
        match = CSRF_INPUT.search(response.text)
        assert match, f"no CSRF token on {response.url} ({response.status_code})"
        return match.group(1)

    def login(self, base_url: str, password: str | None = None):
        """GET the form (token), POST it; returns the POST's response (302 on success)."""
        form = self.http.get(base_url + "/login", timeout=self.timeout)
        response = self.http.post(
            base_url + "/login",
            data={"csrf_token": self._token_from(form), "username": self.username,
                  "password": self.password if password is None else password},
            allow_redirects=False, timeout=self.timeout,
        )
        return response

    def open_slot(self, base_url: str, slot_id: int):
        """The slot page; keeps the booking form's CSRF token (the session's, valid on every instance)."""
        response = self.http.get(f"{base_url}/slots/{slot_id}", timeout=self.timeout)
        self.csrf = self._token_from(response)
        return response

    def book(self, base_url: str, slot_id: int, headcount: int, waitlist: bool = False, request_id: str | None = None):
        data = {"csrf_token": self.csrf, "headcount": str(headcount), "contact_name": "王书记",
                "contact_phone": PHONE, "note": ""}
        if waitlist:
            data["waitlist"] = "1"
        headers = {"X-Request-ID": request_id} if request_id else {}
        return self.http.post(f"{base_url}/slots/{slot_id}/book", data=data, headers=headers,
                              allow_redirects=False, timeout=self.timeout)

    def cancel(self, base_url: str, booking_id: int):
        return self.http.post(f"{base_url}/bookings/{booking_id}/cancel",
                              data={"csrf_token": self.csrf, "reason": "计划有变"},
                              allow_redirects=False, timeout=self.timeout)


BOOKING_LOCATION = re.compile(r"/bookings/(\d+)$")


def booking_id_from(response) -> int | None:
    match = BOOKING_LOCATION.search(response.headers.get("Location", ""))
    return int(match.group(1)) if match else None


# -- seeding (in the test process, through the app's models) -------------------------------------

def make_app(database_url: str):
    from app import create_app

    from .conftest import app_config

    return create_app(app_config(database_url, WTF_CSRF_ENABLED=True))


def seed_secretaries(count: int, password: str, prefix: str) -> list[str]:
    """``count`` organisations, each with one secretary. They share one cheap password hash
    (werkzeug reads the method from the hash, so login checks it the same way, only faster:
    scrypt's real cost on a two-CPU machine would dominate these tests)."""
    from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
    from blueprints.core.extensions import db

    from werkzeug.security import generate_password_hash

    password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")
    names = []
    for n in range(count):
        organisation = Organisation(name=f"{prefix}测试第{n}党支部", kind=OrganisationKind.BRANCH,
                                    subdistrict="新虹街道", member_count=25, secretary_name="王书记",
                                    secretary_phone=PHONE)
        username = f"{prefix}sec{n}"
        db.session.add(User(username=username, display_name=f"书记{n}", role=Role.SECRETARY,
                            organisation=organisation, password_hash=password_hash))
        names.append(username)
    db.session.commit()
    return names


# -- what must hold afterwards --------------------------------------------------------------------

def invariant_violations(connection: sa.Connection) -> dict[str, list]:
    """Each key names an invariant; its list holds the offending rows (empty = holds)."""
    holding = "('pending', 'confirmed', 'attended')"
    queries = {
        "booking without events": """
            SELECT b.id FROM bookings b
            WHERE NOT EXISTS (SELECT 1 FROM booking_events e WHERE e.booking_id = b.id)""",
        "latest event's to_status differs from the booking's status": """
            SELECT b.id, b.status, e.to_status FROM bookings b
            JOIN booking_events e ON e.id = (SELECT max(id) FROM booking_events WHERE booking_id = b.id)
            WHERE e.to_status <> b.status""",
        "revision differs from the number of changes after creation": """
            SELECT b.id, b.revision, count(e.id) FROM bookings b
            JOIN booking_events e ON e.booking_id = b.id
            GROUP BY b.id, b.revision HAVING b.revision <> count(e.id) - 1""",
        "slot over capacity": f"""
            SELECT s.id, s.capacity, sum(b.headcount) FROM slots s JOIN bookings b ON b.slot_id = s.id
            WHERE b.status IN {holding}
            GROUP BY s.id, s.capacity HAVING sum(b.headcount) > s.capacity""",
        "two active bookings of one organisation on one slot": """
            SELECT slot_id, organisation_id, count(*) FROM bookings
            WHERE status NOT IN ('declined', 'cancelled')
            GROUP BY slot_id, organisation_id HAVING count(*) > 1""",
    }
    return {name: [tuple(row) for row in connection.exec_driver_sql(sql)] for name, sql in queries.items()}
