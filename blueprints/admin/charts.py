"""Small server-rendered SVG charts, readable at phone width: horizontal bars and weekly columns.

Our own code rather than a chart library: pygal 3.1.3 was tried and writes an inline ``<style>``
block, a ``style=`` attribute and an inline ``<script>`` into every chart (blocked by this app's
``style-src 'self'; script-src 'self'`` when the SVG is part of the page), a random element id
and the render date (so two renders of the same numbers differ), in about 15 KB per chart. These
charts are plain shapes whose colours and fonts come from ``static/css/app.css``.

Each chart is scaled by its own numbers only (``data-max`` on the ``<svg>`` says by what): a chart
of booking counts never shares a scale with one of people. Several units are drawn as several
charts or bands, not as bars side by side. The SVG is decorative for screen readers
(``aria-hidden``); every chart's numbers are in a table next to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 360
LABEL_HEIGHT = 20
BAR_HEIGHT = 15
BAR_GAP = 3
ROW_GAP = 10
VALUE_SPACE = 130  # room right of the longest bar for its value
MIN_BAR = 3  # a value above zero is never drawn thinner than this
LEGEND_HEIGHT = 24

# Column charts
BAND_TITLE = 18  # the band's name above its columns
VALUE_TEXT = 14  # the value printed above a column
COLUMN_AREA = 64  # height of the tallest column
BAND_GAP = 10
AXIS_LABELS = 18  # week labels under the last band
ZERO_RUN = 3  # this many weeks or more without a value get one "none" note instead of gaps


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str  # colour comes from CSS: .chart .bar-<css_class>


@dataclass(frozen=True)
class Row:
    label: str
    values: tuple[float, ...]
    texts: tuple[str, ...]  # what is printed after each bar
    track: float | None = None  # e.g. capacity: drawn as a light full-length track


@dataclass(frozen=True)
class Band:
    """One series of a column chart, with its own scale."""

    name: str
    css_class: str
    values: tuple[float, ...]


def peak_of(values) -> float:
    """The value a chart's longest bar stands for: the largest of its own values (1 when all are 0)."""
    return max([v for v in values if v] + [1])


def _svg_open(height: float, title: str, kind: str, peak: str) -> list[str]:
    return [
        f'<svg class="chart chart-{kind}" viewBox="0 0 {WIDTH} {height:g}" width="100%" '
        f'aria-hidden="true" focusable="false" preserveAspectRatio="xMinYMin meet" data-max="{peak}">',
        f"<title>{escape(title)}</title>",
    ]


def _legend(series: list[Series], track_name: str | None) -> list[str]:
    """A key of short thick lines (never squares, which a small bar could be taken for)."""
    parts = []
    x = 0
    keys = [(s.name, f"bar-{s.css_class}") for s in series]
    if track_name:
        keys.append((track_name, "track"))
    for name, css_class in keys:
        parts.append(f'<rect class="key {css_class}" x="{x}" y="8" width="18" height="5" rx="1"/>')
        parts.append(f'<text class="legend" x="{x + 22}" y="15">{escape(name)}</text>')
        x += 22 + 14 * len(name) + 12
    return parts


def hbar(rows: list[Row], series: list[Series], title: str, *, track_name: str | None = None) -> Markup:
    """Horizontal bars, one group per row, its label on a line of its own above the bars (long
    Chinese station names never need to be cut). All series of one chart must share a unit
    (people booked and people attended, say); the scale is the largest value or track shown.
    A legend is drawn only when there is more than one thing to tell apart."""
    if not rows:
        return Markup("")
    peak = peak_of([v for r in rows for v in r.values] + [r.track or 0 for r in rows])
    usable = WIDTH - VALUE_SPACE
    per_row = LABEL_HEIGHT + len(series) * (BAR_HEIGHT + BAR_GAP) + ROW_GAP
    with_legend = len(series) > 1 or bool(track_name)
    top = LEGEND_HEIGHT if with_legend else 0
    parts = _svg_open(top + per_row * len(rows), title, "bars", f"{peak:g}")
    if with_legend:
        parts += _legend(series, track_name)
    y = top
    for row in rows:
        parts.append(f'<text class="label" x="0" y="{y + 15}">{escape(row.label)}</text>')
        by = y + LABEL_HEIGHT
        track_w = usable * row.track / peak if row.track else 0
        if row.track:
            track_h = len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP
            parts.append(f'<rect class="track" x="0" y="{by}" width="{track_w:.1f}" height="{track_h}" rx="2"/>')
        for s, value, text in zip(series, row.values, row.texts):
            w = max(usable * value / peak, MIN_BAR) if value else 0
            parts.append(
                f'<rect class="bar bar-{s.css_class}" x="0" y="{by}" width="{w:.1f}" '
                f'height="{BAR_HEIGHT}" rx="2" data-value="{value:g}"/>'
            )
            parts.append(f'<text class="value" x="{max(w, track_w) + 4:.1f}" y="{by + 12}">{escape(text)}</text>')
            by += BAR_HEIGHT + BAR_GAP
        y += per_row
    parts.append("</svg>")
    return Markup("".join(parts))


def zero_runs(values, minimum: int = ZERO_RUN) -> list[tuple[int, int]]:
    """(first, last) indexes of each run of at least ``minimum`` zeros."""
    runs, start = [], None
    for i, v in enumerate(list(values) + [1]):
        if not v and start is None:
            start = i
        elif v and start is not None:
            if i - start >= minimum:
                runs.append((start, i - 1))
            start = None
    return runs


def columns(labels: list[str], bands: list[Band], title: str, *, current: int | None = None,
            current_label: str = "", none_label: str = "") -> Markup:
    """Vertical columns over a time axis (one per label, e.g. per week), one band per series,
    each band scaled by its own values. ``current`` shades the column of today
    and names it ``current_label`` on the axis;
    a run of ``ZERO_RUN`` or more empty columns gets one ``none_label`` note (with ``%(n)s``, the
    number of columns) in the first band instead of reading as missing data."""
    n = len(labels)
    if not n or not bands:
        return Markup("")
    step = WIDTH / n
    col_w = max(min(step * 0.62, 28), 2)
    band_h = BAND_TITLE + VALUE_TEXT + COLUMN_AREA
    height = len(bands) * (band_h + BAND_GAP) + AXIS_LABELS
    peaks = [peak_of(b.values) for b in bands]
    parts = _svg_open(height, title, "columns", ",".join(f"{p:g}" for p in peaks))
    if current is not None and 0 <= current < n:
        cx = step * current
        parts.append(f'<rect class="now" x="{cx:.1f}" y="{BAND_TITLE}" width="{step:.1f}" '
                     f'height="{height - AXIS_LABELS - BAND_TITLE:g}"/>')
    y = 0
    for index, (band, peak) in enumerate(zip(bands, peaks)):
        parts.append(f'<text class="label" x="0" y="{y + 13}">{escape(band.name)}</text>')
        base = y + band_h
        parts.append(f'<line class="baseline" x1="0" y1="{base}" x2="{WIDTH}" y2="{base}"/>')
        for i, value in enumerate(band.values):
            if not value:
                continue
            h = max(COLUMN_AREA * value / peak, MIN_BAR)
            x = step * i + (step - col_w) / 2
            parts.append(f'<rect class="bar bar-{band.css_class}" x="{x:.1f}" y="{base - h:.1f}" '
                         f'width="{col_w:.1f}" height="{h:.1f}" rx="1" data-value="{value:g}"/>')
            parts.append(f'<text class="value" x="{x + col_w / 2:.1f}" y="{base - h - 3:.1f}" '
                         f'text-anchor="middle">{value:g}</text>')
        if index == 0 and none_label:
            for first, last in zero_runs(band.values):
                mid = step * (first + last + 1) / 2
                parts.append(f'<text class="none" x="{mid:.1f}" y="{base - 8}" text-anchor="middle">'
                             f"{escape(none_label % {'n': last - first + 1})}</text>")
        y += band_h + BAND_GAP
    every = 1 if step >= 34 else 2 if step >= 17 else 4
    ticks = {i: label for i, label in enumerate(labels) if i % every == 0}
    if current is not None and 0 <= current < n:  # today's column is named, its neighbours give way
        ticks = {i: label for i, label in ticks.items() if abs(i - current) >= every}
        ticks[current] = current_label or labels[current]
    for i in sorted(ticks):
        css = "tick now" if i == current else "tick"
        parts.append(f'<text class="{css}" x="{step * i + step / 2:.1f}" y="{height - 4:g}" '
                     f'text-anchor="middle">{escape(ticks[i])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"
