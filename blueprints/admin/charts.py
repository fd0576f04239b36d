"""Small server-rendered SVG bar charts, readable at phone width.

Horizontal bars only: each row has its label on a line of its own above the bars, so long
Chinese station names never need to be cut, and the chart stays legible at 360 px. The SVG is
decorative for screen readers (``aria-hidden``); every chart's numbers are in a table next to it.
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


def hbar(rows: list[Row], series: list[Series], title: str) -> Markup:
    if not rows:
        return Markup("")
    peak = max([max(r.values, default=0) for r in rows] + [r.track or 0 for r in rows] + [1])
    usable = WIDTH - VALUE_SPACE
    per_row = LABEL_HEIGHT + len(series) * (BAR_HEIGHT + BAR_GAP) + ROW_GAP
    legend_height = 24
    height = legend_height + per_row * len(rows)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-hidden="true" focusable="false" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
    ]
    x = 0
    for s in series:
        parts.append(f'<rect class="bar-{s.css_class}" x="{x}" y="4" width="12" height="12" rx="2"/>')
        parts.append(f'<text class="legend" x="{x + 16}" y="15">{escape(s.name)}</text>')
        x += 24 + 14 * len(s.name) + 8
    y = legend_height
    for row in rows:
        parts.append(f'<text class="label" x="0" y="{y + 15}">{escape(row.label)}</text>')
        by = y + LABEL_HEIGHT
        if row.track:
            track_h = len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP
            parts.append(
                f'<rect class="track" x="0" y="{by}" width="{usable * row.track / peak:.1f}" '
                f'height="{track_h}" rx="2"/>'
            )
        for s, value, text in zip(series, row.values, row.texts):
            w = usable * value / peak if value else 0
            parts.append(
                f'<rect class="bar-{s.css_class}" x="0" y="{by}" width="{max(w, 0.0):.1f}" '
                f'height="{BAR_HEIGHT}" rx="2"/>'
            )
            tx = max(w, (usable * row.track / peak) if row.track else 0) + 4
            parts.append(f'<text class="value" x="{tx:.1f}" y="{by + 12}">{escape(text)}</text>')
            by += BAR_HEIGHT + BAR_GAP
        y += per_row
    parts.append("</svg>")
    return Markup("".join(parts))


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"
