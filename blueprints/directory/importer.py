"""Organisations from and to the district's spreadsheets (CSV or XLSX).

Three steps, so that nothing is written until an administrator has seen the preview:

1. ``read_table(filename, data)`` turns the uploaded bytes into a header and rows of text
   (UTF-8 with or without BOM, GB18030, UTF-16 CSV; XLSX via openpyxl once ``xlsx_guard`` has
   checked it), at most MAX_ROWS rows and MAX_COLUMNS columns of MAX_CELL_CHARS characters.
2. ``parse_rows(header, rows)`` checks every cell on its own and gives ``ImportRow``s plus the
   errors, each naming the spreadsheet row and column.
3. ``plan_import(rows)`` compares them with the database (existing names, parents in the file
   or the database, no cycles) and says what would be created or updated; ``apply_plan`` then
   writes it in the caller's transaction.

The parsed rows travel from the preview to the confirmation in a signed hidden field
(``sign_rows`` / ``load_rows``), so any app instance can finish the import.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import asdict, dataclass, field

from defusedxml import DefusedXmlException
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.orm import aliased, joinedload

from blueprints.accounts.models import Organisation, OrganisationKind
from blueprints.core import params, spreadsheets
from blueprints.core.extensions import db

from . import xlsx_guard

MAX_ROWS = 10_000
MAX_COLUMNS = 50  # the seven known columns and room for the district's own (unknown ones are ignored)
MAX_CELL_CHARS = 1_000  # the longest value kept is a 120-character name
SIGNED_ROWS_MAX_AGE = 2 * 3600  # seconds between upload and confirmation


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # the Chinese header the export writes
    aliases: tuple[str, ...]
    required: bool = False


COLUMNS = (
    Column("name", "名称", ("名称", "组织名称", "党组织名称", "单位名称", "name", "organisation", "organization"), True),
    Column("kind", "类型", ("类型", "组织类型", "类别", "kind", "type"), True),
    Column("parent", "上级组织", ("上级组织", "上级党组织", "上级", "parent", "parent organisation")),
    Column("subdistrict", "街镇", ("街镇", "所属街镇", "街道", "镇", "subdistrict", "town")),
    Column("member_count", "党员人数", ("党员人数", "党员数", "人数", "member count", "members")),
    Column("secretary_name", "书记姓名", ("书记姓名", "书记", "支部书记", "secretary name", "secretary")),
    Column("secretary_phone", "书记电话", ("书记电话", "书记手机", "联系电话", "手机", "secretary phone", "phone")),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
HEADERS = [c.header for c in COLUMNS]

# What the kind column may say; the export writes the first spelling.
KIND_NAMES = {
    OrganisationKind.PARTY_COMMITTEE: "党委",
    OrganisationKind.GENERAL_BRANCH: "党总支",
    OrganisationKind.BRANCH: "党支部",
    OrganisationKind.REGIONAL_UNIT: "区域单位",
}
_KIND_ALIASES = {
    **{name: kind for kind, name in KIND_NAMES.items()},
    **{kind.value: kind for kind in OrganisationKind},
    "党总支部": OrganisationKind.GENERAL_BRANCH,
    "总支": OrganisationKind.GENERAL_BRANCH,
    "支部": OrganisationKind.BRANCH,
    "两新组织": OrganisationKind.REGIONAL_UNIT,
    "“两新”组织": OrganisationKind.REGIONAL_UNIT,
    "\"两新\"组织": OrganisationKind.REGIONAL_UNIT,
    "partycommittee": OrganisationKind.PARTY_COMMITTEE,
    "generalpartybranch": OrganisationKind.GENERAL_BRANCH,
    "generalbranch": OrganisationKind.GENERAL_BRANCH,
    "partybranch": OrganisationKind.BRANCH,
    "regionalunit": OrganisationKind.REGIONAL_UNIT,
}
PHONE = re.compile(r"^\+?[0-9][0-9\- ]{5,18}[0-9]$")


class ImportFileError(ValueError):
    """The file as a whole cannot be read; the message is for the user."""


@dataclass
class RowError:
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        if self.row is None:
            return self.message
        if self.column is None:
            return _("Row %(row)s: %(problem)s", row=self.row, problem=self.message)
        return _("Row %(row)s, column “%(column)s”: %(problem)s", row=self.row, column=self.column,
                 problem=self.message)


@dataclass
class ImportRow:
    row: int
    name: str
    kind: str | None = None  # OrganisationKind value
    parent: str | None = None  # "" = no parent
    subdistrict: str | None = None
    member_count: int | None = None
    secretary_name: str | None = None
    secretary_phone: str | None = None
    # None above means "column not in the file": an update keeps the stored value.


@dataclass
class Change:
    row: ImportRow
    action: str  # "create", "update" or "unchanged"
    organisation_id: int | None = None
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (column, before, after)


@dataclass
class ImportPlan:
    changes: list[Change]
    errors: list[RowError]

    @property
    def creates(self) -> list[Change]:
        return [c for c in self.changes if c.action == "create"]

    @property
    def updates(self) -> list[Change]:
        return [c for c in self.changes if c.action == "update"]

    @property
    def unchanged(self) -> list[Change]:
        return [c for c in self.changes if c.action == "unchanged"]


# -- 1. reading the file ---------------------------------------------------------------------------

def read_table(filename: str, data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header cells and ``(row number, cells)`` of a CSV or XLSX file; row numbers as the
    spreadsheet shows them (the header is row 1). Raises ImportFileError."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if not data:
        raise ImportFileError(_("The file is empty."))
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(
            _("Old Excel files (.xls) cannot be read. Please save the sheet as .xlsx or CSV in Excel and upload it again."))
    if data.startswith(b"PK\x03\x04"):
        if extension not in ("xlsx", "xlsm"):
            raise ImportFileError(_("Only CSV and XLSX files can be imported."))
        return _read_xlsx(data)
    if extension not in ("csv", "txt", "tsv"):
        raise ImportFileError(_("Only CSV and XLSX files can be imported."))
    return _read_csv(data)


def _read_xlsx(data: bytes):
    from openpyxl import load_workbook

    try:
        # openpyxl never sees the upload: sizes, compression, dimension, row widths, text lengths and
        # no DTD are checked, then it reads a workbook rebuilt from the first sheet's cells alone.
        minimal = xlsx_guard.check(data, max_rows=MAX_ROWS + 1, max_columns=MAX_COLUMNS, max_chars=MAX_CELL_CHARS)
        workbook = load_workbook(io.BytesIO(minimal), read_only=True, data_only=True)
        try:
            rows = _xlsx_rows(workbook.worksheets[0])
        finally:
            workbook.close()
    except xlsx_guard.TooManyRows as exc:
        raise ImportFileError(_too_many_rows()) from exc
    except xlsx_guard.TooManyColumns as exc:
        raise ImportFileError(_too_many_columns()) from exc
    except xlsx_guard.WorkbookRefused as exc:
        current_app.logger.info("xlsx upload refused: %s", exc.reason)
        raise ImportFileError(exc.message) from exc
    except (ImportFileError, MemoryError):
        raise
    except Exception as exc:  # openpyxl raises all kinds (KeyError, TypeError, IndexError...) on a broken file
        current_app.logger.info("unreadable xlsx upload: %r", exc, exc_info=True)
        if _caused_by(exc, DefusedXmlException):  # a part only openpyxl reads (it wraps ValueErrors)
            raise ImportFileError(xlsx_guard.declarations_message()) from exc
        if _caused_by(exc, SyntaxError):  # xml.etree.ElementTree.ParseError
            raise ImportFileError(xlsx_guard.damaged_message()) from exc
        raise ImportFileError(xlsx_guard.unreadable_message()) from exc
    return _split_header(rows)


def _caused_by(exc: BaseException | None, kind: type) -> bool:
    for _depth in range(10):
        if exc is None:
            return False
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _xlsx_rows(sheet) -> list[tuple[int, list[str]]]:
    rows = []
    # Explicit bounds: openpyxl would otherwise pad every row to the declared dimension.
    for number, values in enumerate(sheet.iter_rows(max_row=MAX_ROWS + 1, max_col=MAX_COLUMNS, values_only=True),
                                    start=1):
        if number > MAX_ROWS + 1:
            raise ImportFileError(_too_many_rows())
        cells = [_cell_text(v) for v in values]
        while cells and not cells[-1]:
            cells.pop()
        _check_cells(number, cells)
        rows.append((number, cells))
    return rows


def _check_cells(number: int, cells: list[str]) -> None:
    if len(cells) > MAX_COLUMNS:
        raise ImportFileError(_too_many_columns())
    for position, text in enumerate(cells):
        if len(text) > MAX_CELL_CHARS:
            raise ImportFileError(str(RowError(number, get_column_letter(position + 1), _(
                "the cell has more than %(max)s characters.", max=MAX_CELL_CHARS))))


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers and counts typed as numbers
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    raise ImportFileError(
        _("The file is not a text CSV file in a known encoding (UTF-8 or GB18030). Please save it from Excel as “CSV UTF-8” or upload the .xlsx file."))


def _read_csv(data: bytes):
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",\t;", key=first_line.count) if first_line else ","
    rows = []
    try:
        for number, values in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
            if number > MAX_ROWS + 1:
                raise ImportFileError(_too_many_rows())
            used = len(values)
            while used and not values[used - 1]:
                used -= 1
            _check_cells(number, values[:used])
            rows.append((number, values))
    except csv.Error as exc:
        raise ImportFileError(_("The CSV file cannot be read: %(problem)s", problem=str(exc))) from exc
    return _split_header(rows)


def _too_many_rows() -> str:
    return _("The file has more than %(max)s rows. Please split it into several files.", max=MAX_ROWS)


def _too_many_columns() -> str:
    return _("The file has more than %(max)s columns. Please delete the columns that are not needed and upload it again.",
             max=MAX_COLUMNS)


def _split_header(rows):
    rows = [(n, cells) for n, cells in rows if any(c.strip() for c in cells)]
    if not rows:
        raise ImportFileError(_("The file has no rows."))
    (_n, header), body = rows[0], rows[1:]
    return [h.strip() for h in header], body


# -- 2. checking every cell -------------------------------------------------------------------------

def _normalise_header(text: str) -> str:
    text = re.sub(r"[\s_*（）()：:]|必填|选填", "", text.replace("\ufeff", "")).lower()
    return text


def match_columns(header: list[str]) -> tuple[dict[str, int], list[RowError]]:
    """Column key -> index in the row. Unknown columns are ignored."""
    index: dict[str, int] = {}
    errors: list[RowError] = []
    lookup = {_normalise_header(alias): c for c in COLUMNS for alias in c.aliases}
    for position, text in enumerate(header):
        column = lookup.get(_normalise_header(text))
        if column is None:
            continue
        if column.key in index:
            errors.append(RowError(1, text, _("this column appears twice.")))
            continue
        index[column.key] = position
    for column in COLUMNS:
        if column.required and column.key not in index:
            errors.append(RowError(None, None, _(
                "The first row must name the columns; the column “%(column)s” is missing. Expected columns: %(columns)s.",
                column=column.header, columns="、".join(HEADERS))))
    return index, errors


# What a Chinese input method types for 0-9 (NFKC would also turn "²" into a 2).
FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def _clean(text: str) -> str:
    text = text.replace("\u3000", " ").strip()
    # The export protects text that Excel would take for a formula with a leading apostrophe.
    return spreadsheets.unquote(text)


def parse_rows(header: list[str], rows: list[tuple[int, list[str]]]) -> tuple[list[ImportRow], list[RowError]]:
    index, errors = match_columns(header)
    if errors:
        return [], errors
    label = {key: header[position] for key, position in index.items()}
    parsed: list[ImportRow] = []
    first_row_of: dict[str, int] = {}
    for number, cells in rows:
        def cell(key):
            position = index.get(key)
            if position is None:
                return None
            return _clean(cells[position]) if position < len(cells) else ""

        def problem(key, message):
            errors.append(RowError(number, label[key], message))

        item = ImportRow(row=number, name=cell("name"))
        if not item.name:
            problem("name", _("the name is missing."))
        elif len(item.name) > 120:
            problem("name", _("the name is longer than %(max)s characters.", max=120))
        elif item.name in first_row_of:
            problem("name", _("“%(name)s” already appears in row %(other)s.", name=item.name,
                              other=first_row_of[item.name]))
        else:
            first_row_of[item.name] = number

        kind_text = cell("kind")
        kind = _KIND_ALIASES.get(kind_text) or _KIND_ALIASES.get(re.sub(r"\s", "", kind_text).lower())
        if kind is None:
            if not kind_text:
                problem("kind", _("the kind is missing (党委, 党总支, 党支部 or 区域单位)."))
            else:
                problem("kind", _("“%(value)s” is not a kind; write 党委, 党总支, 党支部 or 区域单位.",
                                  value=kind_text))
        else:
            item.kind = kind.value

        parent = cell("parent")
        if parent is not None:
            if parent and parent == item.name:
                problem("parent", _("an organisation cannot be its own parent."))
            item.parent = parent

        subdistrict = cell("subdistrict")
        if subdistrict is not None:
            if len(subdistrict) > 60:
                problem("subdistrict", _("longer than %(max)s characters.", max=60))
            item.subdistrict = subdistrict

        members = cell("member_count")
        if members is not None:
            digits = members.replace(",", "").replace("，", "")
            if digits.endswith("人"):
                digits = digits[:-1].strip()
            if not digits:
                item.member_count = 0
            elif (count := params.parse_int(digits.translate(FULL_WIDTH_DIGITS), maximum=1_000_000)) is not None:
                item.member_count = count
            else:
                problem("member_count", _("“%(value)s” is not a whole number of 0 or more.", value=members))

        secretary_name = cell("secretary_name")
        if secretary_name is not None:
            if len(secretary_name) > 60:
                problem("secretary_name", _("longer than %(max)s characters.", max=60))
            item.secretary_name = secretary_name

        phone = cell("secretary_phone")
        if phone is not None:
            if phone and not PHONE.match(phone):
                problem("secretary_phone", _("“%(value)s” is not a phone number.", value=phone))
            item.secretary_phone = phone
        parsed.append(item)
    if not parsed and not errors:
        errors.append(RowError(None, None, _("The file has a header but no organisations.")))
    return parsed, errors


# -- 3. comparing with the database -------------------------------------------------------------------

@dataclass
class _Known:
    id: int | None
    name: str
    kind: OrganisationKind
    parent: str | None  # name


def _load_by_name(names: set[str]) -> dict[str, Organisation]:
    found: dict[str, Organisation] = {}
    ordered = sorted(names)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        statement = select(Organisation).options(joinedload(Organisation.parent)).where(Organisation.name.in_(chunk))
        found.update((o.name, o) for o in db.session.scalars(statement))
    return found


def _ancestor_names(ids: set[int]) -> dict[int, tuple[str, OrganisationKind, int | None, str | None]]:
    """id -> (name, kind, parent id, parent name) for ``ids`` and all their ancestors, one query per level."""
    parent = aliased(Organisation)
    known: dict[int, tuple] = {}
    todo = set(ids)
    while todo:
        batch = sorted(todo)[:500]
        rows = db.session.execute(
            select(Organisation.id, Organisation.name, Organisation.kind, Organisation.parent_id, parent.name)
            .outerjoin(parent, parent.id == Organisation.parent_id)
            .where(Organisation.id.in_(batch))
        ).all()
        for row in rows:
            known[row[0]] = tuple(row[1:])
        todo = (todo - set(batch)) | {row[3] for row in rows if row[3] is not None and row[3] not in known}
    return known


def plan_import(rows: list[ImportRow]) -> ImportPlan:
    """What the import would do, and why it cannot if it cannot. Reads, never writes."""
    errors: list[RowError] = []
    in_file = {r.name: r for r in rows}
    parent_header = COLUMN_BY_KEY["parent"].header
    referenced = {r.parent for r in rows if r.parent}
    existing = _load_by_name(set(in_file) | referenced)

    # Everyone whose parent matters: the file's rows and the database parents of what they name.
    graph: dict[str, _Known] = {}
    outside_ids = {o.id for name, o in existing.items() if name not in in_file}
    for org_id, (name, kind, _pid, parent_name) in _ancestor_names(outside_ids).items():
        graph[name] = _Known(org_id, name, kind, parent_name)
    for row in rows:
        stored = existing.get(row.name)
        stored_parent = stored.parent.name if stored is not None and stored.parent is not None else None
        graph[row.name] = _Known(
            stored.id if stored else None, row.name, OrganisationKind(row.kind),
            (row.parent or None) if row.parent is not None else stored_parent,
        )

    for row in rows:
        if not row.parent:
            continue
        target = graph.get(row.parent)
        if target is None:
            errors.append(RowError(row.row, parent_header, _(
                "no organisation named “%(name)s” in the file or the database.", name=row.parent)))
            continue
        if target.kind is OrganisationKind.BRANCH:
            errors.append(RowError(row.row, parent_header, _(
                "“%(name)s” is a Party branch; a branch has no organisations under it.", name=row.parent)))
            continue
        seen, current = {row.name}, target
        while current is not None:
            if current.name in seen:
                errors.append(RowError(row.row, parent_header, _(
                    "“%(name)s” is already below “%(child)s”; parents cannot go round in a circle.",
                    name=row.parent, child=row.name)))
                break
            seen.add(current.name)
            current = graph.get(current.parent) if current.parent else None

    changes: list[Change] = []
    for row in rows:
        stored = existing.get(row.name)
        if stored is None:
            changes.append(Change(row, "create"))
            continue
        differences = []
        for key, before, after in _comparable(stored, row):
            if after is not None and before != after:
                differences.append((COLUMN_BY_KEY[key].header, before, after))
        changes.append(Change(row, "update" if differences else "unchanged", stored.id, differences))
    return ImportPlan(changes, errors)


def _comparable(stored: Organisation, row: ImportRow):
    yield "kind", KIND_NAMES[stored.kind], KIND_NAMES[OrganisationKind(row.kind)]
    yield "parent", stored.parent.name if stored.parent else "", row.parent
    yield "subdistrict", stored.subdistrict, row.subdistrict
    yield "member_count", str(stored.member_count), None if row.member_count is None else str(row.member_count)
    yield "secretary_name", stored.secretary_name, row.secretary_name
    yield "secretary_phone", stored.secretary_phone, row.secretary_phone


def apply_plan(plan: ImportPlan) -> dict[str, Organisation]:
    """Write the plan into the session (the caller commits once). Name -> organisation."""
    assert not plan.errors
    names = {c.row.name for c in plan.changes} | {c.row.parent for c in plan.changes if c.row.parent}
    by_name = _load_by_name(names)
    for change in plan.changes:
        row = change.row
        organisation = by_name.get(row.name)
        if organisation is None:
            organisation = Organisation(name=row.name, kind=OrganisationKind(row.kind), subdistrict="",
                                        member_count=0, secretary_name="", secretary_phone="")
            db.session.add(organisation)
            by_name[row.name] = organisation
        organisation.kind = OrganisationKind(row.kind)
        for key in ("subdistrict", "member_count", "secretary_name", "secretary_phone"):
            value = getattr(row, key)
            if value is not None:
                setattr(organisation, key, value)
    for change in plan.changes:
        if change.row.parent is not None:
            by_name[change.row.name].parent = by_name.get(change.row.parent) if change.row.parent else None
    db.session.flush()
    return by_name


# -- carrying the rows from the preview to the confirmation ----------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="directory.organisation-import")


def sign_rows(rows: list[ImportRow], user_id: int, filename: str) -> str:
    fields = list(ImportRow.__dataclass_fields__)
    return _serializer().dumps({
        "u": user_id, "f": filename, "k": fields, "r": [[getattr(r, k) for k in fields] for r in rows],
    })


def load_rows(token: str, user_id: int) -> tuple[list[ImportRow], str]:
    """Raises ImportFileError when the token is forged, expired or someone else's."""
    try:
        payload = _serializer().loads(token, max_age=SIGNED_ROWS_MAX_AGE)
    except SignatureExpired as exc:
        raise ImportFileError(_("The preview has expired. Please upload the file again.")) from exc
    except BadSignature as exc:
        raise ImportFileError(_("The preview could not be read. Please upload the file again.")) from exc
    if payload.get("u") != user_id:
        raise ImportFileError(_("The preview could not be read. Please upload the file again."))
    return [ImportRow(**dict(zip(payload["k"], values))) for values in payload["r"]], payload.get("f", "")


# -- export -------------------------------------------------------------------------------------------------

def export_rows(query) -> list[list]:
    """Rows of ``query`` (a select of Organisation) with the import's columns, in one query."""
    parent = aliased(Organisation)
    statement = (
        query.with_only_columns(
            Organisation.name, Organisation.kind, parent.name, Organisation.subdistrict,
            Organisation.member_count, Organisation.secretary_name, Organisation.secretary_phone,
        )
        .outerjoin(parent, parent.id == Organisation.parent_id)
        .order_by(None).order_by(Organisation.name)
    )
    return [
        [name, KIND_NAMES[kind], parent_name or "", subdistrict, members, secretary, phone]
        for name, kind, parent_name, subdistrict, members, secretary, phone in db.session.execute(statement)
    ]


def csv_bytes(rows: list[list]) -> bytes:
    return spreadsheets.csv_bytes([HEADERS, *rows])


def xlsx_bytes(rows: list[list]) -> bytes:
    return spreadsheets.xlsx_bytes("组织", HEADERS, rows, widths=(36, 10, 36, 14, 10, 12, 16))


def row_as_dict(row: ImportRow) -> dict:
    return asdict(row)
