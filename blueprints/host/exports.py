"""Roster and sign-in sheet files: CSV (UTF-8 with BOM, for Excel) and XLSX, written through
``blueprints.core.spreadsheets`` (no cell is ever a formula)."""
from __future__ import annotations

from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from blueprints.booking.models import Booking
from blueprints.catalog.models import Slot
from blueprints.core import clock, spreadsheets
from blueprints.core.i18n import in_default_language
from blueprints.core.templating import time_range

ROSTER_COLUMNS = [  # (header, width)
    ("序号", 6), ("单位/组织", 36), ("预约人数", 10), ("实到人数", 10), ("联系人", 12),
    ("联系电话", 16), ("状态", 12), ("备注", 40),
]


def _status(booking: Booking) -> str:
    with in_default_language():
        return str(booking.status_at(clock.now()).label)


def roster_rows(bookings: list[Booking]) -> list[list]:
    return [
        [n, b.organisation.name, b.headcount, b.attended_headcount if b.attended_headcount is not None else "",
         b.contact_name, b.contact_phone, _status(b), b.note]
        for n, b in enumerate(bookings, start=1)
    ]


def _title(slot: Slot) -> str:
    with in_default_language():
        return f"{slot.package.title} · {slot.station.name} · {time_range(slot.starts_at, slot.ends_at)}"


def roster_csv(slot: Slot, bookings: list[Booking]) -> bytes:
    return spreadsheets.csv_bytes([[_title(slot)], [header for header, _w in ROSTER_COLUMNS],
                                   *roster_rows(bookings)])


def roster_xlsx(slot: Slot, bookings: list[Booking]) -> bytes:
    return spreadsheets.xlsx_bytes("预约名单", [header for header, _w in ROSTER_COLUMNS], roster_rows(bookings),
                                   title=_title(slot), widths=[width for _h, width in ROSTER_COLUMNS])


SIGN_IN_COLUMNS = [("序号", 6), ("姓名", 14), ("所在党支部", 32), ("联系电话", 16), ("签名", 20)]


def sign_in_sheet_xlsx(booking: Booking) -> bytes:
    """签到表: the Party day's facts and one numbered line per person who came."""
    slot = booking.slot
    workbook, sheet = spreadsheets.new_workbook("签到表")
    spreadsheets.append_row(sheet, ["主题党日活动签到表"])
    sheet["A1"].font = Font(bold=True, size=15)
    with in_default_language():
        when = time_range(slot.starts_at, slot.ends_at)
    facts = [("活动内容", slot.package.title), ("活动地点", f"{slot.station.name} {slot.station.address}"),
             ("活动时间", when), ("参加单位", booking.organisation.name),
             ("实到人数", booking.attended_headcount if booking.attended_headcount is not None else "")]
    for label, value in facts:
        spreadsheets.append_row(sheet, [label, value])
        sheet.cell(row=sheet.max_row, column=1).font = Font(bold=True)
        sheet.merge_cells(start_row=sheet.max_row, start_column=2, end_row=sheet.max_row, end_column=5)
    spreadsheets.append_row(sheet, [])
    spreadsheets.append_row(sheet, [header for header, _w in SIGN_IN_COLUMNS])
    header_row = sheet.max_row
    thin = Side(style="thin")
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
    lines = max(booking.attended_headcount or booking.headcount, 1)
    for n in range(1, lines + 1):
        spreadsheets.append_row(sheet, [n, "", booking.organisation.name, "", ""])
    for row in sheet.iter_rows(min_row=header_row, max_row=sheet.max_row, max_col=len(SIGN_IN_COLUMNS)):
        for cell in row:
            cell.border = Border(top=thin, bottom=thin, left=thin, right=thin)
            cell.alignment = Alignment(vertical="center")
    for index, (_header, width) in enumerate(SIGN_IN_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    return spreadsheets.workbook_bytes(workbook)
