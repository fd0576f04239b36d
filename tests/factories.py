"""Factories with sensible defaults: ``create_slot(capacity=5)`` and the rest is filled in."""
from __future__ import annotations

import itertools
from datetime import timedelta

from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
from blueprints.booking.models import Booking, BookingEvent, BookingStatus
from blueprints.catalog.models import Campaign, Category, Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.extensions import db

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def create_station(**params) -> Station:
    n = _n()
    station = Station(
        name=params.pop("name", f"测试党群服务站{n}"),
        address=params.pop("address", f"闵行区测试路{n}号"),
        subdistrict=params.pop("subdistrict", "新虹街道"),
        phone=params.pop("phone", "021-64000000"),
        **params,
    )
    db.session.add(station)
    db.session.commit()
    return station


def create_campaign(**params) -> Campaign:
    today = clock.today()
    campaign = Campaign(
        name=params.pop("name", f"测试主题活动{_n()}"),
        starts_on=params.pop("starts_on", today - timedelta(days=30)),
        ends_on=params.pop("ends_on", today + timedelta(days=300)),
        **params,
    )
    db.session.add(campaign)
    db.session.commit()
    return campaign


def create_package(stations=None, **params) -> Package:
    package = Package(
        title=params.pop("title", f"测试服务包{_n()}"),
        category=params.pop("category", Category.THEORY),
        summary=params.pop("summary", "一个用于测试的服务包"),
        min_group_size=params.pop("min_group_size", 1),
        max_group_size=params.pop("max_group_size", 50),
        **params,
    )
    package.stations = list(stations) if stations is not None else [create_station()]
    db.session.add(package)
    db.session.commit()
    return package


def create_slot(package=None, station=None, **params) -> Slot:
    if package is None:
        package = create_package(stations=[station] if station else None)
    station = station or package.stations[0]
    starts_at = params.pop("starts_at", clock.now() + timedelta(days=7))
    slot = Slot(
        package=package,
        station=station,
        starts_at=starts_at,
        ends_at=params.pop("ends_at", starts_at + timedelta(hours=2)),
        capacity=params.pop("capacity", 30),
        status=params.pop("status", SlotStatus.OPEN),
        **params,
    )
    db.session.add(slot)
    db.session.commit()
    return slot


def create_organisation(**params) -> Organisation:
    n = _n()
    organisation = Organisation(
        name=params.pop("name", f"测试第{n}党支部"),
        kind=params.pop("kind", OrganisationKind.BRANCH),
        subdistrict=params.pop("subdistrict", "新虹街道"),
        member_count=params.pop("member_count", 25),
        secretary_name=params.pop("secretary_name", "王书记"),
        secretary_phone=params.pop("secretary_phone", "13900000000"),
        **params,
    )
    db.session.add(organisation)
    db.session.commit()
    return organisation


def create_user(role: Role = Role.SECRETARY, **params) -> User:
    n = _n()
    stations = params.pop("stations", None)
    organisation = params.pop("organisation", None)
    password = params.pop("password", PASSWORD)
    if role is Role.SECRETARY and organisation is None:
        organisation = create_organisation()
    user = User(
        username=params.pop("username", f"{role.value}{n}"),
        display_name=params.pop("display_name", f"测试用户{n}"),
        role=role,
        organisation=organisation,
        **params,
    )
    user.set_password(password)
    if stations:
        user.stations = list(stations)
    db.session.add(user)
    db.session.commit()
    return user


def create_secretary(**params) -> User:
    return create_user(Role.SECRETARY, **params)


def create_host(stations=None, **params) -> User:
    return create_user(Role.HOST, stations=stations or [create_station()], **params)


def create_admin(**params) -> User:
    return create_user(Role.ADMIN, **params)


def create_booking(slot=None, organisation=None, **params) -> Booking:
    """A booking written directly (bypassing the rules): for setting up a scene."""
    slot = slot or create_slot()
    organisation = organisation or create_organisation()
    status = params.pop("status", BookingStatus.CONFIRMED)
    booking = Booking(
        slot=slot,
        organisation=organisation,
        headcount=params.pop("headcount", 10),
        contact_name=params.pop("contact_name", "王书记"),
        contact_phone=params.pop("contact_phone", "13900000000"),
        status=status,
        **params,
    )
    db.session.add(booking)
    db.session.add(BookingEvent(booking=booking, to_status=status, action="created"))
    db.session.commit()
    return booking
