"""Secret calendar-feed URLs."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blueprints.core.db import UTCDateTime, utcnow_default
from blueprints.core.extensions import db
from blueprints.core.models import enum_column


class FeedKind(enum.Enum):
    ORGANISATION = "organisation"  # a branch's bookings, for its secretary
    STATION = "station"  # a station's booked slots with roster summary, for its hosts


class FeedToken(db.Model):
    """One user's secret URL for one feed; resetting replaces the token."""

    __tablename__ = "feed_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[FeedKind] = mapped_column(enum_column(FeedKind, "feed_kind"))
    organisation_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    station_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("stations.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow_default)

    user: Mapped["User"] = relationship()  # noqa: F821
    organisation: Mapped[Optional["Organisation"]] = relationship()  # noqa: F821
    station: Mapped[Optional["Station"]] = relationship()  # noqa: F821

    __table_args__ = (
        sa.CheckConstraint(
            "(kind = 'organisation' AND organisation_id IS NOT NULL AND station_id IS NULL)"
            " OR (kind = 'station' AND station_id IS NOT NULL AND organisation_id IS NULL)",
            name="target_matches_kind",
        ),
        # One token per user and feed. Partial indexes, because a unique constraint over the
        # nullable target columns never fires (NULLs are distinct): two simultaneous first logins
        # made two tokens, and a reset renewed only one of them.
        sa.Index("uq_feed_tokens_user_organisation", "user_id", "organisation_id", unique=True,
                 sqlite_where=sa.text("station_id IS NULL"), postgresql_where=sa.text("station_id IS NULL")),
        sa.Index("uq_feed_tokens_user_station", "user_id", "station_id", unique=True,
                 sqlite_where=sa.text("organisation_id IS NULL"), postgresql_where=sa.text("organisation_id IS NULL")),
    )
