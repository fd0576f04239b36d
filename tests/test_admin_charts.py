"""The statistics' SVG charts (blueprints/admin/charts.py): each chart's scale comes from its own
numbers, bars never look like legend keys, the weekly columns handle runs of empty weeks."""
import re
from datetime import date, timedelta

import pytest

from blueprints.admin import charts
from blueprints.admin.stats import WeekRow
from blueprints.admin.views_stats import week_lines

USABLE = charts.WIDTH - charts.VALUE_SPACE


def rects(svg: str, css: str = "bar") -> list[dict]:
    found = []
    for tag in re.findall(r"<rect [^>]*>", str(svg)):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if css in attrs.get("class", "").split():
            found.append(attrs)
    return found


def svg_max(svg) -> list[float]:
    return [float(v) for v in re.search(r'data-max="([^"]+)"', str(svg)).group(1).split(",")]


def category_charts(bookings, people):
    """The two category charts as views_stats draws them: groups and people, one chart each."""
    rows_b = [charts.Row(f"类{i}", (b,), (f"{b} 批",)) for i, b in enumerate(bookings)]
    rows_p = [charts.Row(f"类{i}", (p,), (f"{p} 人",)) for i, p in enumerate(people)]
    return (charts.hbar(rows_b, [charts.Series("预约批数", "a")], "批数"),
            charts.hbar(rows_p, [charts.Series("参加人数", "b")], "人数"))


def test_hbar_each_chart_is_scaled_by_its_own_series():
    by_groups, by_people = category_charts([2, 1, 2], [15, 12, 8])
    assert svg_max(by_groups) == [2] and svg_max(by_people) == [15]
    widths = [float(r["width"]) for r in rects(by_groups)]
    assert widths == [pytest.approx(USABLE, abs=0.1), pytest.approx(USABLE / 2, abs=0.1), pytest.approx(USABLE, abs=0.1)]
    # 2 groups fill the groups chart although 15 people fill the people chart.
    assert max(float(r["width"]) for r in rects(by_people)) == pytest.approx(USABLE, abs=0.1)
    assert float(rects(by_people)[2]["width"]) == pytest.approx(USABLE * 8 / 15, abs=0.1)


def test_hbar_small_values_are_visible_bars_and_zero_is_none():
    svg = charts.hbar([charts.Row("甲", (1000,), ("1000",)), charts.Row("乙", (1,), ("1",)),
                       charts.Row("丙", (0,), ("0",))], [charts.Series("人数", "a")], "t")
    widths = [float(r["width"]) for r in rects(svg)]
    assert widths[0] == pytest.approx(USABLE, abs=0.1)
    assert widths[1] == charts.MIN_BAR and widths[2] == 0


def test_hbar_single_series_has_no_legend_and_legend_keys_are_not_squares():
    single = charts.hbar([charts.Row("甲", (3,), ("3",))], [charts.Series("人数", "a")], "t")
    assert 'class="key' not in str(single) and 'class="legend"' not in str(single)
    double = charts.hbar([charts.Row("甲", (3, 2), ("3", "2"), track=10)],
                         [charts.Series("预约人数", "a"), charts.Series("签到人数", "b")], "t", track_name="名额")
    keys = rects(double, "key")
    assert len(keys) == 3  # both series and the grey track
    assert all(float(k["width"]) >= 3 * float(k["height"]) for k in keys)
    assert all(float(r["height"]) == charts.BAR_HEIGHT for r in rects(double))


def test_hbar_track_sets_the_scale_of_a_chart_of_one_unit():
    svg = charts.hbar([charts.Row("站", (10, 5), ("10", "5"), track=40)],
                      [charts.Series("预约人数", "a"), charts.Series("签到人数", "b")], "t")
    assert svg_max(svg) == [40]
    assert [float(r["width"]) for r in rects(svg)] == [pytest.approx(USABLE / 4, abs=0.1), pytest.approx(USABLE / 8, abs=0.1)]


def test_charts_escape_labels_and_are_hidden_from_screen_readers():
    svg = str(charts.hbar([charts.Row('<script>"x"</script>', (1,), ("<b>",))], [charts.Series("a&b", "a")], "<t>"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg and "&lt;t&gt;" in svg
    assert 'aria-hidden="true"' in svg and "style=" not in svg
    cols = str(charts.columns(["<w>"], [charts.Band("<n>", "a", (1,))], "t"))
    assert "<w>" not in cols and "&lt;w&gt;" in cols and "style=" not in cols


def test_columns_each_band_has_its_own_scale():
    svg = charts.columns([f"w{i}" for i in range(6)],
                         [charts.Band("预约批数", "a", (1, 3, 0, 2, 0, 0)),
                          charts.Band("参加人数", "b", (10, 60, 0, 25, 0, 0))], "t")
    assert svg_max(svg) == [3, 60]
    bars = rects(svg)
    groups, people = bars[:3], bars[3:]
    assert [r["data-value"] for r in groups] == ["1", "3", "2"]
    assert max(float(r["height"]) for r in groups) == pytest.approx(charts.COLUMN_AREA, abs=0.1)
    assert max(float(r["height"]) for r in people) == pytest.approx(charts.COLUMN_AREA, abs=0.1)
    assert float(groups[0]["height"]) == pytest.approx(charts.COLUMN_AREA / 3, abs=0.1)
    assert float(people[0]["height"]) == pytest.approx(charts.COLUMN_AREA / 6, abs=0.1)


def test_columns_a_long_run_of_empty_weeks_is_named_once():
    values = (2, 0, 0, 0, 0, 1, 0, 0, 3)
    assert charts.zero_runs(values) == [(1, 4)]  # two empty weeks are just gaps
    svg = str(charts.columns([str(i) for i in range(9)], [charts.Band("批数", "a", values)], "t",
                             none_label="连续 %(n)s 周无预约"))
    assert svg.count("连续 4 周无预约") == 1 and "连续 2 周" not in svg
    assert charts.zero_runs((0, 0, 0)) == [(0, 2)] and charts.zero_runs((1, 0, 0, 0)) == [(1, 3)]


def test_columns_name_this_week_and_thin_out_labels_at_phone_width():
    labels = [f"{m}/{d}" for m, d in ((9, 29), (10, 6), (10, 13), (10, 20), (10, 27), (11, 3), (11, 10),
                                      (11, 17), (11, 24), (12, 1), (12, 8), (12, 15), (12, 22), (12, 29))]
    svg = str(charts.columns(labels, [charts.Band("批数", "a", tuple(range(14)))], "t", current=8,
                             current_label="本周"))
    ticks = re.findall(r'<text class="tick[^"]*"[^>]*>([^<]*)</text>', svg)
    assert "本周" in ticks and "11/24" not in ticks
    assert len(ticks) <= 8  # 14 weeks in 360 units: every other week is named
    assert "11/17" not in ticks and "12/1" not in ticks  # the neighbours of 本周 give way
    assert len(rects(svg, "now")) == 1


def test_empty_charts_draw_nothing():
    assert charts.hbar([], [charts.Series("x", "a")], "t") == ""
    assert charts.columns([], [charts.Band("x", "a", ())], "t") == ""
    # all zero: nothing to scale by, no division by zero
    assert svg_max(charts.columns(["a", "b"], [charts.Band("x", "a", (0, 0))], "t")) == [1]


def test_week_lines_fold_runs_of_empty_weeks_into_one_line():
    start = date(2026, 9, 28)
    counts = [(0, 0), (2, 15), (0, 0), (1, 12), (0, 0), (0, 0), (0, 0), (0, 0), (2, 8), (0, 0), (0, 0)]
    weeks = [WeekRow(start + timedelta(weeks=i), b, p) for i, (b, p) in enumerate(counts)]
    lines = week_lines(weeks)
    assert [(line.first.isoformat(), line.weeks, line.bookings) for line in lines] == [
        ("2026-09-28", 1, 0), ("2026-10-05", 1, 2), ("2026-10-12", 1, 0), ("2026-10-19", 1, 1),
        ("2026-10-26", 4, 0), ("2026-11-23", 1, 2), ("2026-11-30", 1, 0), ("2026-12-07", 1, 0)]
    assert lines[4].last == date(2026, 11, 16)
