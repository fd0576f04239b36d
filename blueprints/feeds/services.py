"""Calendar feeds: secret tokens, who may use them, and the cheap validator of a feed's data.

A feed is one of three kinds: an organisation's bookings (FeedToken kind organisation, for its
secretaries), a station's booked slots with their roster (FeedToken kind station, for its hosts),
and a station's public list of open slots (``Station.public_feed_token``, no personal data).
Tokens carry 256 bits of randomness; a token whose user is deactivated or no longer entitled
answers like an unknown one.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager, joinedload

from blueprints.accounts.models import Organisation, Role, User
from blueprints.booking.models import ENDED_STATUSES, HOLDING_STATUSES, Booking, BookingStatus
from blueprints.catalog.models import Category, Package, Slot, SlotStatus, Station, station_hosts
from blueprints.core import clock
from blueprints.core.db import Busy, UTCDateTime, as_stored, built_once, start_write_transaction
from blueprints.core.extensions import db
from blueprints.core.params import parse_int

from .models import FeedKind, FeedToken

PUBLIC = "public"  # the third kind, kept on Station rather than in feed_tokens
# Bump when the generated calendar changes shape, so that every ETag changes with it.
FORMAT_VERSION = "1"
# Cancelled and declined bookings stay in an organisation's feed this long.
ENDED_VISIBLE = timedelta(days=30)
# Feeds show past events this far back.
HISTORY = timedelta(days=90)
ORGANISATION_STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.ATTENDED)


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass(frozen=True)
class Feed:
    """What a token opens: ``kind`` is FeedKind.ORGANISATION, FeedKind.STATION or PUBLIC."""

    kind: object
    target_id: int
    name: str
    target_updated_at: datetime

    @property
    def key(self) -> str:
        kind = self.kind if isinstance(self.kind, str) else self.kind.value
        return f"{kind}-{self.target_id}"


@dataclass(frozen=True)
class Subscription:
    """One feed as offered on the calendar page."""

    key: str  # what the reset form posts
    kind: object
    title: str
    token: str | None  # None: the address has not been made yet


# -- tokens ---------------------------------------------------------------------------------

def subscriptions_for(user: User, create: bool = True) -> list[Subscription]:
    """The feeds ``user`` may subscribe to (one query when all exist), making missing tokens.
    Without ``create`` (a page view, which never writes) a feed whose address was never made
    has ``token`` None."""
    if not (user.is_secretary or user.is_host):
        return []
    existing = {
        (t.kind, t.organisation_id, t.station_id): t
        for t in db.session.scalars(sa.select(FeedToken).where(FeedToken.user_id == user.id))
    }
    result: list[Subscription] = []
    created = False

    def token_for(kind, organisation_id=None, station_id=None) -> FeedToken:
        nonlocal created
        token = existing.get((kind, organisation_id, station_id))
        if token is None and not create:
            return None
        if token is None:
            token = FeedToken(token=new_token(), user_id=user.id, kind=kind,
                              organisation_id=organisation_id, station_id=station_id,
                              created_at=clock.now())
            db.session.add(token)
            created = True
        return token

    if user.is_secretary and user.organisation is not None:
        token = token_for(FeedKind.ORGANISATION, organisation_id=user.organisation_id)
        result.append(Subscription(f"organisation-{user.organisation_id}", FeedKind.ORGANISATION,
                                   user.organisation.name, token and token.token))
    if user.is_host:
        for station in user.stations:
            token = token_for(FeedKind.STATION, station_id=station.id)
            result.append(Subscription(f"station-{station.id}", FeedKind.STATION, station.name, token and token.token))
            if not station.public_feed_token and create:
                station.public_feed_token = new_token()
                created = True
            result.append(Subscription(f"public-{station.id}", PUBLIC, station.name, station.public_feed_token))
    if created:
        db.session.commit()
    return result


def make_missing_tokens(user: User) -> None:
    """Make the feed tokens ``user`` lacks, in a write transaction of its own. Two logins at once
    may both try: the unique indexes keep one token per feed, and the loser simply finds it."""
    if all(sub.token for sub in subscriptions_for(user, create=False)):
        return
    user_id = user.id
    try:
        start_write_transaction()
        subscriptions_for(db.session.get(User, user_id), create=True)
    except (IntegrityError, Busy):
        db.session.rollback()


def reset_token(user: User, key: str) -> bool:
    """Replace the token of one feed ``user`` may subscribe to; False when ``key`` is not one."""
    kind, _, raw_id = key.partition("-")
    target_id = parse_int(raw_id)
    if target_id is None:
        return False
    if kind == FeedKind.ORGANISATION.value and user.is_secretary and user.organisation_id == target_id:
        token = db.session.scalar(sa.select(FeedToken).where(
            FeedToken.user_id == user.id, FeedToken.kind == FeedKind.ORGANISATION,
            FeedToken.organisation_id == target_id))
    elif kind == FeedKind.STATION.value and user.hosts_station(target_id):
        token = db.session.scalar(sa.select(FeedToken).where(
            FeedToken.user_id == user.id, FeedToken.kind == FeedKind.STATION,
            FeedToken.station_id == target_id))
    elif kind == PUBLIC and user.hosts_station(target_id):
        station = db.session.get(Station, target_id)
        station.public_feed_token = new_token()  # made anew, or made for the first time
        db.session.commit()
        return True
    else:
        return False
    if token is not None:
        _renew(token)
        db.session.commit()
    else:
        subscriptions_for(user, create=True)
    return True


def _renew(token: FeedToken) -> None:
    token.token = new_token()
    token.created_at = clock.now()


def renew_tokens(user: User) -> int:
    """Give every feed token of ``user`` a new secret, e.g. when an administrator resets the
    password or deactivates the account: an address copied while someone else had the account
    stops working. The station's public feed (no personal data, shared by its hosts and anyone
    they gave it to) keeps its address. Does not commit; returns how many were replaced."""
    tokens = db.session.scalars(sa.select(FeedToken).where(FeedToken.user_id == user.id)).all()
    for token in tokens:
        _renew(token)
    return len(tokens)


@built_once
def _token_statement():
    return (
        sa.select(FeedToken.kind, FeedToken.organisation_id, FeedToken.station_id,
                  Organisation.name, Organisation.updated_at, Station.name, Station.updated_at)
        .join(User, User.id == FeedToken.user_id)
        .outerjoin(Organisation, sa.and_(
            FeedToken.kind == FeedKind.ORGANISATION, Organisation.id == FeedToken.organisation_id,
            User.role == Role.SECRETARY, User.organisation_id == FeedToken.organisation_id))
        .outerjoin(station_hosts, sa.and_(
            FeedToken.kind == FeedKind.STATION, station_hosts.c.station_id == FeedToken.station_id,
            station_hosts.c.user_id == User.id, User.role == Role.HOST))
        .outerjoin(Station, Station.id == station_hosts.c.station_id)
        .where(FeedToken.token == sa.bindparam("token"), User.active.is_(True))
    )


@built_once
def _public_token_statement():
    return (sa.select(Station.id, Station.name, Station.updated_at)
            .where(Station.public_feed_token == sa.bindparam("token"), Station.active.is_(True)))


def resolve(token: str) -> Feed | None:
    """The feed a secret opens, or None (unknown, reset, deactivated or no longer entitled)."""
    if not token or len(token) > 64:
        return None
    row = db.session.execute(_token_statement(), {"token": token}).first()
    if row is not None:
        kind, organisation_id, station_id, org_name, org_updated, station_name, station_updated = row
        if kind is FeedKind.ORGANISATION and org_name is not None:
            return Feed(kind, organisation_id, org_name, org_updated)
        if kind is FeedKind.STATION and station_name is not None:
            return Feed(kind, station_id, station_name, station_updated)
        return None
    station = db.session.execute(_public_token_statement(), {"token": token}).first()
    if station is not None:
        return Feed(PUBLIC, station.id, station.name, station.updated_at)
    return None


# -- what a feed contains --------------------------------------------------------------------

def history_start() -> datetime:
    return clock.now() - HISTORY


def organisation_filter(organisation_id):
    """Bookings shown in an organisation's feed (and the broader set its validator watches).
    ``organisation_id`` may be a bind parameter; the moments are bind parameters too, given by
    :func:`_organisation_moments`."""
    shown = sa.or_(
        Booking.status.in_(ORGANISATION_STATUSES),
        sa.and_(Booking.status.in_(ENDED_STATUSES), Booking.updated_at >= sa.bindparam("ended_since", type_=UTCDateTime())),
    )
    watched = sa.and_(Booking.organisation_id == organisation_id,
                      Slot.starts_at >= sa.bindparam("history_start", type_=UTCDateTime()))
    return watched, shown


def _organisation_moments(now: datetime) -> dict:
    """The bind parameters of :func:`organisation_filter` at ``now``."""
    return {"ended_since": now - ENDED_VISIBLE, "history_start": now - HISTORY}


def station_slot_filter(station_id: int):
    """Slots shown in a station's host feed: those holding at least one booking."""
    holding = (
        sa.select(Booking.id)
        .where(Booking.slot_id == Slot.id, Booking.status.in_(HOLDING_STATUSES))
        .exists()
    )
    watched = sa.and_(Slot.station_id == station_id, Slot.starts_at >= history_start())
    return watched, holding


def public_slot_filter(station_id: int):
    watched = sa.and_(Slot.station_id == station_id, Slot.starts_at >= history_start())
    shown = sa.and_(Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now(), Package.active.is_(True))
    return watched, shown


@dataclass(frozen=True)
class Freshness:
    """When a feed's data last changed, and the next moment time alone changes the feed."""

    last_modified: datetime
    changes_at: datetime | None


def _latest(*moments) -> datetime:
    values = [m for m in moments if m is not None]
    return max(values) if values else datetime(2000, 1, 1, tzinfo=clock.LOCAL_TZ)


def _earliest(*moments) -> datetime | None:
    values = [m for m in moments if m is not None]
    return min(values) if values else None


@built_once
def _organisation_freshness_statement():
    watched, _shown = organisation_filter(sa.bindparam("organisation_id"))
    ended = Booking.status.in_(ENDED_STATUSES)
    ended_since = sa.bindparam("ended_since", type_=UTCDateTime())
    return (
        sa.select(
            sa.func.max(Booking.updated_at), sa.func.max(Slot.updated_at),
            sa.func.max(Station.updated_at), sa.func.max(Package.updated_at), sa.null(),
            sa.func.max(sa.case((sa.and_(ended, Booking.updated_at < ended_since), Booking.updated_at))),
            sa.func.min(Slot.starts_at),
            sa.func.min(sa.case((sa.and_(ended, Booking.updated_at >= ended_since), Booking.updated_at))),
        )
        .select_from(Booking).join(Slot, Slot.id == Booking.slot_id)
        .join(Station, Station.id == Slot.station_id).join(Package, Package.id == Slot.package_id)
        .where(watched)
    )


def freshness(feed: Feed) -> Freshness:
    """Last-Modified of ``feed`` from one aggregate query, and when time alone changes it next.

    The aggregate runs over every row that could appear (any status), so that a row leaving the
    feed moves it too; rows that left only because time passed are caught by ``dropped``.
    """
    now = clock.now()
    parameters = None
    if feed.kind is FeedKind.ORGANISATION:
        query = _organisation_freshness_statement()
        parameters = {"organisation_id": feed.target_id, **_organisation_moments(now)}
    else:
        query = (
            sa.select(
                sa.func.max(Booking.updated_at), sa.func.max(Slot.updated_at),
                sa.func.max(Station.updated_at), sa.func.max(Package.updated_at),
                sa.func.max(Organisation.updated_at) if feed.kind is FeedKind.STATION else sa.null(),
                sa.func.max(sa.case((Slot.starts_at <= now, Slot.starts_at))),
                sa.func.min(Slot.starts_at),
                sa.func.min(sa.case((Slot.starts_at > now, Slot.starts_at))),
            )
            .select_from(Slot).outerjoin(Booking, Booking.slot_id == Slot.id)
            .outerjoin(Organisation, Organisation.id == Booking.organisation_id)
            .join(Station, Station.id == Slot.station_id).join(Package, Package.id == Slot.package_id)
            .where(Slot.station_id == feed.target_id, Slot.starts_at >= history_start())
        )
    (booking_ts, slot_ts, station_ts, package_ts, organisation_ts, dropped, earliest,
     next_moment) = db.session.execute(query, parameters).one()
    if feed.kind is FeedKind.ORGANISATION:
        if dropped is not None:
            dropped = dropped + ENDED_VISIBLE  # the moment it left the feed
        if next_moment is not None:
            next_moment = next_moment + ENDED_VISIBLE  # an ended booking leaves the feed then
    elif feed.kind is FeedKind.STATION:
        next_moment = None  # a host's booked slots stay until they leave the history window
    last_modified = _latest(booking_ts, slot_ts, station_ts, package_ts, organisation_ts,
                            feed.target_updated_at, dropped)
    leaves_history = earliest + HISTORY if earliest is not None else None
    return Freshness(last_modified.replace(microsecond=0), _earliest(next_moment, leaves_history))


def etag_of(body: bytes) -> str:
    """The ETag is the document's own digest: a 304 exactly when its bytes are unchanged."""
    return hashlib.sha256(FORMAT_VERSION.encode() + body).hexdigest()[:32]


def _organisation_feed_query(*columns):
    watched, shown = organisation_filter(sa.bindparam("organisation_id"))
    return (sa.select(*columns).select_from(Booking)
            .join(Slot, Slot.id == Booking.slot_id).join(Station, Station.id == Slot.station_id)
            .join(Package, Package.id == Slot.package_id).join(Organisation, Organisation.id == Booking.organisation_id)
            .where(watched, shown).order_by(Slot.starts_at, Booking.id))


def _organisation_feed_parameters(organisation_id: int) -> dict:
    return {"organisation_id": organisation_id, **_organisation_moments(clock.now())}


def _event_columns():
    """Everything ``ics.booking_event`` reads of a booking, in :class:`EventBooking` order."""
    return (
        Booking.id, Booking.status, Booking.headcount, Booking.contact_name, Booking.contact_phone,
        Booking.revision, Booking.created_at, Booking.updated_at,
        Slot.id, Slot.starts_at, Slot.ends_at, Slot.revision, Slot.updated_at,
        Station.name, Station.address, Station.phone, Station.updated_at,
        Package.title, Package.category, Package.updated_at, Organisation.name, Organisation.updated_at,
    )


@built_once
def _event_inputs_statement():
    return _organisation_feed_query(*map(as_stored, _event_columns()))


def organisation_event_inputs(organisation_id: int) -> list:
    """Per booking of the organisation's feed, in feed order, every value its calendar event is
    made of (``ics.booking_event``), as stored: cheap enough to decide which events must be
    built again (first column: the booking's id)."""
    return db.session.connection().execute(_event_inputs_statement(),
                                           _organisation_feed_parameters(organisation_id)).all()


class EventStation(NamedTuple):
    name: str
    address: str
    phone: str
    updated_at: datetime


class EventPackage(NamedTuple):
    title: str
    category: Category
    updated_at: datetime


class EventSlot(NamedTuple):
    id: int
    starts_at: datetime
    ends_at: datetime
    revision: int
    updated_at: datetime
    station: EventStation
    package: EventPackage


class EventOrganisation(NamedTuple):
    name: str
    updated_at: datetime


class EventBooking(NamedTuple):
    """A booking as its calendar event shows it, read as one row (not ORM objects: the first
    fetch after every change of a booking builds one)."""

    id: int
    status: BookingStatus
    headcount: int
    contact_name: str
    contact_phone: str
    revision: int
    created_at: datetime
    updated_at: datetime
    slot: EventSlot
    organisation: EventOrganisation

    @classmethod
    def of(cls, row) -> "EventBooking":
        (booking_id, status, headcount, contact_name, contact_phone, revision, created_at, updated_at,
         slot_id, starts_at, ends_at, slot_revision, slot_updated_at,
         station_name, address, phone, station_updated_at,
         title, category, package_updated_at, organisation_name, organisation_updated_at) = row
        slot = EventSlot(slot_id, starts_at, ends_at, slot_revision, slot_updated_at,
                         EventStation(station_name, address, phone, station_updated_at),
                         EventPackage(title, category, package_updated_at))
        return cls(booking_id, status, headcount, contact_name, contact_phone, revision, created_at, updated_at,
                   slot, EventOrganisation(organisation_name, organisation_updated_at))


@built_once
def _event_bookings_statement():
    return (sa.select(*_event_columns()).select_from(Booking)
            .join(Slot, Slot.id == Booking.slot_id).join(Station, Station.id == Slot.station_id)
            .join(Package, Package.id == Slot.package_id).join(Organisation, Organisation.id == Booking.organisation_id)
            .where(Booking.id.in_(sa.bindparam("booking_ids", expanding=True))))


def bookings_for_events(booking_ids: list[int]) -> dict[int, EventBooking]:
    """The bookings whose events are built again, with what their events show of the slot,
    station, package and organisation."""
    if not booking_ids:
        return {}
    rows = db.session.connection().execute(_event_bookings_statement(), {"booking_ids": booking_ids})
    return {row[0]: EventBooking.of(row) for row in rows}


def organisation_bookings(organisation_id: int) -> list[Booking]:
    return list(db.session.scalars(
        _organisation_feed_query(Booking)
        .options(contains_eager(Booking.slot).contains_eager(Slot.station),
                 contains_eager(Booking.slot).contains_eager(Slot.package),
                 contains_eager(Booking.organisation)),
        _organisation_feed_parameters(organisation_id),
    ).unique())


def station_slots(station_id: int) -> tuple[list[Slot], dict[int, list[Booking]]]:
    """The station's slots with bookings, and each slot's holding bookings (two queries)."""
    from sqlalchemy.orm import contains_eager

    watched, holding = station_slot_filter(station_id)
    slots = list(db.session.scalars(
        sa.select(Slot).join(Slot.station).join(Slot.package)
        .options(contains_eager(Slot.station), contains_eager(Slot.package))
        .where(watched, holding).order_by(Slot.starts_at, Slot.id)
    ).unique())
    roster: dict[int, list[Booking]] = {slot.id: [] for slot in slots}
    if slots:
        for booking in db.session.scalars(
            sa.select(Booking).join(Booking.organisation)
            .options(contains_eager(Booking.organisation))
            .where(Booking.slot_id.in_(list(roster)), Booking.status.in_(HOLDING_STATUSES))
            .order_by(Booking.created_at, Booking.id)
        ):
            roster[booking.slot_id].append(booking)
    return slots, roster


def all_bookings_of_slots(slot_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per slot: (number of bookings ever, sum of their revisions) — for a monotonic SEQUENCE."""
    if not slot_ids:
        return {}
    rows = db.session.execute(
        sa.select(Booking.slot_id, sa.func.count(Booking.id), sa.func.coalesce(sa.func.sum(Booking.revision), 0))
        .where(Booking.slot_id.in_(slot_ids)).group_by(Booking.slot_id)
    )
    return {slot_id: (int(count), int(total)) for slot_id, count, total in rows}


def places_changed_at(slot_ids: list[int]) -> dict[int, datetime]:
    """Per slot: when one of its bookings last changed (and with it the places left)."""
    if not slot_ids:
        return {}
    rows = db.session.execute(
        sa.select(Booking.slot_id, sa.func.max(Booking.updated_at))
        .where(Booking.slot_id.in_(slot_ids)).group_by(Booking.slot_id)
    )
    return dict(rows.all())


def public_slots(station_id: int) -> list[Slot]:
    from sqlalchemy.orm import contains_eager

    watched, shown = public_slot_filter(station_id)
    return list(db.session.scalars(
        sa.select(Slot).join(Slot.station).join(Slot.package)
        .options(contains_eager(Slot.station), contains_eager(Slot.package))
        .where(watched, shown).order_by(Slot.starts_at, Slot.id)
    ).unique())


def booking_for_calendar(user: User, booking_id: int) -> Booking | None:
    """A single booking for its organisation's secretaries and its station's hosts, else None."""
    from sqlalchemy.orm import joinedload

    booking = db.session.scalar(
        sa.select(Booking).where(Booking.id == booking_id)
        .options(joinedload(Booking.slot).joinedload(Slot.package),
                 joinedload(Booking.slot).joinedload(Slot.station), joinedload(Booking.organisation))
    )
    if booking is None:
        return None
    if user.is_secretary and booking.organisation_id == user.organisation_id:
        return booking
    if user.hosts_station(booking.slot.station_id):
        return booking
    return None
