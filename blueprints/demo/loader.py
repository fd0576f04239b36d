"""Loads (idempotently) the demo district: get-or-create by natural keys, never duplicates."""
from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import select

from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
from blueprints.booking.models import Booking, BookingEvent, BookingStatus
from blueprints.catalog.models import Campaign, Category, Package, Slot, Station
from blueprints.core import clock
from blueprints.core.extensions import db

from . import data
from .history import load_history, quiet_organisations

DEMO_PASSWORD = "partyday"
DEMO_MARKER_USERS = ("admin", "host1", "sec1")


def demo_data_loaded() -> bool:
    found = db.session.scalars(select(User.username).where(User.username.in_(DEMO_MARKER_USERS)))
    return len(set(found)) == len(DEMO_MARKER_USERS)


def advertised_accounts() -> list[User]:
    """Demo accounts are advertised on the login page only while demo data is loaded."""
    if not demo_data_loaded():
        return []
    names = ["admin", "host1", "host2", "sec1", "sec2"]
    users = db.session.scalars(select(User).where(User.username.in_(names), User.active)).all()
    return sorted(users, key=lambda u: names.index(u.username))


def database_is_empty() -> bool:
    return db.session.scalar(select(Station.id).limit(1)) is None


def _get_or_create(model, defaults: dict | None = None, **keys):
    instance = db.session.scalar(select(model).filter_by(**keys))
    if instance is None:
        instance = model(**keys, **(defaults or {}))
        db.session.add(instance)
    return instance


def load_demo(branches: int = 12, today: date | None = None, require_password_change: bool = False,
              history: bool = True) -> dict:
    """Create the demo district. Returns counts of what exists afterwards.

    ``require_password_change`` (``flask demo load`` sets it) marks new demo accounts: their
    password is printed on the login page, so outside DEMO_MODE it must be changed at first login.
    ``history``: also play back the past quarter (tests of other things leave it out: it books
    dozens of sessions through the booking services and takes seconds).
    """
    today = today or clock.today()
    campaigns = _load_campaigns(today)
    stations = _load_stations()
    packages = _load_packages(campaigns, stations)
    organisations = _load_organisations(branches)
    db.session.flush()
    _load_accounts(stations, organisations, require_password_change)
    slots = _load_slots(packages, today)
    db.session.flush()
    _load_bookings(slots, organisations)
    db.session.commit()
    past = load_history(packages, organisations) if history else {}
    return {
        "stations": len(stations),
        "packages": len(packages),
        "organisations": len(organisations),
        "slots": len(slots),
        **past,
    }


def _load_campaigns(today: date) -> list[Campaign]:
    year = today.year
    return [
        _get_or_create(
            Campaign,
            name=c["name"],
            defaults={
                "description": c["description"],
                "starts_on": date(year, 1, 1),
                "ends_on": date(year + 1, 12, 31),
            },
        )
        for c in data.CAMPAIGNS
    ]


def _load_stations() -> list[Station]:
    stations = []
    for index, (name, subdistrict, address, speciality, description, approval) in enumerate(data.STATIONS):
        station = _get_or_create(
            Station,
            name=name,
            defaults={
                "subdistrict": subdistrict,
                "address": address,
                "speciality": speciality,
                "description": description,
                "requires_approval": approval,
                "phone": f"021-6{index + 1:03d}{(index + 3) * 1111 % 10000:04d}",
                "booking_cutoff_hours": 24,
                "cancel_deadline_hours": 48 if approval else 24,
            },
        )
        if station.address == data.EARLIER_ADDRESSES.get(name):  # loaded before stations had street addresses
            station.address = address
        stations.append(station)
    return stations


def _load_packages(campaigns, stations) -> list[Package]:
    packages = []
    for category, title, summary, campaign, station_ids, (low, high), minutes in data.PACKAGES:
        package = _get_or_create(
            Package,
            title=title,
            defaults={
                "category": Category(category),
                "summary": summary,
                "description": summary
                + "\n\n活动结束后可下载签到表，作为支部主题党日活动记录。请按预约时间提前10分钟到达站点报到。",
                "campaign": campaigns[campaign] if campaign is not None else None,
                "min_group_size": low,
                "max_group_size": high,
                "duration_minutes": minutes,
            },
        )
        if not package.stations:
            package.stations = [stations[i] for i in station_ids]
        packages.append(package)
    return packages


def _organisation_rows(branches: int):
    rows = list(data.ORGANISATIONS[:branches])
    for n in range(len(rows), branches):
        subdistrict = data.EXTRA_ORG_SUBDISTRICTS[n % len(data.EXTRA_ORG_SUBDISTRICTS)]
        rows.append((f"{subdistrict}第{n + 1}联合党支部", "branch", subdistrict, 12 + n % 30, f"书记{n + 1}"))
    return rows


def _load_organisations(branches: int) -> list[Organisation]:
    organisations = []
    for index, (name, kind, subdistrict, members, secretary) in enumerate(_organisation_rows(branches)):
        organisations.append(
            _get_or_create(
                Organisation,
                name=name,
                defaults={
                    "kind": OrganisationKind(kind),
                    "subdistrict": subdistrict,
                    "member_count": members,
                    "secretary_name": secretary,
                    "secretary_phone": f"139{index + 1:04d}{(index * 7919) % 10000:04d}",
                },
            )
        )
    return organisations


def _demo_user(username: str, display_name: str, role: Role, must_change: bool, **fields) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, display_name=display_name, role=role, must_change_password=must_change,
                    **fields)
        user.set_password(DEMO_PASSWORD)
        db.session.add(user)
    return user


def _load_accounts(stations, organisations, must_change: bool) -> None:
    _demo_user("admin", "区委组织部管理员", Role.ADMIN, must_change)
    for number, station in enumerate(stations, start=1):
        host = _demo_user(f"host{number}", f"{station.name}管理员", Role.HOST, must_change)
        if station not in host.stations:
            host.stations.append(station)
    for number, organisation in enumerate(organisations, start=1):
        _demo_user(
            f"sec{number}",
            f"{organisation.secretary_name}（{organisation.name}）",
            Role.SECRETARY,
            must_change,
            organisation=organisation,
            phone=organisation.secretary_phone,
        )


def _load_slots(packages, today: date) -> list[Slot]:
    rng = random.Random(2026)
    slots = []
    special_capacity_given = False
    for package in packages:
        for station in sorted(package.stations, key=lambda s: s.id):
            days = sorted(rng.sample(range(1, 29), 3))
            for offset in days:
                day = today + timedelta(days=offset)
                if day.weekday() == 6:  # no Sunday sessions in the demo
                    day += timedelta(days=1)
                hour, minute = rng.choice(data.SLOT_TIMES)
                starts_at = clock.local_datetime(day, hour, minute)
                capacity = 20 if not special_capacity_given else rng.choice(data.CAPACITIES)
                special_capacity_given = True
                slot = _get_or_create(
                    Slot,
                    package_id=package.id,
                    station_id=station.id,
                    starts_at=starts_at,
                    defaults={
                        "ends_at": starts_at + timedelta(minutes=package.duration_minutes),
                        "capacity": capacity,
                        "max_groups": 4 if capacity >= 40 and offset % 2 == 0 else None,
                    },
                )
                slots.append(slot)
    return slots


def _load_bookings(slots, organisations) -> None:
    """Fill some slots nearly to the top so the menu shows the whole range of places left."""
    if db.session.scalar(select(Booking.id).limit(1)) is not None:
        return
    rng = random.Random(1921)
    quiet = quiet_organisations(organisations)  # never booked (coverage shows some without a Party day)
    for index, slot in enumerate(slots):
        if index % 3:
            continue
        target = slot.capacity - rng.choice([1, 2, 3, slot.capacity // 2])
        org_cycle = [o for o in (organisations[1:] if len(organisations) > 1 else organisations) if o not in quiet]
        held = 0
        for organisation in rng.sample(org_cycle, k=min(4, len(org_cycle))):
            left = target - held
            if left < slot.package.min_group_size:
                break
            headcount = min(left, slot.package.max_group_size, rng.randint(8, 20))
            if headcount < slot.package.min_group_size:
                break
            status = BookingStatus.PENDING if slot.station.requires_approval and held else BookingStatus.CONFIRMED
            booking = Booking(
                slot=slot,
                organisation=organisation,
                headcount=headcount,
                contact_name=organisation.secretary_name,
                contact_phone=organisation.secretary_phone,
                status=status,
            )
            db.session.add(booking)
            db.session.add(
                BookingEvent(booking=booking, to_status=status, action="created", reason="演示数据")
            )
            held += headcount
