"""Catalogue management rules: stations, campaigns, packages and quotas (district administrators).

Routes hand plain data (``StationData`` …) to ``save_*``; every rule is checked here and a
``CatalogueError`` carries one Chinese message per field, so nothing is written when any is
wrong. Deleting is allowed only while nothing refers to the row; otherwise ``Referenced`` says
why and the administrator deactivates instead.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from blueprints.accounts.models import Organisation, Role, User
from blueprints.booking.models import Booking
from blueprints.catalog.models import Campaign, Category, Package, Slot, Station
from blueprints.core.db import contains
from blueprints.core.extensions import db
from blueprints.quotas.models import Quota, QuotaPeriod

MAX_HOURS = 60 * 24  # a cut-off or cancellation deadline of at most 60 days
MAX_DURATION_MINUTES = 24 * 60
MAX_GROUP_SIZE = 10000
MAX_QUOTA = 1000
PHONE = re.compile(r"^[0-9+\-() ]*$")
# Search text is cut to the longest column searched: SQLite refuses LIKE patterns over 50 kB (500 before).
MAX_SEARCH = 200


class CatalogueError(Exception):
    """Invalid input: ``errors`` maps a field name (or "" for the whole form) to a message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class Referenced(Exception):
    """The row is still referred to and may only be deactivated."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# -- shared checks ------------------------------------------------------------------------------

def _unparsed(invalid) -> dict[str, str]:
    """Fields the form could not even parse (it shows their message): checked no further, and
    their presence alone stops the save, while every other field is still checked."""
    return {name: "" for name in invalid}


def _text(errors: dict, name: str, value: str | None, max_length: int, required_message: str | None = None) -> str:
    value = (value or "").strip()
    if name in errors:
        pass
    elif required_message and not value:
        errors[name] = required_message
    elif len(value) > max_length:
        errors[name] = _("At most %(max)s characters.", max=max_length)
    return value


def _whole(errors: dict, name: str, value: int | None, low: int, high: int, missing: str) -> None:
    if name in errors:
        return
    if value is None:
        errors[name] = missing
    elif not low <= value <= high:
        errors[name] = _("Enter a number from %(low)s to %(high)s.", low=low, high=high)


def _commit(errors_on_conflict: dict[str, str]) -> None:
    """Commit; a unique or check constraint hit by a concurrent change becomes a message."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise CatalogueError(errors_on_conflict) from None


def _name_taken(model, column, value: str, own_id: int | None) -> bool:
    query = sa.select(model.id).where(column == value)
    if own_id is not None:
        query = query.where(model.id != own_id)
    return db.session.scalar(query.limit(1)) is not None


# -- stations -----------------------------------------------------------------------------------

@dataclass
class StationData:
    name: str = ""
    address: str = ""
    subdistrict: str = ""
    description: str = ""
    speciality: str = ""
    phone: str = ""
    requires_approval: bool = False
    booking_cutoff_hours: int | None = 24
    cancel_deadline_hours: int | None = 24
    active: bool = True
    host_ids: list[int] = field(default_factory=list)


def host_choices() -> list[User]:
    return list(db.session.scalars(
        sa.select(User).where(User.role == Role.HOST).order_by(User.active.desc(), User.display_name, User.id)
    ))


def save_station(station: Station | None, data: StationData, invalid=()) -> Station:
    errors: dict[str, str] = _unparsed(invalid)
    own_id = station.id if station else None
    name = _text(errors, "name", data.name, 120, _("Please give the station a name."))
    if "name" not in errors and _name_taken(Station, Station.name, name, own_id):
        errors["name"] = _("Another station is already called “%(name)s”.", name=name)
    address = _text(errors, "address", data.address, 200)
    subdistrict = _text(errors, "subdistrict", data.subdistrict, 60)
    description = _text(errors, "description", data.description, 5000)
    speciality = _text(errors, "speciality", data.speciality, 200)
    phone = _text(errors, "phone", data.phone, 20)
    if "phone" not in errors and not PHONE.match(phone):
        errors["phone"] = _("A phone number may contain only digits, spaces, brackets, + and -.")
    _whole(errors, "booking_cutoff_hours", data.booking_cutoff_hours, 0, MAX_HOURS,
           _("Please give the booking cut-off in hours (0 or more)."))
    _whole(errors, "cancel_deadline_hours", data.cancel_deadline_hours, 0, MAX_HOURS,
           _("Please give the cancellation deadline in hours (0 or more)."))
    host_ids = sorted(set(data.host_ids or []))
    hosts = list(db.session.scalars(
        sa.select(User).where(User.id.in_(host_ids), User.role == Role.HOST)
    )) if host_ids else []
    if len(hosts) != len(host_ids):
        errors["hosts"] = _("Only station host accounts can run a station.")
    if errors:
        db.session.rollback()
        raise CatalogueError(errors)

    if station is None:
        station = Station(name=name)
        db.session.add(station)
    station.name = name
    station.address = address
    station.subdistrict = subdistrict
    station.description = description
    station.speciality = speciality
    station.phone = phone
    station.requires_approval = bool(data.requires_approval)
    station.booking_cutoff_hours = data.booking_cutoff_hours
    station.cancel_deadline_hours = data.cancel_deadline_hours
    station.active = bool(data.active)
    station.hosts = hosts
    _commit({"name": _("Another station is already called “%(name)s”.", name=name)})
    return station


def station_page(q: str, status: str, page: int, per_page: int):
    query = sa.select(Station).options(selectinload(Station.hosts)).order_by(Station.name, Station.id)
    q = (q or "").strip()[:MAX_SEARCH]
    if q:
        query = query.where(contains(q, Station.name, Station.address, Station.subdistrict))
    query = _status_filter(query, Station, status)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def _status_filter(query, model, status: str):
    if status == "active":
        return query.where(model.active.is_(True))
    if status == "inactive":
        return query.where(model.active.is_(False))
    return query


@dataclass(frozen=True)
class References:
    slots: int = 0
    bookings: int = 0
    packages: int = 0

    @property
    def any(self) -> bool:
        return bool(self.slots or self.bookings or self.packages)


def station_references(station_id: int) -> References:
    slots = db.session.scalar(sa.select(sa.func.count(Slot.id)).where(Slot.station_id == station_id)) or 0
    bookings = 0
    if slots:
        bookings = db.session.scalar(
            sa.select(sa.func.count(Booking.id)).join(Slot, Slot.id == Booking.slot_id).where(Slot.station_id == station_id)
        ) or 0
    return References(slots=slots, bookings=bookings)


def package_references(package_id: int) -> References:
    slots = db.session.scalar(sa.select(sa.func.count(Slot.id)).where(Slot.package_id == package_id)) or 0
    bookings = 0
    if slots:
        bookings = db.session.scalar(
            sa.select(sa.func.count(Booking.id)).join(Slot, Slot.id == Booking.slot_id).where(Slot.package_id == package_id)
        ) or 0
    return References(slots=slots, bookings=bookings)


def campaign_references(campaign_id: int) -> References:
    packages = db.session.scalar(
        sa.select(sa.func.count(Package.id)).where(Package.campaign_id == campaign_id)) or 0
    return References(packages=packages)


def references_message(refs: References) -> str:
    if refs.packages:
        return _("%(packages)s packages belong to this campaign, so it cannot be deleted. "
                 "Deactivate it instead.", packages=refs.packages)
    return _("It has %(slots)s slots and %(bookings)s bookings, so it cannot be deleted. "
             "Deactivate it instead: its history stays and branches can no longer book it.",
             slots=refs.slots, bookings=refs.bookings)


def _delete(row, refs: References) -> None:
    if refs.any:
        db.session.rollback()
        raise Referenced(references_message(refs))
    db.session.delete(row)
    try:
        db.session.commit()
    except IntegrityError:  # something started to refer to it meanwhile
        db.session.rollback()
        raise Referenced(_("It is in use and cannot be deleted. Deactivate it instead.")) from None


def delete_station(station: Station) -> None:
    _delete(station, station_references(station.id))


def delete_package(package: Package) -> None:
    _delete(package, package_references(package.id))


def delete_campaign(campaign: Campaign) -> None:
    _delete(campaign, campaign_references(campaign.id))


def set_active(row, active: bool) -> None:
    row.active = bool(active)
    db.session.commit()


# -- campaigns ----------------------------------------------------------------------------------

@dataclass
class CampaignData:
    name: str = ""
    starts_on: date | None = None
    ends_on: date | None = None
    description: str = ""
    active: bool = True


def save_campaign(campaign: Campaign | None, data: CampaignData, invalid=()) -> Campaign:
    errors: dict[str, str] = _unparsed(invalid)
    name = _text(errors, "name", data.name, 120, _("Please give the campaign a name."))
    if "name" not in errors and _name_taken(Campaign, Campaign.name, name, campaign.id if campaign else None):
        errors["name"] = _("Another campaign is already called “%(name)s”.", name=name)
    description = _text(errors, "description", data.description, 5000)
    if data.starts_on is None:
        errors.setdefault("starts_on", _("Please give the first day."))
    if data.ends_on is None:
        errors.setdefault("ends_on", _("Please give the last day."))
    if data.starts_on and data.ends_on and data.ends_on < data.starts_on:
        errors["ends_on"] = _("The last day is before the first day.")
    if errors:
        db.session.rollback()
        raise CatalogueError(errors)
    if campaign is None:
        campaign = Campaign(name=name, starts_on=data.starts_on, ends_on=data.ends_on)
        db.session.add(campaign)
    campaign.name = name
    campaign.starts_on = data.starts_on
    campaign.ends_on = data.ends_on
    campaign.description = description
    campaign.active = bool(data.active)
    _commit({"name": _("Another campaign is already called “%(name)s”.", name=name)})
    return campaign


def campaign_page(page: int, per_page: int):
    """The page of campaigns and {campaign id: number of packages} for them (two queries + count)."""
    pagination = db.paginate(
        sa.select(Campaign).order_by(Campaign.starts_on.desc(), Campaign.id.desc()),
        page=page, per_page=per_page, error_out=False)
    ids = [c.id for c in pagination.items]
    counts = dict(db.session.execute(
        sa.select(Package.campaign_id, sa.func.count(Package.id))
        .where(Package.campaign_id.in_(ids)).group_by(Package.campaign_id)
    ).all()) if ids else {}
    return pagination, counts


def all_campaigns() -> list[Campaign]:
    return list(db.session.scalars(sa.select(Campaign).order_by(Campaign.starts_on.desc(), Campaign.id.desc())))


# -- packages -----------------------------------------------------------------------------------

@dataclass
class PackageData:
    category: str = ""
    title: str = ""
    summary: str = ""
    description: str = ""
    duration_minutes: int | None = 120
    min_group_size: int | None = 1
    max_group_size: int | None = 50
    campaign_id: int | None = None
    station_ids: list[int] = field(default_factory=list)
    active: bool = True


def station_choices(keep_ids=()) -> list[Station]:
    """Active stations, plus inactive ones the package already names."""
    keep = list(keep_ids) or [-1]
    return list(db.session.scalars(
        sa.select(Station).where(sa.or_(Station.active.is_(True), Station.id.in_(keep)))
        .order_by(Station.subdistrict, Station.name, Station.id)
    ))


def save_package(package: Package | None, data: PackageData, invalid=()) -> Package:
    errors: dict[str, str] = _unparsed(invalid)
    try:
        category = Category(data.category)
    except ValueError:
        category = None
        errors["category"] = _("Choose a category.")
    title = _text(errors, "title", data.title, 120, _("Please give the package a title."))
    summary = _text(errors, "summary", data.summary, 300)
    description = _text(errors, "description", data.description, 10000)
    _whole(errors, "duration_minutes", data.duration_minutes, 1, MAX_DURATION_MINUTES,
           _("Please give the duration in minutes."))
    _whole(errors, "min_group_size", data.min_group_size, 1, MAX_GROUP_SIZE,
           _("Please give the smallest group size."))
    _whole(errors, "max_group_size", data.max_group_size, 1, MAX_GROUP_SIZE,
           _("Please give the largest group size."))
    if ("min_group_size" not in errors and "max_group_size" not in errors
            and data.max_group_size < data.min_group_size):
        errors["max_group_size"] = _("The largest group size must not be smaller than the smallest (%(min)s).",
                                     min=data.min_group_size)
    campaign = None
    if data.campaign_id is not None:
        campaign = db.session.get(Campaign, data.campaign_id)
        if campaign is None:
            errors["campaign"] = _("That campaign no longer exists.")
    station_ids = sorted(set(data.station_ids or []))
    stations = list(db.session.scalars(
        sa.select(Station).where(Station.id.in_(station_ids)).order_by(Station.id))) if station_ids else []
    if not station_ids:
        errors["stations"] = _("Choose at least one station that offers this package.")
    elif len(stations) != len(station_ids):
        errors["stations"] = _("One of the chosen stations no longer exists.")
    if errors:
        db.session.rollback()
        raise CatalogueError(errors)
    if package is None:
        package = Package(title=title, category=category)
        db.session.add(package)
    package.category = category
    package.title = title
    package.summary = summary
    package.description = description
    package.duration_minutes = data.duration_minutes
    package.min_group_size = data.min_group_size
    package.max_group_size = data.max_group_size
    package.campaign = campaign
    package.stations = stations
    package.active = bool(data.active)
    _commit({"": _("The package could not be saved because it was changed at the same time. Please try again.")})
    return package


def package_page(q: str, category: str, campaign_id: int | None, status: str, page: int, per_page: int):
    query = (
        sa.select(Package)
        .options(joinedload(Package.campaign), selectinload(Package.stations))
        .order_by(sa.case(*[(Package.category == c, i) for i, c in enumerate(Category)]), Package.title, Package.id)
    )
    q = (q or "").strip()[:MAX_SEARCH]
    if q:
        query = query.where(contains(q, Package.title, Package.summary))
    if category in {c.value for c in Category}:
        query = query.where(Package.category == Category(category))
    if campaign_id:
        query = query.where(Package.campaign_id == campaign_id)
    query = _status_filter(query, Package, status)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


# -- quotas -------------------------------------------------------------------------------------

@dataclass
class QuotaData:
    organisation: str = ""  # the organisation's exact name
    category: str = ""
    period: str = ""
    max_bookings: int | None = None


def organisation_named(name: str) -> Organisation | None:
    name = (name or "").strip()
    if not name:
        return None
    return db.session.scalar(sa.select(Organisation).where(Organisation.name == name))


def save_quota(quota: Quota | None, data: QuotaData, invalid=()) -> Quota:
    errors: dict[str, str] = _unparsed(invalid)
    organisation = quota.organisation if quota else organisation_named(data.organisation)
    if organisation is None:
        if (data.organisation or "").strip():
            errors["organisation"] = _("No organisation is called “%(name)s”. Type its full name as listed.",
                                       name=data.organisation.strip())
        else:
            errors["organisation"] = _("Please name the organisation.")
    try:
        category = Category(data.category)
    except ValueError:
        category = None
        errors["category"] = _("Choose a category.")
    try:
        period = QuotaPeriod(data.period)
    except ValueError:
        period = None
        errors["period"] = _("Choose a period.")
    _whole(errors, "max_bookings", data.max_bookings, 1, MAX_QUOTA,
           _("Please give the largest number of bookings."))
    if organisation is not None and category and period:
        clash = sa.select(Quota.id).where(Quota.organisation_id == organisation.id, Quota.category == category,
                                          Quota.period == period)
        if quota is not None:
            clash = clash.where(Quota.id != quota.id)
        if db.session.scalar(clash.limit(1)) is not None:
            errors["period"] = _("This organisation already has a quota for this category and period; edit that one.")
    if errors:
        db.session.rollback()
        raise CatalogueError(errors)
    if quota is None:
        quota = Quota(organisation_id=organisation.id, category=category, period=period,
                      max_bookings=data.max_bookings)
        db.session.add(quota)
    quota.category = category
    quota.period = period
    quota.max_bookings = data.max_bookings
    _commit({"period": _("This organisation already has a quota for this category and period; edit that one.")})
    return quota


def delete_quota(quota: Quota) -> None:
    db.session.delete(quota)
    db.session.commit()


def quota_page(q: str, category: str, page: int, per_page: int):
    query = (
        sa.select(Quota).join(Organisation, Organisation.id == Quota.organisation_id)
        .options(joinedload(Quota.organisation))
        .order_by(Organisation.name, Quota.category, Quota.period, Quota.id)
    )
    q = (q or "").strip()[:MAX_SEARCH]
    if q:
        query = query.where(contains(q, Organisation.name))
    if category in {c.value for c in Category}:
        query = query.where(Quota.category == Category(category))
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


# -- the administration index -------------------------------------------------------------------

def overview() -> dict[str, int]:
    """Counts shown on /admin/ (one query)."""
    row = db.session.execute(sa.select(
        sa.select(sa.func.count(Station.id)).where(Station.active.is_(True)).scalar_subquery(),
        sa.select(sa.func.count(Station.id)).scalar_subquery(),
        sa.select(sa.func.count(Package.id)).where(Package.active.is_(True)).scalar_subquery(),
        sa.select(sa.func.count(Package.id)).scalar_subquery(),
        sa.select(sa.func.count(Campaign.id)).where(Campaign.active.is_(True)).scalar_subquery(),
        sa.select(sa.func.count(Quota.id)).scalar_subquery(),
    )).one()
    keys = ("stations_active", "stations", "packages_active", "packages", "campaigns_active", "quotas")
    return dict(zip(keys, row))

