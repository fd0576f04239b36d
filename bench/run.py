"""`make bench`: city-scale data in PostgreSQL, the production gunicorn, wrk on loopback.

Steps (each repeatable): create the bench databases if missing; migrate; load the demo district
into the demo database and city-scale data into the city database (reused when already there);
count SQL statements per request in-process at both scales; serve a minimal Flask app and then
the real app with the same gunicorn configuration and drive each scenario with wrk; check the
database after the booking rush; write bench/RESULTS.md.

Environment: BENCH_DATABASE_URL / BENCH_DEMO_DATABASE_URL (default partyday_bench_city /
partyday_bench_demo on 127.0.0.1), BENCH_DURATION (seconds per scenario, 15),
BENCH_CONNECTIONS (16), BENCH_RUSH_ORGS (300), BENCH_FACTOR (city factor, 1.0),
BENCH_REDIS_URL (redis://127.0.0.1:6379/7).
"""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / "data"
VENV_BIN = Path(sys.executable).parent
CITY_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/partyday_bench_city")
DEMO_URL = os.environ.get("BENCH_DEMO_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/partyday_bench_demo")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
DURATION = int(os.environ.get("BENCH_DURATION", "15"))
WARMUP = 3
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = 2
RUSH_ORGS = int(os.environ.get("BENCH_RUSH_ORGS", "300"))
RUSH_DURATION = int(os.environ.get("BENCH_RUSH_DURATION", "10"))
FACTOR = float(os.environ.get("BENCH_FACTOR", "1.0"))
USER_AGENT = "partyday-bench"  # sessions are bound to address + user agent (SESSION_PROTECTION)
HOLDING = ("pending", "confirmed", "attended")
CPU_SAMPLES = 10


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- databases ----------------------------------------------------------------------------------

def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def ensure_database(url: str) -> None:
    import psycopg

    name = database_name(url)
    if name == "test" or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        sys.exit(f"refusing to benchmark against the database {name!r}")
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def secret_key() -> str:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def app_environment(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DEMO_MODE", "FLASK_DEBUG"}}
    env.update(DATABASE_URL=url, SECRET_KEY=secret_key(), REDIS_URL=REDIS_URL, LOG_LEVEL="warning",
               PYTHONPATH=str(ROOT))
    return env


def flask(url: str, *args: str) -> str:
    result = subprocess.run([str(VENV_BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=app_environment(url),
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


# -- in-process: targets, query counts, logged-in sessions --------------------------------------

@contextmanager
def application(url: str):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(app_environment(url))
    # the harness logs in hundreds of secretaries from one address; the server keeps its limits
    os.environ.update(LOGIN_RATE_LIMIT="100000 per minute", LOGIN_ADDRESS_RATE_LIMIT="100000 per minute")
    try:
        from flask.testing import FlaskClient

        from app import create_app

        class IsolatedClient(FlaskClient):
            """Each request in an app context of its own (its own ``g``), as under gunicorn."""

            def open(self, *args, **kwargs):
                with self.application.app_context():
                    return super().open(*args, **kwargs)

        app = create_app()
        app.test_client_class = IsolatedClient
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with app.app_context():
        yield app


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    if not match:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1)


def logged_in_client(app, username: str):
    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=USER_AGENT, REMOTE_ADDR="127.0.0.1")
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": username, "password": "partyday", "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError(f"login of {username} answered {response.status_code}")
    return client


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    return f"session={cookie.value}"


def find_targets(app, city: bool) -> dict:
    import sqlalchemy as sa

    from blueprints.accounts.models import User
    from blueprints.booking.models import Booking
    from blueprints.catalog.models import Category, Package, Slot, SlotStatus, Station
    from blueprints.core import clock
    from blueprints.core.extensions import db
    from blueprints.demo.city import RUSH_SERIES
    from blueprints.feeds import services as feeds
    from blueprints.feeds.models import FeedKind

    now = clock.now()
    # demo accounts must change the demo password outside demo mode; the bench serves in production mode
    db.session.execute(sa.update(User).where(User.must_change_password).values(must_change_password=False))
    db.session.commit()
    future_open = sa.and_(Slot.status == SlotStatus.OPEN, Slot.starts_at > now + timedelta(days=3))
    package_id = db.session.scalar(
        sa.select(Package.id).where(Package.category == Category.THEORY, Package.active,
                                    sa.select(Slot.id).where(Slot.package_id == Package.id, future_open).exists())
        .order_by(Package.id).limit(1))
    slot_id = db.session.scalar(
        sa.select(Slot.id).join(Booking, Booking.slot_id == Slot.id).where(future_open, Slot.package_id == package_id)
        .order_by(Slot.starts_at, Slot.id).limit(1)) or db.session.scalar(
        sa.select(Slot.id).where(future_open, Slot.package_id == package_id).order_by(Slot.starts_at).limit(1))
    if city:
        rush = list(db.session.scalars(sa.select(Slot.id).where(Slot.series_id == RUSH_SERIES).order_by(Slot.id)))
    else:  # a future open slot without approval, with room for one more small group
        rush = [db.session.scalar(
            sa.select(Slot.id).join(Station, Station.id == Slot.station_id).join(Package, Package.id == Slot.package_id)
            .where(future_open, ~Station.requires_approval, Package.min_group_size <= 5, Package.max_group_size >= 5,
                   ~sa.select(Booking.id).where(Booking.slot_id == Slot.id).exists())
            .order_by(Slot.starts_at).limit(1))]
    secretary = db.session.scalar(sa.select(User).where(User.username == "sec1"))
    token = next(s.token for s in feeds.subscriptions_for(secretary) if s.kind is FeedKind.ORGANISATION)
    feed = feeds.resolve(token)
    events = len(feeds.organisation_bookings(feed.target_id))
    return {"package": package_id, "slot": slot_id, "rush": rush, "token": token, "feed_events": events}


def reset_rush(app, slot_ids: list[int]) -> None:
    import sqlalchemy as sa

    from blueprints.booking.models import Booking, BookingEvent, Notification
    from blueprints.core.extensions import db

    ids = sa.select(Booking.id).where(Booking.slot_id.in_(slot_ids))
    db.session.execute(sa.delete(Notification).where(Notification.booking_id.in_(ids)))
    db.session.execute(sa.delete(BookingEvent).where(BookingEvent.booking_id.in_(ids)))
    db.session.execute(sa.delete(Booking).where(Booking.slot_id.in_(slot_ids)))
    db.session.commit()


def book_form(client, slot_id: int, organisation: int, headcount: int) -> dict:
    page = client.get(f"/slots/{slot_id}").get_data(as_text=True)
    return {"csrf_token": csrf_of(page), "headcount": str(headcount), "contact_name": f"书记{organisation}",
            "contact_phone": f"139{organisation:08d}", "note": ""}


def count_queries(app, targets: dict) -> dict:
    """Statements and CPU per request, on a cache hit (the second of two identical requests) and
    on a miss (the render cache switched off: what every first view after a change costs)."""
    from sqlalchemy import event

    from blueprints.core.extensions import db

    counted = {"n": 0}

    def before(conn, cursor, statement, parameters, context, executemany):
        counted["n"] += 1

    anonymous = app.test_client()
    anonymous.environ_base.update(HTTP_USER_AGENT=USER_AGENT)
    feed_url = f"/feeds/{targets['token']}.ics"
    etag = anonymous.get(feed_url).headers["ETag"]
    secretary = logged_in_client(app, "sec2")
    reset_rush(app, targets["rush"])
    booking = book_form(secretary, targets["rush"][0], 2, 5)
    cache = app.extensions.get("render_cache")

    cpu: dict = {}
    counts: dict = {}

    def once(client, method, url, expected, name, **kwargs):
        counted["n"] = 0
        event.listen(db.engine, "before_cursor_execute", before)
        started = time.process_time()
        try:
            response = client.open(url, method=method, **kwargs)
        finally:
            seconds = time.process_time() - started
            event.remove(db.engine, "before_cursor_execute", before)
        if response.status_code != expected:
            raise RuntimeError(f"{name}: {method} {url} answered {response.status_code}, expected {expected}")
        return counted["n"], seconds

    def cpu_of(client, method, url, **kwargs) -> float:
        samples = []
        for _ in range(CPU_SAMPLES):
            started = time.process_time()
            client.open(url, method=method, **kwargs)
            samples.append(time.process_time() - started)
        return statistics.median(samples) * 1000

    def run(name, client, method, url, expected, **kwargs):
        if method == "POST":  # the booking: one request at a time, the rush slot reset in between
            results = []
            for _ in range(CPU_SAMPLES + 1):  # the first warms the process up and is not counted
                results.append(once(client, method, url, expected, name, **kwargs))
                reset_rush(app, targets["rush"])
                kwargs["data"] = book_form(client, targets["rush"][0], 2, 5)
            booking_cpu = statistics.median(seconds for _, seconds in results[1:]) * 1000
            counts[name] = {"hit": results[-1][0], "miss": results[-1][0]}
            cpu[name] = {"hit": booking_cpu, "miss": booking_cpu}
            return
        once(client, method, url, expected, name, **kwargs)
        hit_count, _ = once(client, method, url, expected, name, **kwargs)
        hit_cpu = cpu_of(client, method, url, **kwargs)
        app.extensions.pop("render_cache", None)
        try:
            miss_count, _ = once(client, method, url, expected, name, **kwargs)
            miss_cpu = cpu_of(client, method, url, **kwargs)
        finally:
            if cache is not None:
                app.extensions["render_cache"] = cache
        counts[name] = {"hit": hit_count, "miss": miss_count}
        cpu[name] = {"hit": hit_cpu, "miss": miss_cpu}

    run("menu", anonymous, "GET", "/?category=theory", 200)
    cpu["menu"]["changed"] = menu_changed_cpu(anonymous, "/?category=theory")
    run("package", anonymous, "GET", f"/packages/{targets['package']}", 200)
    run("slot", anonymous, "GET", f"/slots/{targets['slot']}", 200)
    run("menu_secretary", secretary, "GET", "/?category=theory", 200)
    run("slot_secretary", secretary, "GET", f"/slots/{targets['slot']}", 200)
    run("feed_200", anonymous, "GET", feed_url, 200)
    run("feed_304", anonymous, "GET", feed_url, 304, headers={"If-None-Match": etag})
    run("booking", secretary, "POST", f"/slots/{targets['rush'][0]}/book", 302, data=booking)
    reset_rush(app, targets["rush"])
    return counts, cpu


def menu_changed_cpu(client, url: str, rounds: int = CPU_SAMPLES) -> float:
    """CPU of the first view of the menu after a booking of one of its slots (that slot's
    version bumped, as the booking's commit does): the page is built again, the other cards
    and the filter options come from the cache."""
    import re as _re

    from blueprints.core import changes

    slot_ids = _re.findall(r'data-slot-id="(\d+)"', client.get(url).get_data(as_text=True))
    samples = []
    for n in range(rounds):
        changes.bump({changes.slot(slot_ids[n % len(slot_ids)])})
        started = time.process_time()
        client.get(url)
        samples.append(time.process_time() - started)
    return statistics.median(samples) * 1000


def feed_changed_cpu(app, targets: dict, rounds: int = CPU_SAMPLES) -> float:
    """CPU of an unconditional feed fetch right after one of the organisation's bookings changed
    (the document is built again; the other events' serialisations are reused)."""
    import sqlalchemy as sa

    from blueprints.booking.models import Booking, BookingStatus
    from blueprints.core.extensions import db
    from blueprints.feeds import services as feeds

    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=USER_AGENT)
    url = f"/feeds/{targets['token']}.ics"
    client.get(url)
    organisation_id = feeds.resolve(targets["token"]).target_id
    booking = db.session.scalar(sa.select(Booking).where(
        Booking.organisation_id == organisation_id, Booking.status == BookingStatus.CONFIRMED).limit(1))
    samples = []
    for n in range(rounds):
        booking.headcount += 1 if n % 2 == 0 else -1
        db.session.commit()
        started = time.process_time()
        assert client.get(url).status_code == 200
        samples.append(time.process_time() - started)
    return statistics.median(samples) * 1000


def hello_cpu() -> float:
    """CPU time per request of the ceiling app through the same test client path (ms)."""
    from bench.hello import app as hello_app

    client = hello_app.test_client()
    for _ in range(50):
        client.get("/")
    started = time.process_time()
    for _ in range(CPU_SAMPLES * 20):
        client.get("/")
    return (time.process_time() - started) / (CPU_SAMPLES * 20) * 1000


def signed_in_session(app, user) -> tuple[str, str]:
    """A session cookie and CSRF token for ``user``, made the way the login view makes them
    (Flask-Login bound to 127.0.0.1 and the bench's user agent) but without scrypt per user."""
    from flask import session
    from flask_login import login_user
    from flask_wtf.csrf import generate_csrf

    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": USER_AGENT}
    with app.app_context(), app.test_request_context("/", environ_base=environ):  # a fresh ``g``
        login_user(user)
        token = generate_csrf()
        cookie = app.session_interface.get_signing_serializer(app).dumps(dict(session))
    return f"session={cookie}", token


def db_session_user(app, username: str):
    import sqlalchemy as sa

    from blueprints.accounts.models import User
    from blueprints.core.extensions import db

    return db.session.scalar(sa.select(User).where(User.username == username))


def rush_requests(app, targets: dict) -> Path:
    """One line per (organisation, rush slot): POST with that secretary's session and CSRF token."""
    import random

    import sqlalchemy as sa

    from blueprints.accounts.models import User
    from blueprints.core.extensions import db

    users = db.session.scalars(sa.select(User).where(
        User.username.in_([f"sec{n}" for n in range(2, 2 + RUSH_ORGS)])).order_by(User.id)).all()
    lines = []
    for user in users:
        cookie, token = signed_in_session(app, user)
        organisation = user.organisation_id
        for slot_id in targets["rush"]:
            body = urlencode({"csrf_token": token, "headcount": 3 + organisation % 6,
                              "contact_name": f"书记{organisation}", "contact_phone": f"139{organisation:08d}"})
            lines.append(f"POST\t/slots/{slot_id}/book\t{cookie}\t{body}")
    random.Random(7).shuffle(lines)
    path = DATA / "rush.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def verify(app, rush: list[int]) -> dict:
    import sqlalchemy as sa

    from blueprints.core.extensions import db

    db.session.rollback()
    holding = "('pending', 'confirmed', 'attended')"
    over = db.session.execute(sa.text(f"""
        SELECT count(*) FROM (
          SELECT s.id, s.capacity, s.max_groups,
                 coalesce(sum(b.headcount) FILTER (WHERE b.status IN {holding}), 0) AS people,
                 count(b.id) FILTER (WHERE b.status IN {holding}) AS groups
          FROM slots s LEFT JOIN bookings b ON b.slot_id = s.id GROUP BY s.id) x
        WHERE people > capacity OR (max_groups IS NOT NULL AND groups > max_groups)""")).scalar()
    duplicates = db.session.execute(sa.text("""
        SELECT count(*) FROM (SELECT slot_id, organisation_id FROM bookings
        WHERE status NOT IN ('declined', 'cancelled') GROUP BY 1, 2 HAVING count(*) > 1) x""")).scalar()
    without_events = db.session.execute(sa.text("""
        SELECT count(*) FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM booking_events e WHERE e.booking_id = b.id)
    """)).scalar()
    rows = db.session.execute(sa.text(f"""
        SELECT s.id, s.capacity, coalesce(sum(b.headcount) FILTER (WHERE b.status IN {holding}), 0), count(b.id)
        FROM slots s LEFT JOIN bookings b ON b.slot_id = s.id WHERE s.id = ANY(:ids) GROUP BY s.id ORDER BY s.id"""),
        {"ids": rush}).all()
    return {"overbooked_slots": over, "duplicate_active_bookings": duplicates, "bookings_without_events": without_events,
            "rush_slots": [{"slot": r[0], "capacity": r[1], "held": r[2], "bookings": r[3]} for r in rows]}


# -- gunicorn and wrk ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command(app_spec: str, port: int) -> list[str]:
    config = ROOT / "gunicorn.conf.py"
    base = [str(VENV_BIN / "gunicorn")]
    if config.exists():
        return base + ["-c", str(config), "-b", f"127.0.0.1:{port}", app_spec]
    # the production flags until gunicorn.conf.py exists
    workers = min(2 * (os.cpu_count() or 1) + 1, 8)
    return base + ["-w", str(workers), "-k", "sync", "--max-requests", "1000", "--max-requests-jitter", "100",
                   "--keep-alive", "5", "-b", f"127.0.0.1:{port}", app_spec]


class Server:
    def __init__(self, app_spec: str, url: str, name: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = DATA / f"gunicorn-{name}.log"
        self.command = gunicorn_command(app_spec, self.port)
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=app_environment(url),
                                        stdout=subprocess.DEVNULL, stderr=self.log_path.open("w"),
                                        start_new_session=True)

    def wait(self, path: str = "/") -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + path, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        sys.exit(f"gunicorn did not answer in time; see {self.log_path}")

    def drain(self, quick: float = 0.1, limit: float = 30) -> None:
        """Wait until the requests a previous scenario left queued are served (wrk stops sending,
        gunicorn does not stop answering): its backlog must not count against the next scenario."""
        deadline, quick_in_a_row = time.monotonic() + limit, 0
        while time.monotonic() < deadline and quick_in_a_row < 3:
            started = time.monotonic()
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=limit).read()
            except OSError:
                pass
            quick_in_a_row = quick_in_a_row + 1 if time.monotonic() - started < quick else 0
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wrk(server: Server, path: str, *, duration: int = DURATION, headers: dict | None = None,
        requests_file: Path | None = None, warmup: bool = True) -> dict:
    command = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "--timeout", "10s",
               "-s", str(ROOT / "bench" / "report.lua"), "-H", f"User-Agent: {USER_AGENT}"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    env = dict(os.environ, BENCH_THREADS=str(THREADS), BENCH_REQUESTS=str(requests_file or ""))
    server.drain()
    if warmup:
        subprocess.run(command + ["-d", f"{WARMUP}s", server.base + path], env=env, capture_output=True, check=True)
    load_before = os.getloadavg()[0]
    result = subprocess.run(command + ["-d", f"{duration}s", server.base + path], env=env,
                            capture_output=True, text=True, check=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON "))
    data = json.loads(line[len("BENCH_JSON "):])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["load"] = (load_before, os.getloadavg()[0])
    return data


def etag_of(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        return response.headers["ETag"]


# -- report -------------------------------------------------------------------------------------

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    os_name = next((line.split("=", 1)[1].strip('"') for line in Path("/etc/os-release").read_text().splitlines()
                    if line.startswith("PRETTY_NAME")), platform.platform())

    def version(*command):
        try:
            return subprocess.run(command, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    from importlib import metadata

    import gunicorn
    import psycopg
    import sqlalchemy

    return {"cpu": cpu, "cores": os.cpu_count(), "memory": f"{memory / 1024 / 1024:.1f} GiB", "os": os_name,
            "kernel": platform.release(), "python": platform.python_version(),
            "postgresql": version("psql", "--version"), "gunicorn": gunicorn.__version__,
            "flask": metadata.version("flask"),
            "sqlalchemy": sqlalchemy.__version__, "psycopg": psycopg.__version__,
            "wrk": version("sh", "-c", "wrk -v 2>&1")}


def ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def write_results(context: dict) -> Path:
    m = context["machine"]
    # the machine is shared: the ceiling is measured before and after the app, and averaged
    ceiling = (context["runs"]["hello"]["rps"] + context["runs"]["hello_after"]["rps"]) / 2
    rows = []
    qd, qc, cpu = context["queries_demo"], context["queries_city"], context["cpu_city"]

    def measured(table, key, field, fmt="{}"):
        key = {"rush": "booking", "menu_gzip": "menu"}.get(key, key)
        if key.startswith("hello"):
            return fmt.format(0) if table is not cpu else f"{context['cpu_city']['hello']:.1f}"
        value = table.get(key, {}).get(field)
        return "–" if value is None else fmt.format(value)

    for key, title, path in context["scenarios"]:
        run = context["runs"][key]
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(run["statuses"].items()))
        if run["socket_errors"]:
            statuses += f"; timeouts/socket errors: {run['socket_errors']}"
        if run["p50"]:
            latency = f"{ms(run['p50'])} | {ms(run['p95'])} | {ms(run['p99'])}"
        else:  # every answer came after wrk's 10 s timeout
            latency = "> 10 s | > 10 s | > 10 s"
        queries = (f"{measured(qd, key, 'hit')} / {measured(qc, key, 'hit')} | "
                   f"{measured(qd, key, 'miss')} / {measured(qc, key, 'miss')}")
        rows.append(f"| {title} | `{path}` | {run['rps']:.0f} | {latency} | {run['rps'] / ceiling:.0%} | "
                    f"{measured(cpu, key, 'hit', '{:.1f}')} | {measured(cpu, key, 'miss', '{:.1f}')} | "
                    f"{queries} | {statuses} |")
    runs = context["runs"]
    checks = [
        ("SQL statements equal at demo and city scale, 0 on a hit",
         all(qd[k] == qc[k] for k in qd) and all(qc[k]["hit"] == 0 for k in qc
                                                  if k not in {"booking", "menu_secretary", "slot_secretary"}),
         ", ".join(f"{k} {qd[k]['hit']}/{qc[k]['hit']} hit, {qd[k]['miss']}/{qc[k]['miss']} miss" for k in qd)),
        *[(f"{name}, anonymous hit ≥ 20% of the ceiling", runs[name]["rps"] >= 0.2 * ceiling,
           f"{runs[name]['rps'] / ceiling:.0%}") for name in ("menu", "package", "slot")],
        *[(f"{name} ≥ 10% of the ceiling", runs[name]["rps"] >= 0.1 * ceiling,
           f"{runs[name]['rps'] / ceiling:.0%}") for name in ("menu_secretary", "slot_secretary")],
        ("menu miss ≤ 12 ms app CPU (after a booking of a listed slot)", cpu["menu"]["changed"] <= 12,
         f"{cpu['menu']['changed']:.1f} ms after a booking ({cpu['menu']['miss']:.1f} ms with the cache off)"),
        ("feed 304 ≥ 50% of the ceiling", runs["feed_304"]["rps"] >= 0.5 * ceiling,
         f"{runs['feed_304']['rps'] / ceiling:.0%}"),
        (f"unconditional {context['targets']['feed_events']}-event feed ≤ 2 ms unchanged, ≤ 20 ms changed",
         cpu["feed_200"]["hit"] <= 2 and cpu["feed_200"]["changed"] <= 20,
         f"{cpu['feed_200']['hit']:.1f} ms unchanged, {cpu['feed_200']['changed']:.1f} ms after one booking "
         f"changed ({cpu['feed_200']['miss']:.1f} ms built from nothing)"),
        ("booking POST ≤ 20 ms app CPU", cpu["booking"]["miss"] <= 20, f"{cpu['booking']['miss']:.1f} ms"),
        ("booking rush p95 < 250 ms", runs["rush"]["p95"] < 250_000, f"{ms(runs['rush']['p95'])} ms"),
        ("zero overbooking after the rush",
         context["verify"]["overbooked_slots"] == 0 and context["verify"]["duplicate_active_bookings"] == 0,
         f"{context['verify']['overbooked_slots']} slots over capacity, "
         f"{context['verify']['duplicate_active_bookings']} duplicate active bookings"),
    ]
    analysis = ROOT / "bench" / "analysis.md"
    text = f"""# Benchmark results

Generated by `make bench` (`bench/run.py`) on {context['date']}; re-running overwrites this file
(the analysis at the end is kept in `bench/analysis.md`).

## Machine

| | |
| --- | --- |
| CPU | {m['cpu']}, {m['cores']} cores |
| memory | {m['memory']} |
| system | {m['os']}, Linux {m['kernel']} |
| software | Python {m['python']}, {m['postgresql']}, gunicorn {m['gunicorn']}, SQLAlchemy {m['sqlalchemy']}, psycopg {m['psycopg']}, {m['wrk']} |
| server | `{' '.join(context['gunicorn'])}` (the same for the ceiling with `bench.hello:app`); {context['workers']} |
| load generator | wrk, {THREADS} threads, {CONNECTIONS} connections, {DURATION} s per scenario after {WARMUP} s warm-up (rush: {RUSH_DURATION} s), same machine, loopback |
| load average | {context['load_start']:.2f} when the run started, {context['load_end']:.2f} at the end (other processes share these {m['cores']} cores) |
| ceiling | {context['runs']['hello']['rps']:.0f} req/s before the app scenarios, {context['runs']['hello_after']['rps']:.0f} after; ratios use the mean, {ceiling:.0f} req/s |

## Data

City database `{database_name(CITY_URL)}` ({context['city_load']}; {context['city_load_seconds']:.0f} s).
Demo database `{database_name(DEMO_URL)}` (`flask demo load`). Feed: organisation 1 with
{context['targets']['feed_events']} events at city scale. Rush: {RUSH_ORGS} organisations (logged in, CSRF
token from the slot page) × {len(context['targets']['rush'])} slots of {context['rush_capacity']} places,
{RUSH_ORGS * len(context['targets']['rush'])} distinct POSTs in random order, repeated when wrk runs through them.

## Results

Latencies in ms; req/s, latencies and answers from wrk against gunicorn, where every request
after the first is a cache hit. App CPU: Python CPU time per request in-process (test client,
city database; PostgreSQL's share not included), the median of {CPU_SAMPLES} requests (bookings: {CPU_SAMPLES}
bookings of the rush slot, reset in between, after one that warms the process up), which depends
far less on what else the machine is doing than req/s — on a hit, and on a miss (the render
cache off: what the first view after a change costs). Queries: SQL statements per request
(SQLAlchemy `before_cursor_execute`), demo / city database, on a hit and on a miss.

| scenario | path | req/s | p50 | p95 | p99 | of ceiling | CPU ms hit | CPU ms miss | queries hit | queries miss | answers |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(rows)}

After the rush: {json.dumps(context['verify'], ensure_ascii=False)}

## Targets

| target | met | value |
| --- | --- | --- |
{chr(10).join(f"| {name} | {'yes' if ok else '**no**'} | {value} |" for name, ok, value in checks)}
"""
    if analysis.exists():
        text += "\n" + analysis.read_text()
    path = ROOT / "bench" / "RESULTS.md"
    path.write_text(text)
    (DATA / "results.json").write_text(json.dumps(context, indent=2, ensure_ascii=False, default=str))
    return path


def measure_hello() -> dict:
    server = Server("bench.hello:app", CITY_URL, "hello")
    try:
        server.wait()
        return wrk(server, "/")
    finally:
        server.stop()


# -- main ---------------------------------------------------------------------------------------

def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    DATA.mkdir(parents=True, exist_ok=True)
    context: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "load_start": os.getloadavg()[0], "machine": machine()}
    for url in (DEMO_URL, CITY_URL):
        ensure_database(url)
        flask(url, "db", "upgrade")
    log("demo database: " + flask(DEMO_URL, "demo", "load").splitlines()[0])
    started = time.monotonic()
    context["city_load"] = flask(CITY_URL, "demo", "load", "--scale", "city", "--factor", str(FACTOR))
    context["city_load_seconds"] = time.monotonic() - started
    log(context["city_load"])

    with application(DEMO_URL) as app:
        demo_targets = find_targets(app, city=False)
        context["queries_demo"], _ = count_queries(app, demo_targets)
    log(f"queries at demo scale: {context['queries_demo']}")
    with application(CITY_URL) as app:
        targets = find_targets(app, city=True)
        context["targets"] = targets
        context["queries_city"], context["cpu_city"] = count_queries(app, targets)
        context["cpu_city"]["hello"] = hello_cpu()
        context["cpu_city"]["feed_200"]["changed"] = feed_changed_cpu(app, targets)
        log(f"CPU ms per request in-process at city scale: {context['cpu_city']}")
        log(f"queries at city scale: {context['queries_city']}")
        log(f"sessions and CSRF tokens of {RUSH_ORGS} secretaries for the rush")
        rush_file = rush_requests(app, targets)
        targets["secretary_cookie"], _ = signed_in_session(
            app, db_session_user(app, "sec3"))
        from blueprints.catalog.models import Slot
        from blueprints.core.extensions import db

        context["rush_capacity"] = db.session.get(Slot, targets["rush"][0]).capacity
        db.session.remove()
        db.engine.dispose()

    context["gunicorn"] = gunicorn_command("wsgi:app" if (ROOT / "wsgi.py").exists() else "app:create_app()", 0)
    context["gunicorn"][-2] = "127.0.0.1:PORT"
    context["gunicorn"] = [part.replace(str(ROOT) + "/", "") for part in context["gunicorn"]]
    context["workers"] = f"WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', 'default')}"
    runs: dict = {}
    scenarios = [("hello", "ceiling: minimal Flask app", "/")]
    log("ceiling: hello app")
    runs["hello"] = measure_hello()
    log(f"hello: {runs['hello']['rps']:.0f} req/s")

    app_spec = "wsgi:app" if (ROOT / "wsgi.py").exists() else "app:create_app()"
    server = Server(app_spec, CITY_URL, "app")
    feed_path = f"/feeds/{targets['token']}.ics"
    secretary_cookie = {"Cookie": targets["secretary_cookie"]}
    pages = [
        ("menu", "menu, category theory, anonymous", "/?category=theory", {}),
        ("menu_gzip", "the same, Accept-Encoding: gzip", "/?category=theory", {"Accept-Encoding": "gzip"}),
        ("package", "package page, anonymous", f"/packages/{targets['package']}", {}),
        ("slot", "slot page, anonymous", f"/slots/{targets['slot']}", {}),
        ("menu_secretary", "menu, logged-in secretary", "/?category=theory", secretary_cookie),
        ("slot_secretary", "slot page, logged-in secretary", f"/slots/{targets['slot']}", secretary_cookie),
        ("feed_200", f"organisation feed, {targets['feed_events']} events, unconditional", feed_path, {}),
    ]
    try:
        server.wait()
        for key, title, path, headers in pages:
            runs[key] = wrk(server, path, headers=headers)
            scenarios.append((key, title, path))
            log(f"{key}: {runs[key]['rps']:.0f} req/s, p95 {ms(runs[key]['p95'])} ms")
        etag = etag_of(server.base + feed_path)
        runs["feed_304"] = wrk(server, feed_path, headers={"If-None-Match": etag})
        scenarios.append(("feed_304", "organisation feed, If-None-Match → 304", feed_path))
        log(f"feed_304: {runs['feed_304']['rps']:.0f} req/s")
        with application(CITY_URL) as app:
            reset_rush(app, targets["rush"])
            db.session.remove()
            db.engine.dispose()
        runs["rush"] = wrk(server, "/", duration=RUSH_DURATION, requests_file=rush_file,
                           warmup=False)
        scenarios.append(("rush", "booking POST rush", f"/slots/<{len(targets['rush'])} rush slots>/book"))
        log(f"rush: {runs['rush']['rps']:.0f} req/s, p95 {ms(runs['rush']['p95'])} ms, {runs['rush']['statuses']}")
    finally:
        server.stop()
    runs["hello_after"] = measure_hello()
    scenarios.append(("hello_after", "ceiling again, after the app", "/"))
    log(f"hello again: {runs['hello_after']['rps']:.0f} req/s")
    with application(CITY_URL) as app:
        context["verify"] = verify(app, targets["rush"])
        db.session.remove()
        db.engine.dispose()
    log(f"after the rush: {context['verify']}")
    context["runs"], context["scenarios"] = runs, scenarios
    context["load_end"] = os.getloadavg()[0]
    log(f"wrote {write_results(context)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:  # rewrite RESULTS.md from the last run (after editing analysis.md)
        print(write_results(json.loads((DATA / "results.json").read_text())))
    else:
        main()
