"""The KPI charts' geometry and the KPI page's number formats: pure functions, no server."""

from __future__ import annotations

import math
import random

import pytest

from cityos.domain.kpi.definitions import load_kpis
from cityos.domain.kpi.progress import KpiValue
from cityos.kernel.settings import Settings
from services.publish.site.kpi_chart import chart, nice_step
from services.publish.site.kpi_pages import with_unit


def _points(run: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in run.split())]


@pytest.mark.parametrize("span", [0.7, 1, 3, 9.99, 26.4, 90, 663.6, 30_000, 1_179_331, 1e9])
def test_a_nice_step_is_round_and_gives_a_handful_of_ticks(span: float) -> None:
    step = nice_step(span)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    assert 2 <= math.ceil(span / step) <= 5


def test_months_without_data_leave_gaps_and_every_point_stays_in_the_plot() -> None:
    rng = random.Random(7)
    values = [rng.uniform(10, 500) for _ in range(12)]
    series = [
        KpiValue(f"2024-{m:02d}", None if m in (3, 4, 9) else values[m - 1], 300.0 - 10 * m)
        for m in range(1, 13)
    ]
    drawn = chart(series, "line", tick_label=str, period_label=str)
    assert not drawn.empty
    # Runs of known months: 1-2, 5-8, 10-12 (a gap is never drawn as a line through 0).
    assert [len(_points(run)) for run in drawn.value_lines] == [2, 4, 3]
    assert [dot.period for dot in drawn.value_dots] == [v.period for v in series if v.value is not None]
    [trajectory] = drawn.trajectory_lines
    assert len(_points(trajectory)) == 12
    every = [p for run in drawn.value_lines + drawn.trajectory_lines for p in _points(run)]
    assert all(
        drawn.plot_left <= x <= drawn.plot_right and drawn.plot_top <= y <= drawn.plot_bottom
        for x, y in every
    )
    # The highest value reaches into the top tick's band; heights are proportional from 0.
    top = max(v.value for v in series if v.value is not None)
    [highest] = [d for d in drawn.value_dots if d.period == next(v.period for v in series if v.value == top)]
    ceiling = float(drawn.y_ticks[-1].label)
    height = drawn.plot_bottom - drawn.plot_top
    assert math.isclose(drawn.plot_bottom - highest.y, height * top / ceiling, abs_tol=0.051)
    assert float(drawn.y_ticks[0].label) == 0 and drawn.y_ticks[0].at == drawn.plot_bottom
    # Months are labelled in order, left to right.
    assert [t.at for t in drawn.x_ticks] == sorted(t.at for t in drawn.x_ticks)


def test_fiscal_years_are_bars_from_zero_with_the_trajectory_marked_on_each() -> None:
    series = [
        KpiValue("FY2021", 1200.0, 1200.0),
        KpiValue("FY2022", 1100.0, 1050.0),
        KpiValue("FY2023", None, 900.0),
        KpiValue("FY2024", 300.0, 750.0),
    ]
    drawn = chart(series, "bars", tick_label=str, period_label=str)
    assert [bar.period for bar in drawn.bars] == ["FY2021", "FY2022", "FY2024"]
    assert all(math.isclose(bar.y + bar.height, drawn.plot_bottom) for bar in drawn.bars)
    heights = {bar.period: bar.height for bar in drawn.bars}
    assert math.isclose(heights["FY2021"] / heights["FY2024"], 1200 / 300)
    assert [mark.period for mark in drawn.trajectory_marks] == ["FY2021", "FY2022", "FY2023", "FY2024"]
    assert drawn.value_lines == [] and drawn.mark_half_width > 0


def test_a_series_without_any_number_draws_nothing() -> None:
    drawn = chart([KpiValue("FY2021", None, None)], "bars", tick_label=str, period_label=str)
    assert drawn.empty and drawn.bars == [] and drawn.y_ticks == []
    assert chart([], "line", tick_label=str, period_label=str).empty


def test_values_are_written_with_their_unit_in_each_language() -> None:
    kpis = {kpi.id: kpi for kpi in load_kpis(Settings().kpi_dir)}
    paper, rate = kpis["copy-paper"], kpis["e-approval-rate"]
    assert with_unit(paper, 1179331.4, "ja") == "1,179,331枚"
    assert with_unit(paper, 1179331.4, "en") == "1,179,331 pages"
    assert with_unit(rate, 26.391, "ja") == "26.4%"
    assert with_unit(rate, 26.391, "en") == "26.4%"
    assert with_unit(rate, None, "en") == "—"
