"""The district's directory: organisations and accounts, as administrators keep them.

Plain functions; routes only call them. Nothing here commits: the route commits once per request.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.security import generate_password_hash

from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
from blueprints.accounts.services import password_problem
from blueprints.catalog.models import Station
from blueprints.core.db import contains
from blueprints.core.extensions import db
from blueprints.feeds.services import renew_tokens

# Letters and digits that cannot be mistaken for each other when read aloud or off paper.
_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class DirectoryError(ValueError):
    """A rule of the directory was broken; the message is for the user."""


def one_time_password() -> str:
    """e.g. ``k7mq-3xfa-p9tw``: 12 random characters (about 59 bits), easy to type once. The odd
    draw that spells something guessable ("aaaa-…", a keyboard row) is drawn again, so every
    password we issue also meets the rule for passwords people choose."""
    while True:
        chars = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(12))
        password = "-".join(chars[i:i + 4] for i in range(0, 12, 4))
        if password_problem(password) is None:
            return password


def _set_one_time_password(user: User, password: str) -> None:
    """One-time passwords are 12 random characters, so a lighter hash than the scrypt of chosen
    passwords is safe, and inviting hundreds of secretaries at once takes seconds, not minutes.
    The user replaces it (hashed with scrypt) at the first login."""
    user.password_hash = generate_password_hash(password, method="pbkdf2:sha256:20000")
    user.must_change_password = True


# -- organisations ----------------------------------------------------------------------------------

@dataclass
class OrganisationFilters:
    q: str = ""
    kind: OrganisationKind | None = None
    subdistrict: str = ""
    parent_id: int | None = None
    status: str = "active"  # active, inactive or all


def organisation_query(filters: OrganisationFilters):
    query = select(Organisation)
    if filters.q:
        query = query.where(contains(filters.q, Organisation.name, Organisation.secretary_name,
                                     Organisation.secretary_phone))
    if filters.kind is not None:
        query = query.where(Organisation.kind == filters.kind)
    if filters.subdistrict:
        query = query.where(Organisation.subdistrict == filters.subdistrict)
    if filters.parent_id is not None:
        query = query.where(Organisation.parent_id == filters.parent_id)
    if filters.status == "active":
        query = query.where(Organisation.active.is_(True))
    elif filters.status == "inactive":
        query = query.where(Organisation.active.is_(False))
    return query


def organisation_page(filters: OrganisationFilters, page: int, per_page: int):
    """One page of organisations with their parents; ``accounts`` maps id -> number of active
    secretary accounts. Three queries whatever the page size."""
    query = (organisation_query(filters).options(joinedload(Organisation.parent))
             .order_by(Organisation.name, Organisation.id))
    pagination = db.paginate(query, page=page, per_page=per_page, error_out=False)
    ids = [o.id for o in pagination.items]
    accounts = {}
    if ids:
        accounts = dict(db.session.execute(
            select(User.organisation_id, func.count(User.id))
            .where(User.organisation_id.in_(ids), User.active.is_(True))
            .group_by(User.organisation_id)
        ).all())
    return pagination, accounts


def subdistrict_choices() -> list[str]:
    return list(db.session.scalars(
        select(Organisation.subdistrict).where(Organisation.subdistrict != "")
        .distinct().order_by(Organisation.subdistrict)
    ))


def parent_choices() -> list[tuple[int, str]]:
    """Organisations that have organisations under them (for the parent filter)."""
    child = select(Organisation.parent_id).where(Organisation.parent_id.is_not(None)).distinct().subquery()
    return [tuple(row) for row in db.session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(select(child.c.parent_id)))
        .order_by(Organisation.name)
    )]


def find_organisation(name: str) -> Organisation | None:
    name = (name or "").strip()
    if not name:
        return None
    return db.session.scalar(select(Organisation).where(Organisation.name == name))


def save_organisation(organisation: Organisation | None, *, name: str, kind: OrganisationKind,
                      parent_name: str, subdistrict: str, member_count: int, secretary_name: str,
                      secretary_phone: str, active: bool) -> Organisation:
    """Create (``organisation`` None) or update one organisation. Raises DirectoryError."""
    name = name.strip()
    clash = db.session.scalar(select(Organisation.id).where(Organisation.name == name))
    if clash is not None and (organisation is None or clash != organisation.id):
        raise DirectoryError(_("An organisation named “%(name)s” already exists.", name=name))
    parent = None
    if parent_name.strip():
        parent = find_organisation(parent_name)
        if parent is None:
            raise DirectoryError(_("There is no organisation named “%(name)s”.", name=parent_name.strip()))
        if parent.kind is OrganisationKind.BRANCH:
            raise DirectoryError(_("“%(name)s” is a Party branch; a branch has no organisations under it.",
                                   name=parent.name))
        if organisation is not None:
            ancestor, hops = parent, 0
            while ancestor is not None and hops < 50:
                if ancestor.id == organisation.id:
                    raise DirectoryError(_("“%(name)s” is below this organisation; parents cannot go round in a circle.",
                                           name=parent.name))
                ancestor, hops = ancestor.parent, hops + 1
    if organisation is None:
        organisation = Organisation(name=name, kind=kind)
        db.session.add(organisation)
    organisation.name = name
    organisation.kind = kind
    organisation.parent = parent
    organisation.subdistrict = subdistrict.strip()
    organisation.member_count = member_count
    organisation.secretary_name = secretary_name.strip()
    organisation.secretary_phone = secretary_phone.strip()
    organisation.active = active
    db.session.flush()
    return organisation


# -- accounts ---------------------------------------------------------------------------------------------

@dataclass
class AccountFilters:
    q: str = ""
    role: Role | None = None
    status: str = "active"  # active, inactive or all


def account_page(filters: AccountFilters, page: int, per_page: int):
    """One page of accounts with their organisation and stations: three queries."""
    query = select(User).options(joinedload(User.organisation), selectinload(User.stations))
    if filters.q:
        query = query.outerjoin(User.organisation).where(
            contains(filters.q, User.username, User.display_name, User.phone, Organisation.name))
    if filters.role is not None:
        query = query.where(User.role == filters.role)
    if filters.status == "active":
        query = query.where(User.active.is_(True))
    elif filters.status == "inactive":
        query = query.where(User.active.is_(False))
    return db.paginate(query.order_by(User.username), page=page, per_page=per_page, error_out=False)


def station_choices() -> list[tuple[int, str]]:
    return [tuple(r) for r in db.session.execute(select(Station.id, Station.name).order_by(Station.name))]


def _active_admins_other_than(user: User) -> int:
    return db.session.scalar(select(func.count(User.id)).where(
        User.role == Role.ADMIN, User.active.is_(True), User.id != user.id)) or 0


def save_account(user: User | None, *, acting: User, username: str, display_name: str, role: Role,
                 organisation_name: str, station_ids: list[int], phone: str, email: str) -> tuple[User, str | None]:
    """Create (``user`` None: returns its one-time password) or update an account. Raises DirectoryError."""
    organisation = None
    if role is Role.SECRETARY:
        organisation = find_organisation(organisation_name)
        if organisation is None:
            if organisation_name.strip():
                raise DirectoryError(_("There is no organisation named “%(name)s”.", name=organisation_name.strip()))
            raise DirectoryError(_("A branch secretary needs an organisation."))
    stations = []
    if role is Role.HOST:
        if not station_ids:
            raise DirectoryError(_("A station host needs at least one station."))
        stations = list(db.session.scalars(select(Station).where(Station.id.in_(station_ids))))
    password = None
    if user is None:
        username = username.strip()
        if db.session.scalar(select(User.id).where(User.username == username)) is not None:
            raise DirectoryError(_("The username “%(name)s” is taken.", name=username))
        password = one_time_password()
        user = User(username=username, session_version=1, active=True)
        _set_one_time_password(user, password)
        db.session.add(user)
    elif user.id == acting.id and role is not Role.ADMIN:
        raise DirectoryError(_("You cannot take the administrator role from yourself."))
    user.display_name = display_name.strip() or user.username
    user.role = role
    user.organisation = organisation
    user.stations = stations
    user.phone = phone.strip()
    user.email = email.strip()
    db.session.flush()
    return user, password


@dataclass
class PasswordReset:
    password: str
    feeds_renewed: int  # calendar feed addresses replaced


def reset_password(user: User) -> PasswordReset:
    """A new one-time password; the user's sessions end and the next login asks for a new one.
    Whoever had the account may have copied its calendar feed addresses, which need no login:
    they are replaced too."""
    password = one_time_password()
    _set_one_time_password(user, password)
    user.session_version += 1
    return PasswordReset(password, renew_tokens(user))


def set_active(user: User, active: bool, acting: User) -> int:
    """Returns how many calendar feed addresses were replaced: a deactivated account's feeds
    answer 404 already, and with new addresses they stay dead when it is activated again."""
    if not active:
        if user.id == acting.id:
            raise DirectoryError(_("You cannot deactivate your own account."))
        if user.is_admin and _active_admins_other_than(user) == 0:
            raise DirectoryError(_("The last active administrator cannot be deactivated."))
    renewed = 0
    if user.active != active:
        user.active = active
        user.session_version += 1  # ends every session of the account
        if not active:
            renewed = renew_tokens(user)
    return renewed


# -- secretaries invited from an import ----------------------------------------------------------------

@dataclass
class Invitation:
    organisation: str
    display_name: str
    username: str
    password: str


def _username_from_phone(phone: str, taken: set[str]) -> str:
    base = re.sub(r"\D", "", phone)[-11:] or "sec"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def _organisations_with_secretary(ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        found.update(db.session.scalars(select(User.organisation_id).where(
            User.organisation_id.in_(ids[start:start + 500]), User.role == Role.SECRETARY)))
    return found


def invitation_candidates(organisations) -> list[Organisation]:
    """Organisations with a secretary's phone and no secretary account yet."""
    organisations = [o for o in organisations if o.secretary_phone]
    with_account = _organisations_with_secretary([o.id for o in organisations if o.id is not None])
    return [o for o in organisations if o.id not in with_account]


def invitation_count(plan) -> int:
    """How many secretaries ``invite_secretaries`` would invite after the import ``plan``."""
    count, ids = 0, []
    for change in plan.changes:
        phone = change.row.secretary_phone
        if change.organisation_id is None:
            count += bool(phone)
            continue
        if phone is None:  # no phone column: the stored one stays
            phone = db.session.get(Organisation, change.organisation_id).secretary_phone
        if phone:
            ids.append(change.organisation_id)
    return count + len(set(ids) - _organisations_with_secretary(ids))


def invite_secretaries(organisations) -> list[Invitation]:
    """Create a secretary account with a one-time password for every candidate organisation."""
    candidates = invitation_candidates(organisations)
    bases = sorted({re.sub(r"\D", "", o.secretary_phone)[-11:] for o in candidates})
    taken: set[str] = set()
    for start in range(0, len(bases), 200):
        chunk = bases[start:start + 200]
        taken.update(db.session.scalars(select(User.username).where(or_(
            User.username.in_(chunk), *[User.username.like(f"{b}-%") for b in chunk]))))
    invitations = []
    for organisation in candidates:
        password = one_time_password()
        user = User(
            username=_username_from_phone(organisation.secretary_phone, taken),
            display_name=organisation.secretary_name or organisation.name[:60],
            role=Role.SECRETARY, organisation=organisation, phone=organisation.secretary_phone,
            session_version=1, active=True,
        )
        _set_one_time_password(user, password)
        db.session.add(user)
        invitations.append(Invitation(organisation.name, user.display_name, user.username, password))
    db.session.flush()
    return invitations
