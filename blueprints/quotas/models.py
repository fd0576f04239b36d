"""Booking quotas set by the district: at most so many bookings of a category per period."""
from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blueprints.catalog.models import Category
from blueprints.core.extensions import db
from blueprints.core.models import TimestampMixin, enum_column


class QuotaPeriod(enum.Enum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Quota(TimestampMixin, db.Model):
    """At most ``max_bookings`` bookings of ``category`` per ``period`` for one organisation."""

    __tablename__ = "quotas"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[Category] = mapped_column(enum_column(Category, "quota_category"))
    period: Mapped[QuotaPeriod] = mapped_column(enum_column(QuotaPeriod, "quota_period"))
    max_bookings: Mapped[int]

    organisation: Mapped["Organisation"] = relationship()  # noqa: F821

    __table_args__ = (
        sa.CheckConstraint("max_bookings > 0", name="max_bookings_positive"),
        sa.UniqueConstraint("organisation_id", "category", "period", name="uq_quotas_org_category_period"),
    )
