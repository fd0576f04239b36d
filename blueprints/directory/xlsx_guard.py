"""Checks an uploaded XLSX, then copies what the importer reads into a new, minimal workbook, so
that a small file cannot make a worker unpack, parse or keep more than a bounded amount.

openpyxl never sees the uploaded archive: ``check`` returns a workbook rebuilt in memory from the
first worksheet's cells and the shared strings only — regenerated content types, package and
workbook relationships and a workbook part naming that one sheet; no styles, themes, properties,
defined names, other sheets, drawings, pivot caches, external links or anything outside the rows
(data validations, conditional formatting, merged cells, hyperlinks...). Whatever else the upload
holds (a 64,000-format stylesheet, a part listed as a second worksheet...) is therefore never
turned into objects. Cells keep their reference, type and value (``<v>``, or an inline string's
text); style, formula and the rest are dropped, so with ``data_only=True`` openpyxl reads the
same values, except that a number formatted as a date stays a number (the import has no date
column). Texts are flattened the way openpyxl's ``Text.content`` reads them, and may be cut to
``max_chars + 1`` characters: the caller still sees that they are too long.

What is checked first, from the ZIP's directory (sizes are what zipfile will unpack at most: it
stops at the declared size and then fails the CRC):

* at most ``MAX_PARTS`` parts, none encrypted, stored or deflated only; no part above
  ``RATIO_FLOOR`` (nor the whole) compressed more than ``MAX_RATIO`` times (spreadsheets
  compress 3 to 20 times); at most ``MAX_TOTAL_BYTES`` unpacked, a worksheet
  ``MAX_SHEET_BYTES``, the shared strings ``MAX_SHARED_STRINGS_BYTES``, any other part
  ``MAX_PART_BYTES``;

then, streaming through defusedxml or expat (no entity declarations anywhere, so nothing can
expand; in the parts that are read no DTD at all):

* the content types, the workbook part and its relationships (parsed by the guard to find the
  sheets): at most ``MAX_PART_ELEMENTS`` elements each, no text longer than ``MAX_TEXT_CHARS``;
* the first worksheet (the one imported and copied): a declared ``<dimension>`` within the rows
  and columns the importer accepts (refused as soon as it is read), no more rows than that, no row
  with more cells or a cell further right, no cell text longer than Excel allows
  (``MAX_TEXT_CHARS``), bounded elements per row and outside the rows (``MAX_OTHER_ELEMENTS``:
  dropped from the copy, but the guard still streams them);
* the shared strings: at most ``MAX_SHARED_STRINGS``, none longer than ``MAX_TEXT_CHARS``;
* every other XML part (other sheets, styles, properties, pictures...): well-formed and without
  entity declarations (an SVG picture may name its DTD), checked by expat alone, without a Python
  call per element, since nothing reads them afterwards.

The first worksheet and the shared strings are found the way openpyxl finds them (content types,
the workbook part and its relationships).
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from xml.parsers import expat

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
MAX_PART_BYTES = 4 * MB  # styles, workbook, relationships...
MAX_RATIO = 100
RATIO_FLOOR = 1 * MB  # a smaller part cannot hurt, whatever its ratio
MAX_SHARED_STRINGS = 100_000
MAX_TEXT_CHARS = 32_767  # Excel's own limit for the text of a cell
MAX_ELEMENTS_PER_CELL = 20  # rich text: a run is a few elements
MAX_ELEMENTS_PER_STRING = 200
MAX_PART_ELEMENTS = 20_000  # content types, workbook, relationships: a few hundred in real files
MAX_OTHER_ELEMENTS = 50_000  # outside the rows (formats, merged cells, links...): streamed, never copied
READ_CHUNK = 64 * 1024
FLUSH_CHARS = 256 * 1024

_WORKBOOK_TYPES = (XLTM, XLTX, XLSM, XLSX)  # openpyxl's order
_ROW = f"{{{SHEET_MAIN_NS}}}row"
_VALUE = f"{{{SHEET_MAIN_NS}}}v"
_INLINE = f"{{{SHEET_MAIN_NS}}}is"
_STRING = f"{{{SHEET_MAIN_NS}}}si"
_REFERENCE = re.compile(r"\$?([A-Za-z]*)\$?([0-9]*)")
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_REL_ID = f"{{{_REL_NS}}}id"

# The rebuilt workbook.
_SHEET_PART = "xl/worksheets/sheet1.xml"
_STRINGS_PART = "xl/sharedStrings.xml"
_WORKSHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_PACKAGE_RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


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


def check(data: bytes, *, max_rows: int, max_columns: int, max_chars: int | None = None) -> bytes:
    """Raises WorkbookRefused unless ``data`` is within the limits above; the first worksheet may
    have ``max_rows`` rows (header included) and ``max_columns`` columns. Returns the minimal
    workbook (XLSX bytes) that openpyxl may read instead of ``data``: the first worksheet's cells
    and the shared strings, texts cut to ``max_chars + 1`` characters when ``max_chars`` is given."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise _unreadable(f"zip: {exc}") from exc
    keep = None if max_chars is None else max_chars + 1
    out = io.BytesIO()
    with archive, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy:
        infos = archive.infolist()
        _check_sizes(infos)
        layout = _layout(archive)
        sheet = layout.sheets[0]
        for info in infos:
            if info.filename == sheet:
                limit = MAX_SHEET_BYTES
            elif info.filename == layout.shared_strings:
                limit = MAX_SHARED_STRINGS_BYTES
            else:
                limit = MAX_PART_BYTES
            if info.file_size > limit:
                raise _unpacks_to(limit, f"{info.filename}: {info.file_size} bytes")
        if layout.shared_strings:
            with _Writer(copy, _STRINGS_PART) as writer:
                writer.write(f'<sst xmlns="{SHEET_MAIN_NS}">')
                _scan(archive, layout.shared_strings, _SharedStrings(writer, keep))
                writer.write("</sst>")
        with _Writer(copy, _SHEET_PART) as writer:
            writer.write(f'<worksheet xmlns="{SHEET_MAIN_NS}"><sheetData>')
            _scan(archive, sheet, _FirstSheet(max_rows, max_columns, writer, keep))
            writer.write("</sheetData></worksheet>")
        read = {sheet, layout.shared_strings} | layout.scanned
        for name in sorted(set(archive.namelist()) - read):
            if _looks_like_xml(archive, name):  # pictures are not
                _check_xml(archive, name)
        _write_package(copy, bool(layout.shared_strings))
    return out.getvalue()


def _write_package(copy: zipfile.ZipFile, shared_strings: bool) -> None:
    strings_type = f'<Override PartName="/{_STRINGS_PART}" ContentType="{SHARED_STRINGS}"/>' if shared_strings else ""
    copy.writestr(ARC_CONTENT_TYPES, (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/{ARC_WORKBOOK}" ContentType="{XLSX}"/>'
        f'<Override PartName="/{_SHEET_PART}" ContentType="{_WORKSHEET_TYPE}"/>'
        f'{strings_type}</Types>'))
    copy.writestr("_rels/.rels", (
        f'<Relationships xmlns="{_PACKAGE_RELS_NS}">'
        f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="{ARC_WORKBOOK}"/>'
        '</Relationships>'))
    copy.writestr(ARC_WORKBOOK, (
        f'<workbook xmlns="{SHEET_MAIN_NS}" xmlns:r="{_REL_NS}">'
        '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'))
    strings_rel = (f'<Relationship Id="rId2" Type="{_REL_NS}/sharedStrings" Target="sharedStrings.xml"/>'
                   if shared_strings else "")
    copy.writestr("xl/_rels/workbook.xml.rels", (
        f'<Relationships xmlns="{_PACKAGE_RELS_NS}">'
        f'<Relationship Id="rId1" Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'{strings_rel}</Relationships>'))


class _Writer:
    """One part of the rebuilt workbook, written as UTF-8 in chunks while the original is scanned."""

    def __init__(self, copy: zipfile.ZipFile, name: str):
        self.stream = copy.open(name, "w")
        self.pieces: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.pieces.append(text)
        self.size += len(text)
        if self.size > FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        self.stream.write("".join(self.pieces).encode("utf-8"))
        self.pieces, self.size = [], 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.flush()
        self.stream.close()
        return False


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attribute(text: str) -> str:
    return (_escape(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;"))


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
    if sheets[0] in scanned or sheets[0] == shared_strings:  # a part the workbook reads as something else
        raise _unreadable(f"worksheet {sheets[0]} is also another part")
    return _Layout(sheets, shared_strings, scanned)


# -- streaming the XML -------------------------------------------------------------------------------------

def _scan(archive: zipfile.ZipFile, name: str, target, forbid_dtd: bool = True) -> None:
    parser = DefusedXMLParser(target=target, forbid_dtd=forbid_dtd)  # entities are always forbidden
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(READ_CHUNK):
                parser.feed(chunk)
        parser.close()
    except WorkbookRefused as exc:
        exc.reason = f"{name}: {exc.reason}"
        raise
    except DefusedXmlException as exc:
        raise WorkbookRefused(declarations_message(), f"{name}: {exc!r}") from exc
    except SyntaxError as exc:
        raise WorkbookRefused(damaged_message(), f"{name}: {exc}") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise _unreadable(f"{name}: {exc}") from exc


class _Declared(Exception):
    pass


def _declared(*_args):
    raise _Declared


def _check_xml(archive: zipfile.ZipFile, name: str) -> None:
    """A part nothing reads: well-formed and without entity declarations (expat alone, no Python
    call per element, so any size up to the limits is quick). A DTD may be named (SVG pictures)."""
    parser = expat.ParserCreate()
    parser.EntityDeclHandler = parser.UnparsedEntityDeclHandler = _declared
    parser.ExternalEntityRefHandler = _declared
    try:
        with archive.open(name) as stream:
            while chunk := stream.read(READ_CHUNK):
                parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Declared as exc:
        raise WorkbookRefused(declarations_message(), f"{name}: entity declaration") from exc
    except expat.ExpatError as exc:
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
    """A part the guard parses into a tree (content types, workbook, relationships)."""

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


@dataclass
class _Text:
    """What openpyxl's ``Text.from_tree(node).content`` makes of an <si> or <is>: the text of its
    last <t> child, then that of the last <t> of each <r> child (<rPh> and the rest ignored)."""
    plain: list[str] = field(default_factory=list)
    runs: list[list[str]] = field(default_factory=list)

    def content(self, keep: int | None) -> str:
        text = "".join(self.plain) + "".join("".join(run) for run in self.runs)
        return text if keep is None else text[:keep]


class _TextCopy:
    """Follows the elements of an <si> or <is> (depth 1 is the element itself) and collects, as
    ElementTree's ``.text``, only the text before an element's first child."""

    def __init__(self):
        self.text = _Text()
        self.collect: list[str] | None = None
        self.collect_depth = 0
        self.child: str | None = None  # the local name of the current child (depth 2)

    def start(self, name: str, depth: int) -> None:
        self.collect = None  # a child: the text after it is a tail, not .text
        if depth == 2:
            self.child = name
            if name == "t":
                self.text.plain = self.collect = []
                self.collect_depth = 2
            elif name == "r":
                self.text.runs.append([])
        elif depth == 3 and self.child == "r" and name == "t":
            self.text.runs[-1] = self.collect = []
            self.collect_depth = 3

    def end(self, depth: int) -> None:
        if depth == self.collect_depth:
            self.collect = None
        if depth == 2:
            self.child = None

    def data(self, text: str) -> None:
        if self.collect is not None:
            self.collect.append(text)


class _FirstSheet(_Part):
    """The worksheet that is imported: bounded as openpyxl would read it (it keeps a row's cells
    until the row ends), and copied into the rebuilt workbook as rows of cells with values."""

    def __init__(self, max_rows: int, max_columns: int, writer: _Writer, keep: int | None):
        super().__init__()
        self.max_rows, self.max_columns = max_rows, max_columns
        self.writer, self.keep = writer, keep
        self.max_elements = max_rows * max_columns * 4  # a cell is <c>, <v> or <is><t>, seldom more
        self.max_row_elements = max_columns * MAX_ELEMENTS_PER_CELL
        self.rows = self.open_rows = 0
        self.cells = self.row_elements = self.other_elements = 0
        self.parents: list[str] = []
        self.cell_depth = 0  # inside a cell: its whole text counts, rich text is several runs
        self.names: dict[str, str] = {}
        self.known_columns = {get_column_letter(n) for n in range(1, max_columns + 1)}
        # The copy: openpyxl takes every {main}row element, and every child of it for a cell.
        self.depth = 0
        self.row_depth = 0  # 0: outside a copied row
        self.cell: dict | None = None  # attributes kept, then the value found
        self.value: list[str] | None = None  # collecting the first <v>'s text
        self.inline: _TextCopy | None = None  # inside the first <is>
        self.inline_depth = 0

    def start(self, tag, attrib):
        self._copy_start(tag, attrib)
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
        self._copy_end()
        if self.parents and self.parents.pop() == "row":
            self.open_rows -= 1
        if self.cell_depth:
            self.cell_depth -= 1
        if not self.cell_depth:
            self.text = 0

    def data(self, text):
        super().data(text)
        if self.value is not None:
            self.value.append(text)
        elif self.inline is not None:
            self.inline.data(text)

    # -- the copy: what openpyxl's WorkSheetParser.parse_row / parse_cell read with data_only=True

    def _copy_start(self, tag, attrib):
        self.depth += 1
        depth = self.depth
        self.value = None  # the text of <v> stops at its first child, as ElementTree's .text
        if not self.row_depth:
            if tag == _ROW:
                self.row_depth = depth
                row = attrib.get("r")
                self.writer.write("<row>" if row is None else f'<row r="{_attribute(row)}">')
            return
        if depth == self.row_depth + 1:  # a cell, whatever its name
            self.cell = {"r": attrib.get("r"), "t": attrib.get("t", "n"), "v": None, "is": None}
        elif self.cell is not None and depth == self.row_depth + 2:
            if self.cell["t"] == "inlineStr":
                if tag == _INLINE and self.cell["is"] is None:
                    self.inline = _TextCopy()
                    self.cell["is"] = self.inline.text
                    self.inline_depth = depth
            elif tag == _VALUE and self.cell["v"] is None:
                self.cell["v"] = self.value = []
        elif self.inline is not None:
            self.inline.start(_local(tag), depth - self.inline_depth + 1)

    def _copy_end(self):
        depth = self.depth
        self.depth -= 1
        self.value = None
        if not self.row_depth:
            return
        if self.inline is not None:
            if depth == self.inline_depth:
                self.inline = None
            else:
                self.inline.end(depth - self.inline_depth + 1)
        if depth == self.row_depth + 1 and self.cell is not None:
            self._write_cell(self.cell)
            self.cell = None
        elif depth == self.row_depth:
            self.writer.write("</row>")
            self.row_depth = 0

    def _write_cell(self, cell: dict) -> None:
        attributes = "" if cell["r"] is None else f' r="{_attribute(cell["r"])}"'
        kind = cell["t"]
        if kind == "inlineStr":
            if cell["is"] is None:
                self.writer.write(f'<c{attributes} t="inlineStr"/>')
            else:
                text = _escape(cell["is"].content(self.keep))
                self.writer.write(f'<c{attributes} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>')
            return
        attributes += f' t="{_attribute(kind)}"'
        value = "".join(cell["v"]) if cell["v"] is not None else ""
        if not value:  # openpyxl: findtext(...) or None
            self.writer.write(f"<c{attributes}/>")
            return
        if kind == "str" and self.keep is not None:  # a formula's text
            value = value[:self.keep]
        self.writer.write(f"<c{attributes}><v>{_escape(value)}</v></c>")


class _SharedStrings(_Part):
    """openpyxl keeps every string, and every element that is not one until the table ends; the
    copy keeps each string's text, flattened, in the same order."""

    def __init__(self, writer: _Writer, keep: int | None):
        super().__init__()
        self.writer, self.keep = writer, keep
        self.strings = self.outside = 0
        self.depth = 0  # inside <si>
        self.string_elements = 0
        self.copy: _TextCopy | None = None

    def start(self, tag, attrib):
        self.elements += 1
        if self.elements > MAX_SHARED_STRINGS * 5:
            raise _too_much_text(f"more than {MAX_SHARED_STRINGS * 5} elements")
        if self.depth:
            if tag == _STRING:
                raise _unreadable("a string inside a string")
            self.depth += 1
            self.string_elements += 1
            if self.string_elements > MAX_ELEMENTS_PER_STRING:
                raise _too_much_text(f"more than {MAX_ELEMENTS_PER_STRING} elements in a string")
            self.copy.start(_local(tag), self.depth)
            return
        self.text = 0
        if tag == _STRING:  # what openpyxl's read_string_table takes
            self.strings += 1
            if self.strings > MAX_SHARED_STRINGS:
                raise _too_much_text(f"more than {MAX_SHARED_STRINGS} shared strings")
            self.depth, self.string_elements = 1, 0
            self.copy = _TextCopy()
        else:
            self.outside += 1
            if self.outside > MAX_OTHER_ELEMENTS:
                raise _too_much_text(f"more than {MAX_OTHER_ELEMENTS} elements outside the strings")

    def end(self, tag):
        if self.depth:
            if self.depth == 1:
                text = _escape(self.copy.text.content(self.keep))
                self.writer.write(f'<si><t xml:space="preserve">{text}</t></si>')
                self.copy = None
            else:
                self.copy.end(self.depth)
            self.depth -= 1
        if not self.depth:
            self.text = 0

    def data(self, text):
        super().data(text)
        if self.copy is not None:
            self.copy.data(text)
