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
"""
from __future__ import annotations

from flask import Flask, request
from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

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
