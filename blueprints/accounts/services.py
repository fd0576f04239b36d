"""Account rules: authentication and account creation."""
from __future__ import annotations

from sqlalchemy import select

from blueprints.core.extensions import db

from .models import Organisation, Role, User

# Hash compared against when the username is unknown, so both failures take the same time.
_DUMMY_HASH = None


def authenticate(username: str, password: str) -> User | None:
    global _DUMMY_HASH
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        if _DUMMY_HASH is None:
            probe = User(password_hash="")
            probe.set_password("not-a-real-password")
            _DUMMY_HASH = probe.password_hash
        User(password_hash=_DUMMY_HASH).check_password(password)
        return None
    return user if user.check_password(password) else None


class AccountError(ValueError):
    pass


def create_user(
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    organisation: Organisation | None = None,
    stations: list | None = None,
    must_change_password: bool = False,
) -> User:
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise AccountError(f"user {username!r} already exists")
    if role is Role.SECRETARY and organisation is None:
        raise AccountError("a secretary needs an organisation")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        organisation=organisation if role is Role.SECRETARY else None,
        must_change_password=must_change_password,
    )
    user.set_password(password)
    if role is Role.HOST:
        user.stations = list(stations or [])
    db.session.add(user)
    return user
