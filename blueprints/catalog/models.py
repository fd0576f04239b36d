"""What stations offer: stations, campaigns, packages and their dated slots."""
from __future__ import annotations

import enum
from datetime import date, datetime, timedelta
from typing import Optional

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from blueprints.core import clock
from blueprints.core.db import UTCDateTime, utcnow_default
from blueprints.core.extensions import db
from blueprints.core.models import TimestampMixin, enum_column

package_stations = sa.Table(
    "package_stations",
    db.metadata,
    sa.Column("package_id", sa.ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("station_id", sa.ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_package_stations_station_id", "station_id"),
)


# Association of hosts to the stations they run.
station_hosts = sa.Table(
    "station_hosts",
    db.metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("station_id", sa.ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_station_hosts_station_id", "station_id"),
)


class Category(enum.Enum):
    THEORY = "theory"  # 理论学习包
    PRACTICE = "practice"  # 党性实践包
    VOLUNTEER = "volunteer"  # 志愿服务包


    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]


CATEGORY_LABELS = {
    Category.THEORY: _l("Theory study"),
    Category.PRACTICE: _l("Party-spirit practice"),
    Category.VOLUNTEER: _l("Volunteering"),
}


class SlotStatus(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return SLOT_STATUS_LABELS[self]


SLOT_STATUS_LABELS = {
    SlotStatus.OPEN: _l("Open for booking"),
    SlotStatus.CLOSED: _l("Booking closed"),
    SlotStatus.CANCELLED: _l("Cancelled"),
}


class Station(TimestampMixin, db.Model):
    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    address: Mapped[str] = mapped_column(sa.String(200), default="")
    subdistrict: Mapped[str] = mapped_column(sa.String(60), default="", index=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    speciality: Mapped[str] = mapped_column(sa.String(200), default="")
    phone: Mapped[str] = mapped_column(sa.String(20), default="")
    requires_approval: Mapped[bool] = mapped_column(default=False)
    booking_cutoff_hours: Mapped[int] = mapped_column(default=24)
    cancel_deadline_hours: Mapped[int] = mapped_column(default=24)
    active: Mapped[bool] = mapped_column(default=True, index=True)
    # Secret of the station's public feed of open slots (calendar feeds).
    public_feed_token: Mapped[Optional[str]] = mapped_column(sa.String(64), unique=True)

    hosts: Mapped[list["User"]] = relationship(  # noqa: F821
        secondary=station_hosts, back_populates="stations"
    )
    packages: Mapped[list["Package"]] = relationship(
        secondary=package_stations, back_populates="stations"
    )

    __table_args__ = (
        sa.CheckConstraint("booking_cutoff_hours >= 0", name="cutoff_not_negative"),
        sa.CheckConstraint("cancel_deadline_hours >= 0", name="cancel_deadline_not_negative"),
    )

    def __repr__(self) -> str:
        return f"<Station {self.id} {self.name}>"


class Campaign(TimestampMixin, db.Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    description: Mapped[str] = mapped_column(sa.Text, default="")
    active: Mapped[bool] = mapped_column(default=True)

    packages: Mapped[list["Package"]] = relationship(back_populates="campaign")

    __table_args__ = (sa.CheckConstraint("ends_on >= starts_on", name="ends_after_start"),)


class Package(TimestampMixin, db.Model):
    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[Category] = mapped_column(enum_column(Category, "package_category"), index=True)
    title: Mapped[str] = mapped_column(sa.String(120))
    summary: Mapped[str] = mapped_column(sa.String(300), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    duration_minutes: Mapped[int] = mapped_column(default=120)
    min_group_size: Mapped[int] = mapped_column(default=1)
    max_group_size: Mapped[int] = mapped_column(default=50)
    campaign_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(default=True, index=True)

    campaign: Mapped[Optional[Campaign]] = relationship(back_populates="packages")
    stations: Mapped[list[Station]] = relationship(
        secondary=package_stations, back_populates="packages", order_by=Station.id
    )
    slots: Mapped[list["Slot"]] = relationship(back_populates="package")

    __table_args__ = (
        sa.CheckConstraint("duration_minutes > 0", name="duration_positive"),
        sa.CheckConstraint("min_group_size >= 1", name="min_group_positive"),
        sa.CheckConstraint("max_group_size >= min_group_size", name="max_group_not_below_min"),
    )

    def __repr__(self) -> str:
        return f"<Package {self.id} {self.title}>"


class Slot(TimestampMixin, db.Model):
    """One dated, timed occurrence of a package at a station (场次)."""

    __tablename__ = "slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(sa.ForeignKey("packages.id", ondelete="RESTRICT"))
    station_id: Mapped[int] = mapped_column(sa.ForeignKey("stations.id", ondelete="RESTRICT"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int]
    max_groups: Mapped[Optional[int]]
    status: Mapped[SlotStatus] = mapped_column(
        enum_column(SlotStatus, "slot_status"), default=SlotStatus.OPEN
    )
    note: Mapped[str] = mapped_column(sa.String(300), default="")
    # Slots generated together by one recurring rule share a series id.
    series_id: Mapped[Optional[str]] = mapped_column(sa.String(32), index=True)
    cancel_reason: Mapped[str] = mapped_column(sa.String(300), default="")
    # Raised by every change of time, place or status (calendar SEQUENCE of station feeds).
    revision: Mapped[int] = mapped_column(default=0)

    package: Mapped[Package] = relationship(back_populates="slots")
    station: Mapped[Station] = relationship()

    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("capacity > 0", name="capacity_positive"),
        sa.CheckConstraint("max_groups IS NULL OR max_groups > 0", name="max_groups_positive"),
        sa.Index("ix_slots_starts_at", "starts_at"),
        sa.Index("ix_slots_station_id_starts_at", "station_id", "starts_at"),
        sa.Index("ix_slots_package_id_starts_at", "package_id", "starts_at"),
        sa.Index("ix_slots_status_starts_at", "status", "starts_at"),
    )

    @property
    def duration(self) -> timedelta:
        return self.ends_at - self.starts_at

    # -- the slot's rules, each in one place (services refuse by them, pages show them) --------
    @property
    def booking_closes_at(self) -> datetime:
        """Online booking, joining the waitlist and moving up from it end here (the station's cut-off)."""
        return self.starts_at - timedelta(hours=self.station.booking_cutoff_hours)

    @property
    def cancel_deadline(self) -> datetime:
        """After this the branch cancels or moves its booking by calling the station."""
        return self.starts_at - timedelta(hours=self.station.cancel_deadline_hours)

    @property
    def is_changeable(self) -> bool:
        """A cancelled slot is final: its time, places and status no longer change."""
        return self.status is not SlotStatus.CANCELLED

    def takes_bookings(self, now: datetime | None = None) -> bool:
        """Open for booking and before the cut-off (whether the package is still offered is
        ``booking.services.slot_refusal``'s part)."""
        return self.status is SlotStatus.OPEN and (now or clock.now()) <= self.booking_closes_at

    # Check-in, the one rule (booking services refuse by it, host pages show it): it opens at
    # 00:00 Shanghai time on the slot's day; it has no closing time (a headcount can be corrected
    # and a no-show checked in afterwards).
    @property
    def check_in_opens_at(self) -> datetime:
        return clock.local_datetime(clock.to_local(self.starts_at).date(), 0)

    def check_in_is_open(self, now: datetime | None = None) -> bool:
        return (now or clock.now()) >= self.check_in_opens_at

    def __repr__(self) -> str:
        return f"<Slot {self.id} package={self.package_id} station={self.station_id} {self.starts_at}>"


class SlotEvent(db.Model):
    """Append-only record of what hosts did to a slot (created, edited, closed, cancelled…)."""

    __tablename__ = "slot_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(sa.ForeignKey("slots.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow_default, index=True)
    action: Mapped[str] = mapped_column(sa.String(30))
    detail: Mapped[str] = mapped_column(sa.Text, default="")

    slot: Mapped[Slot] = relationship()
    actor: Mapped[Optional["User"]] = relationship()  # noqa: F821

    # The audit trail (/admin/audit) filters by action, newest first.
    __table_args__ = (sa.Index("ix_slot_events_action_at", "action", "at"),)

    @validates("action")
    def _known_action(self, _key, action: str) -> str:
        # Every page shows the action through SLOT_EVENT_ACTIONS: an unlabelled key would show raw.
        if action not in SLOT_EVENT_ACTIONS:
            raise ValueError(f"slot event action {action!r} has no label in SLOT_EVENT_ACTIONS")
        return action

    @property
    def label(self) -> str:
        return slot_action_label(self.action)

    @property
    def detail_text(self) -> str:
        return slot_event_detail(self.action, self.detail or "")


# What a slot event's action is called on every page that shows it (host slot page, audit trail).
SLOT_EVENT_ACTIONS = {
    "created": _l("Created the slot"),
    "edited": _l("Edited the slot"),
    "capacity_changed": _l("Changed the capacity"),
    "closed": _l("Closed booking"),
    "reopened": _l("Reopened booking"),
    "cancelled": _l("Cancelled the slot"),
    "no_shows_marked": _l("Marked no-shows"),
}

# The parts of an "edited" event's detail ("time a–b → c–d; capacity 30 → 45; max_groups 2 → None; note").
_EDITED_PARTS = {
    "time": _l("Time"),
    "capacity": _l("Capacity"),
    "max_groups": _l("Group limit"),
    "note": _l("Note"),
}


def slot_action_label(action: str) -> str:
    return str(SLOT_EVENT_ACTIONS.get(action, action))


def _moment_range(text: str) -> str:
    from blueprints.core.templating import time_range

    start, end = (datetime.fromisoformat(part) for part in text.split("–"))
    return time_range(start, end)


def slot_event_detail(action: str, detail: str) -> str:
    """A slot event's detail as a reader sees it: the words of the edited fields translated,
    times in Shanghai; what the host typed (a reason) as it is."""
    if action == "created" and detail.startswith("series "):
        return str(_l("part of a recurring series"))
    if action != "edited" or not detail:
        return detail
    shown = []
    for part in detail.split("; "):
        key, _, change = part.partition(" ")
        if key not in _EDITED_PARTS:
            shown.append(part)
            continue
        if key == "time":
            try:
                change = " → ".join(_moment_range(side) for side in change.split(" → "))
            except ValueError:
                pass
        change = change.replace("None", "—")
        shown.append(f"{_EDITED_PARTS[key]} {change}".strip())
    return "；".join(shown)
