"""Mainland China phone numbers: validated by ``phonenumbers`` (Google's libphonenumber metadata),
stored in one form: mobiles as 11 digits (13912345678), landlines as area code and number
(021-64001234), an extension after a dash (021-64001234-801).

What people type keeps working: full-width digits and brackets of Chinese input methods, spaces
and dashes, +86 or 0086 copied from a phone's contacts, 转 for an extension. The library alone is
too lenient for a form field (it finds a number inside "电话13912345678x" and reads Arabic-Indic
digits), so the characters are checked first, and a number written without +86 must start as a
mainland number does (0 for a landline, 1 for a mobile).
"""
from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import PhoneNumberType

ALLOWED = re.compile(r"^\+?[0-9(][0-9\s()\-]*$")
INTERNATIONAL = re.compile(r"^(\+|00)")
EXTENSION = re.compile(r"^(?P<number>.*[0-9)])\s*(?:-|转|ext\.?|x)\s*(?P<extension>[0-9]{1,6})$", re.IGNORECASE)
MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def normalise(text: str | None) -> str | None:
    """The number in its stored form, or None when ``text`` is not a mainland mobile number or a
    landline with its area code."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    found = _number(text)
    if found is None:
        match = EXTENSION.match(text)
        if match is None:
            return None
        found = _number(match["number"], extension=match["extension"])
    return found


def _number(text: str, extension: str | None = None) -> str | None:
    if not ALLOWED.match(text):
        return None
    international = bool(INTERNATIONAL.match(text))
    if not international and not text.lstrip("(").startswith(("0", "1")):
        return None
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        return None
    digits = phonenumbers.national_significant_number(number)
    kind = phonenumbers.number_type(number)
    if kind in MOBILE_TYPES and digits.startswith("1"):
        return digits if extension is None else None
    area = phonenumbers.length_of_geographical_area_code(number)
    if kind not in (PhoneNumberType.FIXED_LINE, *MOBILE_TYPES) or not area:
        return None
    stored = f"0{digits[:area]}-{digits[area:]}"
    return f"{stored}-{extension}" if extension else stored


def is_valid(text: str | None) -> bool:
    return normalise(text) is not None
