"""A KPI's series as the geometry of an inline SVG chart: pure, so a test reads it without a browser.

Two kinds: ``line`` for the months (the values as a line, the trajectory as a dashed line) and
``bars`` for the fiscal years (a bar per year, the trajectory as a dashed line through the bars'
centres). The value axis starts at 0 so that heights compare honestly. A period without data leaves
a gap, never a 0. The chart is an image (``role="img"`` with a title and description); the same
numbers are in the table printed under it, which is what a screen reader or a text browser reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cityos.domain.kpi.progress import KpiValue

WIDTH: Final = 640
HEIGHT: Final = 240
LEFT: Final = 76  # room for the value axis's labels
RIGHT: Final = 12
TOP: Final = 12
BOTTOM: Final = 28
TICKS: Final = 4  # value axis ticks above 0, about
MAX_X_LABELS: Final = 8

ChartKind = Literal["line", "bars"]


@dataclass(frozen=True, slots=True)
class Tick:
    at: float  # pixels along the axis
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    period: str


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    period: str


@dataclass(frozen=True, slots=True)
class Chart:
    kind: ChartKind
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    # "x,y x,y …" of each unbroken run of values, and of the trajectory.
    value_lines: list[str] = field(default_factory=list)
    value_dots: list[Dot] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    trajectory_lines: list[str] = field(default_factory=list)
    # Where the trajectory is at each period: drawn as a short dash, so a lone year still shows.
    trajectory_marks: list[Dot] = field(default_factory=list)
    mark_half_width: float = 0.0
    empty: bool = False


def nice_step(span: float, ticks: int = TICKS) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) dividing ``span`` into about ``ticks``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _runs(points: Sequence[tuple[float, float] | None]) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    for point in points:
        if point is None:
            if len(current) > 1:
                runs.append(" ".join(current))
            current = []
            continue
        current.append(f"{point[0]:.1f},{point[1]:.1f}")
    if len(current) > 1:
        runs.append(" ".join(current))
    return runs


def chart(
    series: Sequence[KpiValue],
    kind: ChartKind,
    *,
    tick_label: Callable[[float], str],
    period_label: Callable[[str], str],
    label_every: Callable[[int, str], bool] | None = None,
) -> Chart:
    """The chart of ``series``. ``tick_label`` writes a value-axis label, ``period_label`` a period's;
    ``label_every(index, period)`` chooses which periods get one (by default spread evenly)."""
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    numbers = [n for v in series for n in (v.value, v.trajectory) if n is not None and math.isfinite(n)]
    if not series or not numbers:
        return Chart(kind, WIDTH, HEIGHT, left, right, top, bottom, [], [], empty=True)
    highest = max(max(numbers), 0.0)
    step = nice_step(highest)
    ceiling = step * max(1, math.ceil(highest / step))

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * max(value, 0.0) / ceiling

    count = len(series)
    if kind == "bars":
        band = (right - left) / count
        centres = [left + band * (i + 0.5) for i in range(count)]
    else:
        band = 0.0
        spacing = (right - left) / (count - 1) if count > 1 else 0.0
        centres = [left + spacing * i if count > 1 else (left + right) / 2 for i in range(count)]

    y_ticks = [Tick(at=y_of(step * i), label=tick_label(step * i)) for i in range(round(ceiling / step) + 1)]
    if label_every is None:
        every = max(1, math.ceil(count / MAX_X_LABELS))

        def label_every(index: int, _: str) -> bool:
            return index % every == 0

    x_ticks = [
        Tick(at=centres[i], label=period_label(v.period))
        for i, v in enumerate(series)
        if label_every(i, v.period)
    ]
    result = Chart(
        kind, WIDTH, HEIGHT, left, right, top, bottom, y_ticks, x_ticks, mark_half_width=band * 0.4
    )
    values = [
        (centres[i], y_of(v.value)) if v.value is not None and math.isfinite(v.value) else None
        for i, v in enumerate(series)
    ]
    if kind == "bars":
        width = band * 0.6
        for i, v in enumerate(series):
            point = values[i]
            if point is not None:
                result.bars.append(Bar(point[0] - width / 2, point[1], width, bottom - point[1], v.period))
    else:
        result.value_lines.extend(_runs(values))
        result.value_dots.extend(Dot(p[0], p[1], v.period) for p, v in zip(values, series, strict=True) if p)
    line = [
        (centres[i], y_of(v.trajectory)) if v.trajectory is not None and math.isfinite(v.trajectory) else None
        for i, v in enumerate(series)
    ]
    result.trajectory_lines.extend(_runs(line))
    if kind == "bars":
        result.trajectory_marks.extend(
            Dot(p[0], p[1], v.period) for p, v in zip(line, series, strict=True) if p
        )
    return result
