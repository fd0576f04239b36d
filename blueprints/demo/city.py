"""``flask demo load --scale city``: a whole city's worth of data for the benchmark, in bulk.

At factor 1.0: 500 stations, 2,000 packages, 100,000 slots, 20,000 organisations (one secretary
each), 300,000 bookings, each with its BookingEvent history. Rows are generated in Python with
fixed seeds and written with PostgreSQL ``COPY`` (SQLAlchemy Core ``executemany`` elsewhere), in one
transaction, with explicit ids; sequences are moved past them afterwards.

The data respects every rule the application enforces: no slot holds more people than its
capacity or more groups than ``max_groups``, an organisation has at most one booking per slot,
group sizes fit the package. Organisation 1 (``sec1``) has exactly ``FEED_EVENTS`` bookings in its
calendar feed's window, and ``RUSH_SLOTS`` empty future slots (series ``bench-rush``) wait for the
booking rush of ``bench/run.py``.

Idempotent: a database that already holds city data of the same factor is reused; city data of
another factor is replaced; any other data makes the loader refuse.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta, timezone

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from blueprints.accounts.models import Organisation, User
from blueprints.booking.models import Booking, BookingEvent
from blueprints.catalog.models import Campaign, Package, Slot, Station, package_stations, station_hosts
from blueprints.core import clock
from blueprints.core.extensions import db

from . import data
from .loader import DEMO_PASSWORD

CITY = {"stations": 500, "packages": 2000, "slots": 100_000, "organisations": 20_000, "bookings": 300_000}
MINIMUM = {"stations": 3, "packages": 6, "slots": 40, "organisations": 30, "bookings": 40}
CITY_CAMPAIGN = "全市主题党日服务菜单（基准数据）"
FEED_ORGANISATION_ID = 1
FEED_EVENTS = 200
RUSH_SERIES = "bench-rush"
RUSH_SLOTS = 5
RUSH_CAPACITY = 100
HISTORY_DAYS = 89  # inside the feed's 90-day window
FUTURE_DAYS = 120

DISTRICTS = ["黄浦区", "徐汇区", "长宁区", "静安区", "普陀区", "虹口区", "杨浦区", "闵行区",
             "宝山区", "嘉定区", "浦东新区", "金山区", "松江区", "青浦区", "奉贤区", "崇明区"]
TOWNS = ["街道", "镇"]
THEMES = ["“四史”", "红色寻访", "初心", "滨江", "枢纽先锋", "暖新", "五彩进博", "社区治理", "乡村振兴",
          "城市更新", "一江一河", "新就业群体", "楼宇党建", "文明实践", "垃圾分类", "为老服务"]
KIND_OF = {"theory": "理论学习", "practice": "党性实践", "volunteer": "志愿服务"}
ORG_KINDS = ["branch"] * 7 + ["general_branch", "committee", "regional_unit"]


class CityDataError(RuntimeError):
    """The database holds data that is not city benchmark data."""


@dataclass(frozen=True)
class CityCounts:
    stations: int
    packages: int
    slots: int
    organisations: int
    bookings: int

    @classmethod
    def for_factor(cls, factor: float) -> "CityCounts":
        return cls(**{k: max(MINIMUM[k], round(v * factor)) for k, v in CITY.items()})


def _marker(factor: float) -> str:
    return f"城市规模基准测试数据，scale={factor:g}"


def load_city(factor: float = 1.0) -> dict:
    """Load (or reuse) city-scale data; returns counts plus ``reused``."""
    existing = db.session.scalar(sa.select(Campaign.description).where(Campaign.name == CITY_CAMPAIGN))
    if existing == _marker(factor):
        return {**_counts(), "reused": True}
    if existing is None and db.session.scalar(sa.select(Station.id).limit(1)) is not None:
        raise CityDataError("the database already holds other data; load city data into an empty database")
    if existing is not None:
        _wipe()
    rows = generate(CityCounts.for_factor(factor), factor)
    for table, (columns, values) in rows.items():
        bulk_insert(table, columns, values)
    _after_bulk_load()
    db.session.commit()
    return {**_counts(), "reused": False}


def _counts() -> dict:
    def count(model):
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))

    return {"stations": count(Station), "packages": count(Package), "slots": count(Slot),
            "organisations": count(Organisation), "bookings": count(Booking),
            "booking_events": count(BookingEvent)}


def _wipe() -> None:
    tables = db.metadata.sorted_tables
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text(
            "TRUNCATE " + ", ".join(t.name for t in tables) + " RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(tables):
            db.session.execute(table.delete())


def bulk_insert(table: sa.Table, columns: list[str], rows: list[tuple]) -> None:
    """COPY on PostgreSQL, one executemany elsewhere. Values are plain Python (enum values as text)."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        connection.execute(table.insert(), [dict(zip(columns, row)) for row in rows])


def _after_bulk_load() -> None:
    if db.engine.dialect.name != "postgresql":
        return
    for table in db.metadata.sorted_tables:
        if "id" in table.c and table.c.id.primary_key:
            db.session.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"))
    db.session.flush()
    connection = db.session.connection()
    for table in ("stations", "packages", "package_stations", "slots", "organisations", "users",
                  "bookings", "booking_events"):
        connection.exec_driver_sql(f"ANALYZE {table}")


# -- generation ---------------------------------------------------------------------------------

def generate(counts: CityCounts, factor: float = 1.0) -> dict:
    """Every row, keyed by table, as (columns, list of tuples). Deterministic for given counts."""
    rng = random.Random(20261122)
    now = clock.now()
    today = clock.today()
    out: dict = {}

    # campaigns: the demo's three plus the city menu, which carries the marker
    campaigns = [(c["name"], c["description"]) for c in data.CAMPAIGNS] + [(CITY_CAMPAIGN, _marker(factor))]
    out[Campaign.__table__] = (
        ["id", "name", "description", "starts_on", "ends_on", "active", "created_at", "updated_at"],
        [(i, name, text, today.replace(month=1, day=1), today.replace(year=today.year + 1, month=12, day=31),
          True, now, now) for i, (name, text) in enumerate(campaigns, start=1)],
    )
    city_campaign_id = len(campaigns)

    # stations; station 1 takes bookings without approval (the rush runs there)
    stations = []
    for n in range(1, counts.stations + 1):
        district = DISTRICTS[n % len(DISTRICTS)]
        sub = f"{district[:-1]}第{n % 13 + 1}{TOWNS[n % 2]}"
        approval = n != 1 and n % 5 == 0
        stations.append((n, f"{district}{sub}第{n}党群服务站", f"{district}{sub}服务路{n}号", sub,
                         "面向辖区基层党组织和区域单位开放的党群服务站点。", "主题党日活动",
                         f"021-{60000000 + n:08d}", approval, 24, 48 if approval else 24, True, None, now, now))
    out[Station.__table__] = (
        ["id", "name", "address", "subdistrict", "description", "speciality", "phone", "requires_approval",
         "booking_cutoff_hours", "cancel_deadline_hours", "active", "public_feed_token", "created_at",
         "updated_at"],
        stations,
    )
    needs_approval = {row[0]: row[7] for row in stations}

    # packages, each offered at one to three stations
    packages = {}
    package_rows, pairs = [], []
    categories = list(KIND_OF)
    for n in range(1, counts.packages + 1):
        category = categories[n % 3]
        low = 1 if n == 1 else rng.choice([1, 2, 3, 5])
        high = 50 if n == 1 else rng.choice([20, 30, 40, 60])
        minutes = rng.choice([60, 90, 120, 150])
        packages[n] = (low, high, minutes)
        theme = THEMES[n % len(THEMES)]
        package_rows.append((n, category, f"{theme}{KIND_OF[category]}第{n}期", f"{theme}主题的{KIND_OF[category]}活动。",
                             f"{theme}主题的{KIND_OF[category]}活动，活动结束后可下载签到表。", minutes, low, high,
                             city_campaign_id if n % 4 else (n % 3) + 1, True, now, now))
        offered = {1} if n == 1 else set(rng.sample(range(1, counts.stations + 1), k=min(rng.randint(1, 3), counts.stations)))
        pairs.extend((n, s) for s in sorted(offered))
    out[Package.__table__] = (
        ["id", "category", "title", "summary", "description", "duration_minutes", "min_group_size",
         "max_group_size", "campaign_id", "active", "created_at", "updated_at"],
        package_rows,
    )
    out[package_stations] = (["package_id", "station_id"], pairs)

    # slots spread evenly over the offers, from 89 days ago to 120 days ahead; the rush slots last
    slot_rows, slots = [], []
    regular = counts.slots - RUSH_SLOTS
    for n in range(1, counts.slots + 1):
        if n <= regular:
            package_id, station_id = pairs[(n - 1) % len(pairs)]
            day = today + timedelta(days=rng.randint(-HISTORY_DAYS, FUTURE_DAYS))
            hour, minute = rng.choice(data.SLOT_TIMES)
            capacity = rng.choice([20, 30, 40, 50, 60])
            max_groups = 4 if capacity >= 40 and n % 3 == 0 else None
            roll = rng.random()
            status = "cancelled" if roll < 0.01 else "closed" if roll < 0.03 else "open"
            series = None
        else:
            package_id, station_id = 1, 1
            day = today + timedelta(days=10 + n - regular)
            hour, minute, capacity, max_groups, status, series = 14, 0, RUSH_CAPACITY, None, "open", RUSH_SERIES
        starts = clock.local_datetime(day, hour, minute).astimezone(timezone.utc)
        ends = starts + timedelta(minutes=packages[package_id][2])
        slot_rows.append((n, package_id, station_id, starts, ends, capacity, max_groups, status, "", series,
                          "", 0, now, now))
        slots.append((n, package_id, station_id, starts, capacity, max_groups, status))
    out[Slot.__table__] = (
        ["id", "package_id", "station_id", "starts_at", "ends_at", "capacity", "max_groups", "status", "note",
         "series_id", "cancel_reason", "revision", "created_at", "updated_at"],
        slot_rows,
    )

    # organisations and users: admin, one host per station, one secretary per organisation
    org_rows = []
    for n in range(1, counts.organisations + 1):
        district = DISTRICTS[n % len(DISTRICTS)]
        sub = f"{district[:-1]}第{n % 13 + 1}{TOWNS[n % 2]}"
        org_rows.append((n, f"{district}{sub}第{n}党支部", ORG_KINDS[n % len(ORG_KINDS)], None, sub, 10 + n % 90,
                         f"书记{n}", f"139{n:08d}", True, now, now))
    out[Organisation.__table__] = (
        ["id", "name", "kind", "parent_id", "subdistrict", "member_count", "secretary_name", "secretary_phone",
         "active", "created_at", "updated_at"],
        org_rows,
    )
    password = generate_password_hash(DEMO_PASSWORD, method="scrypt")  # one hash for every account
    user_columns = ["id", "username", "display_name", "password_hash", "role", "organisation_id", "phone", "email",
                    "active", "must_change_password", "session_version", "created_at", "updated_at"]
    user_rows = [(1, "admin", "区委组织部管理员", password, "admin", None, "", "", True, False, 1, now, now)]
    for n in range(1, counts.stations + 1):
        user_rows.append((1 + n, f"host{n}", f"站点管理员{n}", password, "host", None, "", "", True, False, 1, now, now))
    secretary_base = 1 + counts.stations
    for n in range(1, counts.organisations + 1):
        user_rows.append((secretary_base + n, f"sec{n}", f"书记{n}", password, "secretary", n, f"139{n:08d}", "",
                          True, False, 1, now, now))
    out[User.__table__] = (user_columns, user_rows)
    out[station_hosts] = (["user_id", "station_id"], [(1 + n, n) for n in range(1, counts.stations + 1)])

    # bookings: organisation 1 first (its feed), then round-robin over the slots while room is left
    held = {}  # slot id -> [people, groups, set of organisations]
    booking_rows, event_rows = [], []
    event_id = 0

    def add(slot, organisation_id, headcount, shown_in_feed=False):
        nonlocal event_id
        n, package_id, station_id, starts, capacity, max_groups, status = slot
        past = starts < now
        roll = rng.random()
        if shown_in_feed:
            final = "attended" if past else "pending" if needs_approval[station_id] else "confirmed"
        elif roll < 0.06:
            final = "cancelled"
        elif past:
            final = "no_show" if roll < 0.12 else "attended"
        else:
            final = "pending" if needs_approval[station_id] else "confirmed"
        created = min(starts - timedelta(days=rng.randint(2, 30), minutes=rng.randint(0, 600)), now)
        first = "pending" if needs_approval[station_id] else "confirmed"
        updated = created if final == first else min(created + timedelta(days=1), now) if not past else \
            min(starts + timedelta(hours=3), now)
        booking_id = len(booking_rows) + 1
        booking_rows.append((booking_id, n, organisation_id, secretary_base + organisation_id, headcount,
                             f"书记{organisation_id}", f"139{organisation_id:08d}", "", final,
                             headcount if final == "attended" else None,
                             starts if final == "attended" else None, 0 if final == first else 1, created, updated))
        event_id += 1
        event_rows.append((event_id, booking_id, secretary_base + organisation_id, created, None, first,
                           "created", "", ""))
        if final != first:
            event_id += 1
            action = {"cancelled": "cancelled", "attended": "checked_in", "no_show": "no_show"}[final]
            event_rows.append((event_id, booking_id, None, updated, first, final, action, "", ""))
        state = held.setdefault(n, [0, 0, set()])
        state[2].add(organisation_id)
        if final != "cancelled":
            state[0] += headcount
            state[1] += 1

    def room(slot) -> int:
        people, groups, _ = held.get(slot[0], (0, 0, ()))
        if slot[5] is not None and groups >= slot[5]:
            return 0
        return slot[4] - people

    bookable = [s for s in slots[:regular] if s[6] != "cancelled"]
    feed_slots = [s for s in bookable if s[6] == "open"]
    rng.shuffle(feed_slots)
    feed_events = min(FEED_EVENTS, len(feed_slots), counts.bookings // 2)
    for slot in feed_slots[:feed_events]:
        add(slot, FEED_ORGANISATION_ID, packages[slot[1]][0], shown_in_feed=True)
    remaining = counts.bookings - feed_events
    while remaining > 0 and bookable:
        still_open = []
        for slot in bookable:
            if remaining == 0:
                break
            low, high, _ = packages[slot[1]]
            space = room(slot)
            if space < low:
                continue
            organisation_id = rng.randint(2, counts.organisations)
            if organisation_id in held.get(slot[0], (0, 0, set()))[2]:
                still_open.append(slot)
                continue
            add(slot, organisation_id, rng.randint(low, min(high, space, max(low, 15))))
            remaining -= 1
            still_open.append(slot)
        bookable = still_open
    out[Booking.__table__] = (
        ["id", "slot_id", "organisation_id", "created_by_id", "headcount", "contact_name", "contact_phone", "note",
         "status", "attended_headcount", "checked_in_at", "revision", "created_at", "updated_at"],
        booking_rows,
    )
    out[BookingEvent.__table__] = (
        ["id", "booking_id", "actor_id", "at", "from_status", "to_status", "action", "reason", "detail"],
        event_rows,
    )
    return out


def city_summary(counts: dict) -> str:
    text = ", ".join(f"{v} {k}" for k, v in counts.items() if k != "reused")
    return ("reused existing city data: " if counts.get("reused") else "city data loaded: ") + text


__all__ = ["CityCounts", "CityDataError", "load_city", "generate", "bulk_insert", "city_summary",
           "RUSH_SERIES", "FEED_ORGANISATION_ID", "FEED_EVENTS"]
