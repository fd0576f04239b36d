"""Numbers in URLs and form values: one parser for all of them.

``str.isdigit()`` is true for "²" and "¹²" (which ``int()`` then refuses: a 500), and ``int()``
itself reads "٣", "１２", " 5", "+5" and "1_000". A number typed into one of our URLs or sent by
one of our forms is ASCII digits and nothing else; anything else is not a number (None), and
what a route does with "not a number" is what it does with any value it does not know.
"""
from __future__ import annotations

from flask import request

from .input_guard import MAX_ID, MAX_PAGE


def parse_int(text, *, maximum: int = MAX_ID) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits only and at most ``maximum``
    (by default what an id column holds), else None."""
    if not isinstance(text, str) or not text or len(text) > len(str(maximum)):
        return None
    if not (text.isascii() and text.isdecimal()):
        return None
    value = int(text)
    return value if value <= maximum else None


def int_arg(name: str, default: int | None = None, *, maximum: int = MAX_ID) -> int | None:
    """A query parameter as a number (``default`` when it is absent or not one)."""
    value = parse_int(request.args.get(name, ""), maximum=maximum)
    return default if value is None else value


def page_arg(name: str = "page") -> int:
    """A page number: 1 unless the query names a later page."""
    return max(int_arg(name, 1, maximum=MAX_PAGE), 1)


def optional_id(value):
    """WTForms ``coerce`` of a select of database ids: "" is no choice, anything but an id an
    invalid one (ValueError, which the field reports as "Not a valid choice")."""
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # the choices' own values
    number = parse_int(value)
    if number is None or number == 0:
        raise ValueError(value)
    return number
