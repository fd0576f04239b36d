"""Checks an uploaded XLSX before openpyxl reads it, so that a small file cannot make a worker
unpack, parse or keep more than a bounded amount.

Even in read-only mode openpyxl (1) parses every part other than the worksheets whole, (2) loads
the whole shared-string table, (3) sizes every worksheet by parsing it up to its ``<dimension>``,
keeping what it passed (everything up to the end of ``<sheetData>`` when there is no dimension),
(4) collects every cell of a row before it yields the row and (5) pads rows to the declared
dimension unless told a width. So, from the ZIP's directory first (sizes are what zipfile will
unpack at most: it stops at the declared size and then fails the CRC):

* at most ``MAX_PARTS`` parts, none encrypted, stored or deflated only; no part above
  ``RATIO_FLOOR`` (nor the whole) compressed more than ``MAX_RATIO`` times (spreadsheets
  compress 3 to 20 times); at most ``MAX_TOTAL_BYTES`` unpacked, a worksheet
  ``MAX_SHEET_BYTES``, the shared strings ``MAX_SHARED_STRINGS_BYTES``, any other part
  ``MAX_PART_BYTES``;

then streaming every XML part through defusedxml (no entity declarations, so nothing can expand;
in the worksheets, shared strings and the parts that locate them no DTD at all; no tree is built,
so the scan itself keeps nothing):

* the first worksheet (the one imported): a declared ``<dimension>`` within the rows and columns
  the importer accepts (refused as soon as it is read), no more rows than that, no row with more
  cells or a cell further right, no cell text longer than Excel allows (``MAX_TEXT_CHARS``),
  bounded elements per row and outside the rows;
* every other worksheet: what openpyxl keeps while it sizes it (``MAX_SIZING_ELEMENTS``);
* the shared strings: at most ``MAX_SHARED_STRINGS``, none longer than ``MAX_TEXT_CHARS``;
* any other XML part (styles, properties, relationships...): at most ``MAX_PART_ELEMENTS``
  elements, no text longer than ``MAX_TEXT_CHARS``.

The worksheets and the shared strings are found the way openpyxl finds them (content types, the
workbook part and its relationships).
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import fromstring as defused_fromstring
from flask_babel import gettext as _
from openpyxl.utils import get_column_letter
from openpyxl.xml.constants import (
    ARC_CONTENT_TYPES, ARC_WORKBOOK, SHARED_STRINGS, SHEET_MAIN_NS, XLSM, XLSX, XLTM, XLTX,
)

MB = 1024 * 1024
MAX_PARTS = 500
MAX_TOTAL_BYTES = 64 * MB
MAX_SHEET_BYTES = 32 * MB  # openpyxl streams worksheets; 10,000 rows of 7 columns are about 4 MB
MAX_SHARED_STRINGS_BYTES = 16 * MB  # loaded whole
MAX_PART_BYTES = 4 * MB  # styles, workbook, relationships...: parsed whole into objects
MAX_RATIO = 100
RATIO_FLOOR = 1 * MB  # a smaller part cannot hurt, whatever its ratio
MAX_SHARED_STRINGS = 100_000
MAX_TEXT_CHARS = 32_767  # Excel's own limit for the text of a cell
MAX_ELEMENTS_PER_CELL = 20  # rich text: a run is a few elements
MAX_ELEMENTS_PER_STRING = 200
MAX_PART_ELEMENTS = 200_000  # 64,000 cell formats (Excel's limit) are about as many
MAX_OTHER_ELEMENTS = 50_000  # a sheet's formats, merged cells, links... outside its rows
MAX_SIZING_ELEMENTS = 200_000  # what openpyxl may keep while it sizes another worksheet
READ_CHUNK = 64 * 1024

_WORKBOOK_TYPES = (XLTM, XLTX, XLSM, XLSX)  # openpyxl's order
_DIMENSION = f"{{{SHEET_MAIN_NS}}}dimension"
_SHEET_DATA = f"{{{SHEET_MAIN_NS}}}sheetData"
_REFERENCE = re.compile(r"\$?([A-Za-z]*)\$?([0-9]*)")
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


class WorkbookRefused(ValueError):
    """``message`` is for the user, ``reason`` for the log."""

    def __init__(self, message: str | None, reason: str):
        super().__init__(reason)
        self.message = message
        self.reason = reason


class TooManyRows(WorkbookRefused):
    """The caller words it (it knows its own limit)."""


class TooManyColumns(WorkbookRefused):
    """The caller words it."""


def unreadable_message() -> str:
    return _("The file is not a readable XLSX workbook.")


def damaged_message() -> str:
    return _("The XLSX file is damaged: its XML cannot be read. Please open it in Excel, save it again and upload the new file.")


def declarations_message() -> str:
    return _("The XLSX file contains XML declarations (a DTD or entities) that spreadsheets never use, so it is not read. Please save it again in Excel and upload it.")


def _unreadable(reason: str) -> WorkbookRefused:
    return WorkbookRefused(unreadable_message(), reason)


def _unpacks_to(limit: int, reason: str) -> WorkbookRefused:
    return WorkbookRefused(_("The XLSX file holds more than %(size)s MB once unpacked. Please split it into several files.",
                             size=f"{limit / MB:g}"), reason)


def _text_too_long(reason: str) -> WorkbookRefused:
    return WorkbookRefused(_("The file has a cell with more than %(max)s characters, more than Excel allows. Please check the file in Excel, save it again and upload it.",
                             max=MAX_TEXT_CHARS), reason)


def _too_much_text(reason: str) -> WorkbookRefused:
    return WorkbookRefused(_("The file has too much text for one import. Please split it into several files."), reason)


def _too_much_besides_cells(reason: str) -> WorkbookRefused:
    return WorkbookRefused(_("The sheet holds too much besides its cells (formatting, merged cells, links). Please copy the cells into a new workbook and upload that."), reason)


def check(data: bytes, *, max_rows: int, max_columns: int) -> None:
    """Raises WorkbookRefused unless openpyxl can read ``data`` within the limits above; the first
    worksheet may have ``max_rows`` rows (header included) and ``max_columns`` columns."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise _unreadable(f"zip: {exc}") from exc
    with archive:
        infos = archive.infolist()
        _check_sizes(infos)
        layout = _layout(archive)
        for info in infos:
            if info.filename in layout.sheets:
                limit = MAX_SHEET_BYTES
            elif info.filename == layout.shared_strings:
                limit = MAX_SHARED_STRINGS_BYTES
            else:
                limit = MAX_PART_BYTES
            if info.file_size > limit:
                raise _unpacks_to(limit, f"{info.filename}: {info.file_size} bytes")
        if layout.shared_strings:
            _scan(archive, layout.shared_strings, _SharedStrings())
        for position, name in enumerate(layout.sheets):
            _scan(archive, name, _FirstSheet(max_rows, max_columns) if position == 0 else _OtherSheet())
        for name in sorted(set(archive.namelist()) - set(layout.sheets) - {layout.shared_strings} - layout.scanned):
            if _looks_like_xml(archive, name):  # pictures are not
                # An SVG picture may name its DTD; entities are refused all the same.
                _scan(archive, name, _Part(), forbid_dtd=False)


def _looks_like_xml(archive: zipfile.ZipFile, name: str) -> bool:
    try:
        with archive.open(name) as stream:
            start = stream.read(64)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise _unreadable(f"{name}: {exc}") from exc
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        start = start.removeprefix(bom)
    return start.replace(b"\x00", b"").lstrip().startswith(b"<")


# -- the ZIP's directory ------------------------------------------------------------------------------

def _check_sizes(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_PARTS:
        raise _unreadable(f"{len(infos)} parts")
    total = compressed = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _unreadable(f"{info.filename}: encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _unreadable(f"{info.filename}: compression method {info.compress_type}")
        if info.file_size > MAX_SHEET_BYTES:  # the largest any part may be; each kind is checked later
            raise _unpacks_to(MAX_SHEET_BYTES, f"{info.filename}: {info.file_size} bytes")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
            raise _ratio(f"{info.filename}: {info.file_size} from {info.compress_size} bytes")
        total += info.file_size
        compressed += info.compress_size
    if total > MAX_TOTAL_BYTES:
        raise _unpacks_to(MAX_TOTAL_BYTES, f"{total} bytes in all")
    if total > RATIO_FLOOR and total > MAX_RATIO * compressed:
        raise _ratio(f"{total} from {compressed} bytes in all")


def _ratio(reason: str) -> WorkbookRefused:
    return WorkbookRefused(_("The XLSX file is compressed more than %(ratio)s times, which spreadsheets never are, so it is not read. Please save it again in Excel and upload it.",
                             ratio=MAX_RATIO), reason)


# -- where the worksheets and the shared strings are, as openpyxl finds them -----------------------------

@dataclass
class _Layout:
    sheets: list[str]  # in the workbook's order: the first is the one imported
    shared_strings: str | None
    scanned: set[str]  # the parts read to find these


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _small_xml(archive: zipfile.ZipFile, name: str, scanned: set[str]):
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise _unreadable(f"no {name}") from exc
    if info.file_size > MAX_PART_BYTES:
        raise _unpacks_to(MAX_PART_BYTES, f"{name}: {info.file_size} bytes")
    _scan(archive, name, _Part())  # bounds the tree built next
    scanned.add(name)
    try:
        return defused_fromstring(archive.read(info), forbid_dtd=True)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _unreadable(f"{name}: {exc}") from exc


def _layout(archive: zipfile.ZipFile) -> _Layout:
    """openpyxl's way: the first workbook part in the content types (or the default place), the
    sheets in its <sheets> through its relationships, the first shared-strings part."""
    names = set(archive.namelist())
    scanned: set[str] = set()
    types = _small_xml(archive, ARC_CONTENT_TYPES, scanned)
    overrides = [(o.get("PartName") or "", o.get("ContentType")) for o in types if _local(o.tag) == "Override"]

    def first_part(content_type):
        return next((part[1:] for part, kind in overrides if kind == content_type), None)

    workbook = next((first_part(t) for t in _WORKBOOK_TYPES if first_part(t) is not None), None)
    if workbook is None:
        defaults = {d.get("ContentType") for d in types if _local(d.tag) == "Default"}
        if not defaults & set(_WORKBOOK_TYPES):
            raise _unreadable("no workbook part")
        workbook = ARC_WORKBOOK
    shared_strings = first_part(SHARED_STRINGS)
    if shared_strings is not None and shared_strings not in names:
        raise _unreadable(f"no {shared_strings}")

    folder, base = posixpath.split(workbook)
    rels_name = posixpath.join(folder, "_rels", f"{base}.rels")
    parent = posixpath.split(posixpath.dirname(rels_name))[0]
    rels = {}  # id -> (target, type); a repeated id keeps the last, as openpyxl's dict does
    for rel in _small_xml(archive, rels_name, scanned):
        if _local(rel.tag) != "Relationship":
            continue
        target = rel.get("Target") or ""
        if rel.get("TargetMode") != "External":
            target = target[1:] if target.startswith("/") else posixpath.normpath(posixpath.join(parent, target))
        rels[rel.get("Id")] = (target, rel.get("Type") or "")

    lists = [child for child in _small_xml(archive, workbook, scanned) if _local(child.tag) == "sheets"]
    if len(lists) > 1:  # which of them openpyxl takes would be a guess
        raise _unreadable("several <sheets>")
    sheets = []
    for sheet in (lists[0] if lists else ()):  # every child, whatever its name, as openpyxl does
        rel_id = sheet.get(_REL_ID)
        if not rel_id:
            continue
        if rel_id not in rels:
            raise _unreadable(f"no relationship {rel_id[:40]}")
        target, kind = rels[rel_id]
        if target in names and "chartsheet" not in kind and target not in sheets:
            sheets.append(target)
    if not sheets:
        raise _unreadable("no worksheet")
    return _Layout(sheets, shared_strings, scanned)


# -- streaming the XML -------------------------------------------------------------------------------------

class _Stop(Exception):
    """Seen enough."""


def _scan(archive: zipfile.ZipFile, name: str, target, forbid_dtd: bool = True) -> None:
    parser = DefusedXMLParser(target=target, forbid_dtd=forbid_dtd)  # entities are always forbidden
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(READ_CHUNK):
                parser.feed(chunk)
        parser.close()
    except _Stop:
        pass
    except WorkbookRefused as exc:
        exc.reason = f"{name}: {exc.reason}"
        raise
    except DefusedXmlException as exc:
        raise WorkbookRefused(declarations_message(), f"{name}: {exc!r}") from exc
    except SyntaxError as exc:
        raise WorkbookRefused(damaged_message(), f"{name}: {exc}") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise _unreadable(f"{name}: {exc}") from exc


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters.upper()[:4]:  # four letters are already beyond Excel's 16,384 columns
        number = number * 26 + ord(letter) - 64
    return number


def _reference(text: str) -> tuple[int, int]:
    """(column, row) of "B12", "$B$12", "B" or "12"; 0 for a part that is not there."""
    letters, digits = _REFERENCE.match(text.strip()).groups()
    column = _column_number(letters) if letters else 0
    row = int(digits) if digits and len(digits) <= 12 else (10 ** 12 if digits else 0)
    return column, row


def _row_number(text: str) -> int:
    text = text.strip()
    if len(text) > 20:
        return 10 ** 12
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return 0  # openpyxl refuses it itself


class _Part:
    """Any other XML part: openpyxl parses the ones it reads whole, into a tree and objects."""

    def __init__(self):
        self.elements = self.text = 0

    def start(self, tag, attrib):
        self.elements += 1
        self.text = 0
        if self.elements > MAX_PART_ELEMENTS:
            raise _too_much_besides_cells(f"more than {MAX_PART_ELEMENTS} elements")

    def end(self, tag):
        self.text = 0

    def data(self, text):
        self.text += len(text)
        if self.text > MAX_TEXT_CHARS:
            raise _text_too_long(f"more than {MAX_TEXT_CHARS} characters in an element")

    def close(self):
        return None


class _FirstSheet(_Part):
    """The worksheet that is imported: openpyxl streams it, but keeps a row's cells until the row
    ends and the elements outside the rows until the sheet ends."""

    def __init__(self, max_rows: int, max_columns: int):
        super().__init__()
        self.max_rows, self.max_columns = max_rows, max_columns
        self.max_elements = max_rows * max_columns * 4  # a cell is <c>, <v> or <is><t>, seldom more
        self.max_row_elements = max_columns * MAX_ELEMENTS_PER_CELL
        self.rows = self.open_rows = 0
        self.cells = self.row_elements = self.other_elements = 0
        self.parents: list[str] = []
        self.cell_depth = 0  # inside a cell: its whole text counts, rich text is several runs
        self.names: dict[str, str] = {}
        self.known_columns = {get_column_letter(n) for n in range(1, max_columns + 1)}

    def start(self, tag, attrib):
        name = self.names.get(tag)
        if name is None:
            name = self.names[tag] = _local(tag)
        parent = self.parents[-1] if self.parents else None
        self.parents.append(name)
        self.elements += 1
        if self.elements > self.max_elements:
            raise _too_much_besides_cells(f"more than {self.max_elements} elements")
        if self.cell_depth:
            self.cell_depth += 1
        else:
            self.text = 0
        if name == "dimension":
            self._dimension(attrib.get("ref") or "")
        if name == "row":  # openpyxl takes a row wherever it is
            self.rows += 1
            if self.rows > self.max_rows or _row_number(attrib.get("r") or "0") > self.max_rows:
                raise TooManyRows(None, f"more than {self.max_rows} rows")
            self.open_rows += 1
            self.cells = self.row_elements = 0
        elif parent == "row":  # and every child of a row for a cell
            self.cells += 1
            letters = _REFERENCE.match(attrib.get("r") or "").group(1)
            if self.cells > self.max_columns or (
                    letters and letters not in self.known_columns and _column_number(letters) > self.max_columns):
                raise TooManyColumns(None, f"a cell beyond column {self.max_columns}")
            self.cell_depth, self.text = 1, 0
        if self.open_rows:
            self.row_elements += 1
            if self.row_elements > self.max_row_elements:
                raise _too_much_besides_cells(f"more than {self.max_row_elements} elements in a row")
        else:
            self.other_elements += 1
            if self.other_elements > MAX_OTHER_ELEMENTS:
                raise _too_much_besides_cells(f"more than {MAX_OTHER_ELEMENTS} elements outside the rows")

    def _dimension(self, ref: str) -> None:
        columns = rows = 0
        for corner in ref.split(":")[:2]:
            column, row = _reference(corner)
            columns, rows = max(columns, column), max(rows, row)
        if columns > self.max_columns:
            raise TooManyColumns(None, f"dimension {ref[:40]}")
        if rows > self.max_rows:
            raise TooManyRows(None, f"dimension {ref[:40]}")

    def end(self, tag):
        if self.parents and self.parents.pop() == "row":
            self.open_rows -= 1
        if self.cell_depth:
            self.cell_depth -= 1
        if not self.cell_depth:
            self.text = 0


class _OtherSheet(_Part):
    """Another worksheet: openpyxl only sizes it, reading up to the end of its first <dimension>
    (or of <sheetData>) and keeping every element it passed."""

    def start(self, tag, attrib):
        self.elements += 1
        self.text = 0
        if self.elements > MAX_SIZING_ELEMENTS:
            raise WorkbookRefused(_("Another sheet of the workbook is too large to check. Please keep only the sheet with the organisations and upload it again."),
                                  f"more than {MAX_SIZING_ELEMENTS} elements before the dimension")

    def end(self, tag):
        if tag in (_DIMENSION, _SHEET_DATA):  # exactly what openpyxl looks for
            raise _Stop
        self.text = 0


class _SharedStrings(_Part):
    """openpyxl keeps every string, and every element that is not one until the table ends."""

    def __init__(self):
        super().__init__()
        self.strings = self.outside = 0
        self.depth = 0  # inside <si>
        self.string_elements = 0

    def start(self, tag, attrib):
        self.elements += 1
        if self.elements > MAX_SHARED_STRINGS * 5:
            raise _too_much_text(f"more than {MAX_SHARED_STRINGS * 5} elements")
        if self.depth:
            self.depth += 1
            self.string_elements += 1
            if self.string_elements > MAX_ELEMENTS_PER_STRING:
                raise _too_much_text(f"more than {MAX_ELEMENTS_PER_STRING} elements in a string")
            return
        self.text = 0
        if _local(tag) == "si":
            self.strings += 1
            if self.strings > MAX_SHARED_STRINGS:
                raise _too_much_text(f"more than {MAX_SHARED_STRINGS} shared strings")
            self.depth, self.string_elements = 1, 0
        else:
            self.outside += 1
            if self.outside > MAX_OTHER_ELEMENTS:
                raise _too_much_text(f"more than {MAX_OTHER_ELEMENTS} elements outside the strings")

    def end(self, tag):
        if self.depth:
            self.depth -= 1
        if not self.depth:
            self.text = 0
