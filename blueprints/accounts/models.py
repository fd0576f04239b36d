"""Organisations (who books) and users (who logs in)."""
from __future__ import annotations

import enum
from typing import Optional

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from blueprints.core.extensions import db
from blueprints.core.models import TimestampMixin, enum_column

class OrganisationKind(enum.Enum):
    PARTY_COMMITTEE = "committee"  # 党委
    GENERAL_BRANCH = "general_branch"  # 党总支
    BRANCH = "branch"  # 党支部
    REGIONAL_UNIT = "regional_unit"  # 区域单位


    @property
    def label(self) -> str:
        return ORGANISATION_KIND_LABELS[self]


ORGANISATION_KIND_LABELS = {
    OrganisationKind.PARTY_COMMITTEE: _l("Party committee"),
    OrganisationKind.GENERAL_BRANCH: _l("General Party branch"),
    OrganisationKind.BRANCH: _l("Party branch"),
    OrganisationKind.REGIONAL_UNIT: _l("Regional unit"),
}


class Role(enum.Enum):
    SECRETARY = "secretary"
    HOST = "host"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.SECRETARY: _l("Branch secretary"),
    Role.HOST: _l("Station host"),
    Role.ADMIN: _l("District administrator"),
}


class Organisation(TimestampMixin, db.Model):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(enum_column(OrganisationKind, "organisation_kind"))
    parent_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    subdistrict: Mapped[str] = mapped_column(sa.String(60), default="", index=True)
    member_count: Mapped[int] = mapped_column(default=0)
    secretary_name: Mapped[str] = mapped_column(sa.String(60), default="")
    secretary_phone: Mapped[str] = mapped_column(sa.String(20), default="")
    active: Mapped[bool] = mapped_column(default=True)

    parent: Mapped[Optional["Organisation"]] = relationship(remote_side=[id])
    users: Mapped[list["User"]] = relationship(back_populates="organisation")

    __table_args__ = (sa.CheckConstraint("member_count >= 0", name="member_count_not_negative"),)

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.name}>"

    @property
    def self_name(self) -> str:
        """How the organisation's own pages and messages name it (glossary, README): 本支部 for
        a 党支部 only, 本单位 for a 区域单位 (\"两新\" organisations too), 本组织 otherwise."""
        if self.kind is OrganisationKind.BRANCH:
            return _l("your branch")
        if self.kind is OrganisationKind.REGIONAL_UNIT:
            return _l("your unit")
        return _l("your organisation")


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(60), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(60))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role, "user_role"), index=True)
    organisation_id: Mapped[Optional[int]] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    phone: Mapped[str] = mapped_column(sa.String(20), default="")
    email: Mapped[str] = mapped_column(sa.String(254), default="")
    active: Mapped[bool] = mapped_column(default=True)
    # Set when an administrator issued a one-time password; every page then asks for a new one.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Changing it logs every session of the user out (Flask-Login alternative id).
    session_version: Mapped[int] = mapped_column(default=1)

    organisation: Mapped[Optional[Organisation]] = relationship(back_populates="users")
    stations: Mapped[list["Station"]] = relationship(  # noqa: F821
        secondary="station_hosts", back_populates="hosts", order_by="Station.id"
    )

    __table_args__ = (
        sa.CheckConstraint(
            "role <> 'secretary' OR organisation_id IS NOT NULL",
            name="secretary_has_organisation",
        ),
    )

    # -- Flask-Login -------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    # -- passwords ---------------------------------------------------------------------------
    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    # -- roles -------------------------------------------------------------------------------
    @property
    def is_secretary(self) -> bool:
        return self.role is Role.SECRETARY

    @property
    def is_host(self) -> bool:
        return self.role is Role.HOST

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def station_ids(self) -> set[int]:
        return {station.id for station in self.stations}

    def hosts_station(self, station_id: int) -> bool:
        return self.is_host and station_id in self.station_ids

    def runs_station(self, station_id: int) -> bool:
        """Approves, declines, checks in and cancels at the station: its hosts and every
        district administrator."""
        return self.is_admin or self.hosts_station(station_id)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role.value}>"
