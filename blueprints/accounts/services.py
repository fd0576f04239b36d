"""Account rules: authentication, account creation and what makes a password acceptable."""
from __future__ import annotations

import re
import threading

from flask_babel import gettext as _
from sqlalchemy import func, select
from zxcvbn import zxcvbn

from blueprints.core.db import contains
from blueprints.core.extensions import db

from .models import Organisation, OrganisationKind, Role, User

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


# -- password strength -----------------------------------------------------------------------

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 200
# zxcvbn's score 3 means about 10^8 guesses or more: safe against online guessing with room to
# spare, while a few uncommon words (or the one-time passwords we issue) reach it easily.
PASSWORD_MIN_SCORE = 3
# zxcvbn's time grows quickly with the length (0.8 s for 200 characters of "abab…"); the first
# 72 characters (its own default limit) tell a guessable password from a strong one well enough.
_STRENGTH_PREFIX = 72
# Guessed first by anyone who knows where the password is used (zxcvbn's lists are English).
# Lower case, as zxcvbn compares them.
SITE_WORDS = ("partyday", "dangri", "dangjian", "dangyuan", "dangzhibu", "zhibu", "gongchandang",
              "zuzhibu", "minhang", "shanghai", "党日", "党建", "党员", "党支部", "支部", "共产党")
# zxcvbn keeps the user's words in a module-level dictionary while it matches, so two threads
# checking two users' passwords at once would see each other's words.
_ZXCVBN_LOCK = threading.Lock()


def _personal_words(user: User | None) -> list[str]:
    if user is None:
        return []
    words = [user.username, user.display_name, user.phone, user.email, (user.email or "").split("@")[0]]
    if user.organisation is not None:
        words.append(user.organisation.name)
    words += [station.name for station in (user.stations or [])]
    words = [w.strip() for w in words if w and w.strip()]
    # "wang.jianguo" is guessed as "wangjianguo" too.
    return words + [joined for w in words if (joined := re.sub(r"[\W_]+", "", w)) and joined != w]


def _reason(result: dict) -> str:
    """Why zxcvbn found the password guessable, in our words (its own feedback is English)."""
    matches = [m for m in result["sequence"] if m["pattern"] != "bruteforce"]
    for match in matches:
        if match["pattern"] == "dictionary" and match["dictionary_name"] == "user_inputs":
            if match["matched_word"] in SITE_WORDS:
                return _("Words about this site and Party days (such as partyday or dangjian) are among the first guesses.")
            return _("Do not build it from your username, name, phone number or organisation: they are the first guesses.")
    if not matches:
        return _("This password is too easy to guess.")
    longest = max(matches, key=lambda m: len(m["token"]))
    pattern = longest["pattern"]
    if pattern == "dictionary":
        if longest["dictionary_name"] == "passwords":
            if len(result["sequence"]) == 1 and not longest.get("l33t") and not longest.get("reversed"):
                return _("This is one of the most common passwords.")
            return _("This is too close to a common password.")
        return _("Single words and names are easy to guess.")
    if pattern == "repeat":
        return _("Repeated characters or words, like “aaa” or “abcabc”, are easy to guess.")
    if pattern == "sequence":
        return _("Sequences like “abc” or “6543” are easy to guess.")
    if pattern == "spatial":
        return _("Keyboard patterns like “qwerty” or “asdf” are easy to guess.")
    if pattern in ("regex", "date"):
        return _("Years and dates are easy to guess.")
    return _("This password is too easy to guess.")


def password_problem(password: str, user: User | None = None) -> str | None:
    """What is wrong with ``password`` as a new password of ``user`` (who may not be stored yet),
    or None. Every password a person chooses goes through this: the password change, ``flask
    users create``; one-time passwords the app makes pass it too."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return _("Use at least %(count)d characters.", count=PASSWORD_MIN_LENGTH)
    if len(password) > PASSWORD_MAX_LENGTH:
        return _("Use at most %(count)d characters.", count=PASSWORD_MAX_LENGTH)
    with _ZXCVBN_LOCK:
        result = zxcvbn(password[:_STRENGTH_PREFIX], user_inputs=[*_personal_words(user), *SITE_WORDS])
    if result["score"] >= PASSWORD_MIN_SCORE:
        return None
    return _reason(result)


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
    if role is Role.HOST:
        user.stations = list(stations or [])
    problem = password_problem(password, user)
    if problem:
        raise AccountError(problem)
    user.set_password(password)
    db.session.add(user)
    return user


def suggest_organisations(text: str, limit: int = 20, parents_only: bool = False) -> list[str]:
    """Names of organisations containing ``text``, shortest first (the datalists of the
    account, organisation and quota forms)."""
    text = (text or "").strip()[:100]
    if not text:
        return []
    query = select(Organisation.name).where(contains(text, Organisation.name))
    if parents_only:
        query = query.where(Organisation.kind != OrganisationKind.BRANCH)
    return list(db.session.scalars(query.order_by(func.length(Organisation.name), Organisation.name).limit(limit)))
