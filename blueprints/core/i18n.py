"""Language choice and message catalogs.

Messages are written in English in the code; every feature keeps the Chinese catalog for its own
messages in ``blueprints/<feature>/translations`` (shared ones live in ``translations/``), and
Flask-Babel merges them. ``python -m blueprints.core.i18n`` compiles every catalog.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import current_app, has_request_context, request, session
from flask_babel import force_locale
from flask_login import current_user

ROOT = Path(__file__).resolve().parents[2]


def translation_directories() -> list[Path]:
    dirs = [ROOT / "translations"]
    dirs += sorted(p for p in (ROOT / "blueprints").glob("*/translations") if p.is_dir())
    return [d for d in dirs if d.is_dir()]


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI commands and background work speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    requested = request.args.get("lang")
    if requested in languages:
        return requested
    return current_app.config["BABEL_DEFAULT_LOCALE"]


@lru_cache(maxsize=None)
def parsed_locale(identifier: str) -> Locale:
    """``Locale.parse`` once per process: for an id without a data file of its own ("zh_CN")
    Babel scans every locale it knows, half a millisecond each time."""
    return Locale.parse(identifier)


def babel_locale() -> Locale:
    """Flask-Babel's locale selector: :func:`select_locale`, parsed once per process."""
    return parsed_locale(select_locale())


@contextmanager
def in_default_language():
    """What is shared (calendars, notifications, exports, the booking history) speaks the
    platform's default language, whatever language the page is read in."""
    with force_locale(parsed_locale(current_app.config["BABEL_DEFAULT_LOCALE"])):
        yield


def select_timezone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


def compile_catalogs(verbose: bool = False) -> int:
    """Compile every .po under the translation directories whose .mo is missing or stale."""
    compiled = 0
    for directory in translation_directories():
        for po_path in directory.glob("*/LC_MESSAGES/*.po"):
            mo_path = po_path.with_suffix(".mo")
            if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                continue
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file, locale=po_path.parts[-3])
            with mo_path.open("wb") as mo_file:
                write_mo(mo_file, catalog)
            compiled += 1
            if verbose:
                print(f"compiled {po_path.relative_to(ROOT)}")
    return compiled


if __name__ == "__main__":
    compile_catalogs(verbose=True)
    sys.exit(0)
