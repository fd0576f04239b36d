"""Input no route should ever see: NUL characters, database-sized ids, absurd page numbers.

Found by the property-based tests (tests/test_fuzz_forms.py): PostgreSQL refuses any string with
a NUL character (psycopg raises before the query is sent), both databases refuse integers beyond
their column type, and ``?page=10**18`` makes an OFFSET that overflows. Rather than teach every
form and route, the request is checked once here, before any view runs:

* a NUL in the path, a query or form value, or an uploaded file's name answers 400 with a
  message that says what is wrong (a NUL is never part of legitimate text input);
* ``<int:…>`` URL parameters beyond PostgreSQL's ``integer`` do not match the rule (404, as for
  any id that does not exist);
* a page number beyond ``MAX_PAGE`` answers 404 (such a page has no rows anyway).

Text fields refuse control characters: ``refuse_control_characters`` is put first on every text
field of every form by ``BaseForm`` (``guard_text_fields``), so no form needs code of its own. A
vertical tab (Word's line break, pasted) once went into a contact name and made the roster XLSX
answer 500; bidirectional overrides make a name read differently from what it is. Refused: C0
controls and DEL, C1 controls (U+0080–U+009F), U+2028/U+2029, the bidi overrides and isolates
(U+202A–U+202E, U+2066–U+2069); in single-line fields also tab, LF and CR — a textarea keeps them.
The field gets a Chinese message naming the character and where it is; nothing is saved.
"""
from __future__ import annotations

import re

from flask import Flask, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter
from wtforms import StringField
from wtforms.validators import StopValidation
from wtforms.widgets import TextArea

MAX_ID = 2 ** 31 - 1  # PostgreSQL integer, and every primary key column here is one
MAX_PAGE = 100_000


class BoundedIntegerConverter(IntegerConverter):
    """``<int:…>`` that only matches ids a database column can hold (default max ``MAX_ID``)."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str):
        # Refuse absurdly long digit strings before int() does any work on them.
        if len(value) > len(str(self.max)) + 1:
            from werkzeug.routing import ValidationError

            raise ValidationError()
        return super().to_python(value)


# Also the noncharacters U+FFFE/U+FFFF and lone surrogates, which XML cannot hold either.
_NEVER = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
_FORBIDDEN_MULTILINE = re.compile(f"[{_NEVER}]")
_FORBIDDEN_SINGLE_LINE = re.compile(f"[{_NEVER}\t\n\r]")
LINE_BREAKS = "\t\n\r"


def forbidden_character(text: str, *, multiline: bool) -> tuple[int, str] | None:
    """(index, character) of the first character a text field must refuse, or None."""
    found = (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN_SINGLE_LINE).search(text)
    return (found.start(), found.group()) if found else None


def refuse_control_characters(form, field) -> None:
    """WTForms validator: stops the field's validation with a message when its input holds a
    control character (see the module's docstring)."""
    multiline = isinstance(field.widget, TextArea)
    for value in field.raw_data or ():
        if not isinstance(value, str):  # e.g. a file part where text belongs (a multipart body)
            raise StopValidation(_("“%(field)s” must be text.", field=field.label.text if field.label else field.name))
        found = forbidden_character(value, multiline=multiline)
        if found is None:
            continue
        index, char = found
        label = field.label.text if field.label else field.name
        if char in LINE_BREAKS:
            raise StopValidation(_("“%(field)s” must be a single line: please remove the line break or tab "
                                   "(character %(position)s).", field=label, position=index + 1))
        raise StopValidation(_(
            "“%(field)s” contains an invisible control character (%(code)s) at character %(position)s, "
            "which cannot be saved. Please delete it and try again; text copied from other programs "
            "often carries such characters.", field=label, code=f"U+{ord(char):04X}", position=index + 1))


def guard_text_fields(form) -> None:
    """Put ``refuse_control_characters`` first on every text field of ``form`` (its own copy of
    the validator list: the class's list is shared by every instance)."""
    for field in form:
        if isinstance(field, StringField) and refuse_control_characters not in field.validators:
            field.validators = [refuse_control_characters, *field.validators]


def _has_nul() -> bool:
    if "\x00" in request.path:
        return True
    for values in (request.args, request.form):
        for key, value in values.items(multi=True):
            if "\x00" in key or "\x00" in value:
                return True
    return any("\x00" in (f.filename or "") for f in request.files.values())


def _bad_page() -> bool:
    page = request.args.get("page", "").strip()
    return len(page) > len(str(MAX_PAGE)) or (page.isdecimal() and int(page) > MAX_PAGE)


def check_request():
    from .errors import _error_page

    if _has_nul():
        return _error_page(
            400, _("Invalid characters"),
            _("The request contained a NUL control character, which is not allowed in any field. "
              "Please remove it and try again. Nothing was saved."))
    if _bad_page():
        return _error_page(404, _("Not found"), _("The page you asked for does not exist."))
    return None


def init_app(app: Flask) -> None:
    """Call before the blueprints are registered (their rules take the ``int`` converter then)."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.before_request(check_request)
