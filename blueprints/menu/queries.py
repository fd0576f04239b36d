"""Read-side queries of the menu: a bounded number of statements whatever the data size."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy.orm import joinedload, load_only

from blueprints.booking.capacity import Availability, fits_a_group_expr, held_groups_expr, held_headcount_expr
from blueprints.catalog.models import Campaign, Category, Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.db import built_once, contains
from blueprints.core.extensions import db

SLOTS_PER_PACKAGE = 3  # a card lists the next three; the package page lists them all ("更多场次")
STATION_CHOICES_LIMIT = 40
CATEGORY_ORDER = {c: i for i, c in enumerate(Category)}


@dataclass
class MenuFilters:
    q: str = ""
    category: Category | None = None
    station_id: int | None = None
    subdistrict: str = ""
    campaign_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    available_only: bool = False

    @property
    def narrows_slots(self) -> bool:
        return bool(
            self.station_id or self.subdistrict or self.date_from or self.date_to or self.available_only
        )


@dataclass
class MenuPage:
    """One page of the menu as ids: its packages (id and category only) and the ids and start
    times of each package's listed slots. What the cards show is loaded by :func:`card_data`,
    only for the cards the render cache does not hold."""

    pagination: object
    listed: dict[int, list[tuple[int, object]]] = field(default_factory=dict)  # package id -> [(slot id, starts_at)]
    more: set[int] = field(default_factory=set)  # packages with matching slots beyond the listed ones

    @property
    def groups(self) -> list[tuple[Category, list[Package]]]:
        """The page's packages under their categories, in menu order."""
        grouped: dict[Category, list[Package]] = {}
        for package in self.pagination.items:
            grouped.setdefault(package.category, []).append(package)
        return sorted(grouped.items(), key=lambda item: CATEGORY_ORDER[item[0]])


@dataclass
class FilterOptions:
    stations: list  # rows of (id, name)
    subdistricts: list[str]
    campaigns: list
    stations_need_subdistrict: bool = False


def filter_options(subdistrict: str = "", station_id: int | None = None) -> FilterOptions:
    """Choices for the filter form: three small statements, and small lists whatever the data size.

    A city has hundreds of stations: beyond ``STATION_CHOICES_LIMIT`` the station list waits for a
    subdistrict (keeping the station already chosen), so a phone gets a short list to pick from.
    """
    subdistricts = db.session.scalars(
        sa.select(Station.subdistrict).distinct()
        .where(Station.active, Station.subdistrict != "").order_by(Station.subdistrict)
    ).all()
    query = sa.select(Station.id, Station.name).where(Station.active)
    if subdistrict:
        query = query.where(sa.or_(Station.subdistrict == subdistrict, Station.id == station_id))
    order = [Station.id]
    if station_id:
        order.insert(0, sa.case((Station.id == station_id, 0), else_=1))  # the chosen one survives the limit
    stations = db.session.execute(query.order_by(*order).limit(STATION_CHOICES_LIMIT + 1)).all()
    too_many = len(stations) > STATION_CHOICES_LIMIT
    if too_many:
        stations = [s for s in stations if s.id == station_id]
    else:
        stations.sort(key=lambda s: s.id)
    campaigns = db.session.execute(
        sa.select(Campaign.id, Campaign.name).where(Campaign.active).order_by(Campaign.starts_on, Campaign.id)
    ).all()
    return FilterOptions(stations, subdistricts, campaigns, stations_need_subdistrict=too_many)


def _slot_conditions(filters: MenuFilters, with_availability: bool) -> list:
    now = clock.now()
    start = now
    if filters.date_from:
        start = max(now, clock.local_datetime(filters.date_from, 0))
    conditions = [
        Slot.status == SlotStatus.OPEN,
        Slot.starts_at >= start,
        Station.active,
    ]
    if filters.date_to:
        conditions.append(Slot.starts_at < clock.local_datetime(filters.date_to + timedelta(days=1), 0))
    if filters.station_id:
        conditions.append(Slot.station_id == filters.station_id)
    if filters.subdistrict:
        conditions.append(Station.subdistrict == filters.subdistrict)
    if with_availability and filters.available_only:
        # Places for at least the package's smallest group; callers join (or correlate) packages.
        conditions.append(fits_a_group_expr(Package.min_group_size))
    return conditions


def _package_query(filters: MenuFilters):
    query = sa.select(Package).where(Package.active).options(load_only(Package.id, Package.category))
    if filters.category:
        query = query.where(Package.category == filters.category)
    if filters.campaign_id:
        query = query.where(Package.campaign_id == filters.campaign_id)
    if filters.q:
        query = query.where(contains(filters.q, Package.title, Package.summary))
    if filters.narrows_slots:
        matching_slot = (
            sa.select(Slot.id)
            .join(Station, Station.id == Slot.station_id)
            .where(Slot.package_id == Package.id, *_slot_conditions(filters, True))
        )
        query = query.where(matching_slot.exists())
    category_rank = sa.case(
        {c.value: rank for c, rank in CATEGORY_ORDER.items()}, value=sa.cast(Package.category, sa.String)
    )
    return query.order_by(category_rank, Package.id)


def next_matching_start(filters: MenuFilters):
    """When the first slot matching the filters starts: with filters that narrow the slots, a
    package whose only matching slot starts leaves the results (and the count) then."""
    return db.session.scalar(
        sa.select(sa.func.min(Slot.starts_at)).join(Station, Station.id == Slot.station_id)
        .join(Package, Package.id == Slot.package_id)
        .where(Package.active, *_slot_conditions(filters, False))
    )


def listed_slots(package_ids: list[int], filters: MenuFilters, per_package: int) -> dict[int, list[tuple]]:
    """The next ``per_package`` matching slots of each package as (id, starts_at), in one query."""
    if not package_ids:
        return {}
    rank = sa.func.row_number().over(partition_by=Slot.package_id, order_by=(Slot.starts_at, Slot.id))
    ranked = (
        sa.select(Slot.id.label("slot_id"), Slot.package_id, Slot.starts_at, rank.label("rank"))
        .join(Station, Station.id == Slot.station_id)
        .join(Package, Package.id == Slot.package_id)
        .where(Slot.package_id.in_(package_ids), *_slot_conditions(filters, True))
        .subquery()
    )
    rows = db.session.execute(
        sa.select(ranked.c.package_id, ranked.c.slot_id, ranked.c.starts_at).where(ranked.c.rank <= per_package)
    ).all()
    listed: dict[int, list[tuple]] = {pid: [] for pid in package_ids}
    for package_id, slot_id, starts_at in sorted(rows, key=lambda row: (row.starts_at, row.slot_id)):
        listed[package_id].append((slot_id, starts_at))
    return listed


def menu_page(filters: MenuFilters, page: int, per_page: int) -> MenuPage:
    pagination = db.paginate(_package_query(filters), page=page, per_page=per_page, error_out=False)
    # One slot more than a card shows tells whether it links to the rest ("更多场次").
    listed = listed_slots([p.id for p in pagination.items], filters, SLOTS_PER_PACKAGE + 1)
    more = {pid for pid, slots in listed.items() if len(slots) > SLOTS_PER_PACKAGE}
    return MenuPage(pagination, {pid: slots[:SLOTS_PER_PACKAGE] for pid, slots in listed.items()}, more)


@dataclass
class CardData:
    packages: dict[int, Package]
    slots: dict[int, "CardSlot"]
    availability: dict[int, Availability]


class CardStation(NamedTuple):
    name: str


class CardSlot(NamedTuple):
    """A slot as a card lists it (a Core row: a rebuilt card is the first view after every booking)."""

    id: int
    starts_at: datetime
    ends_at: datetime
    capacity: int
    station: CardStation


@built_once
def _card_packages_statement():
    return (
        sa.select(Package).where(Package.id.in_(sa.bindparam("package_ids", expanding=True)))
        .options(joinedload(Package.stations).load_only(Station.id, Station.name), joinedload(Package.campaign))
        .execution_options(populate_existing=True)  # the page's query loaded only id and category
    )


@built_once
def _card_slots_statement():
    return (
        sa.select(Slot.id, Slot.starts_at, Slot.ends_at, Slot.capacity, Slot.max_groups, Station.name,
                  held_headcount_expr(), held_groups_expr())
        .join(Station, Station.id == Slot.station_id).where(Slot.id.in_(sa.bindparam("slot_ids", expanding=True)))
    )


def card_data(package_ids: list[int], slot_ids: list[int]) -> CardData:
    """What the cards of these packages show: two statements, whatever their number."""
    if not package_ids:
        return CardData({}, {}, {})
    packages = db.session.scalars(_card_packages_statement(), {"package_ids": package_ids}).unique().all()
    slots, places = {}, {}
    if slot_ids:
        rows = db.session.execute(_card_slots_statement(), {"slot_ids": slot_ids})
        for slot_id, starts_at, ends_at, capacity, max_groups, station, held, groups in rows:
            slots[slot_id] = CardSlot(slot_id, starts_at, ends_at, capacity, CardStation(station))
            places[slot_id] = Availability(capacity, int(held), int(groups), max_groups)
    return CardData({p.id: p for p in packages}, slots, places)


class ListedPackage(NamedTuple):
    """A package of a menu page as the page itself needs it (its card comes from :func:`card_data`)."""

    id: int
    category: Category


class KnownPagination(Pagination):
    """A page of the menu whose items and total are already known (kept by the render cache)."""

    def _query_items(self) -> list:
        return self._query_args["items"]

    def _query_count(self) -> int:
        return self._query_args["total"]


def menu_page_json(result: MenuPage) -> dict:
    pagination = result.pagination
    return {"page": pagination.page, "per_page": pagination.per_page, "total": pagination.total,
            "items": [[p.id, p.category.value] for p in pagination.items],
            "listed": [[pid, [[sid, starts_at.isoformat()] for sid, starts_at in slots]]
                       for pid, slots in result.listed.items()],
            "more": sorted(result.more)}


def menu_page_from_json(data: dict) -> MenuPage:
    items = [ListedPackage(pid, Category(category)) for pid, category in data["items"]]
    pagination = KnownPagination(page=data["page"], per_page=data["per_page"], error_out=False,
                                 items=items, total=data["total"])
    listed = {pid: [(sid, datetime.fromisoformat(starts_at)) for sid, starts_at in slots]
              for pid, slots in data["listed"]}
    return MenuPage(pagination, listed, set(data["more"]))
