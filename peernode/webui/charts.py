"""Bar charts drawn by the node: the geometry of a horizontal bar chart, which a template turns
into inline SVG. No script and no image file: the page needs nothing but itself, and a screen
reader gets the same numbers from the table printed beside each chart."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 640
LABEL_WIDTH = 220  # library names, cut to fit (the table beside the chart has them whole)
VALUE_ROOM = 60  # right of the longest bar, for its number
BAR_HEIGHT = 14
ROW_GAP = 10
TOP, BOTTOM = 8, 28  # room for the axis numbers below the bars
MAX_ROWS = 30  # more rows than this are in the table only
COLOURS = ("#0b5cad", "#d9822b", "#1a7f37", "#6b5b95")  # series, in order; readable on white


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    text: str  # the value, written after the bar


@dataclass(frozen=True)
class RowLabel:
    y: float
    text: str


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass
class BarChart:
    width: int
    height: int
    plot_left: float
    plot_top: float
    plot_bottom: float
    series: list[tuple[str, str]]  # (name, colour) for the legend
    rows: list[RowLabel] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    left_out: int = 0

    @property
    def empty(self) -> bool:
        return not self.rows


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (axis end)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def bar_chart(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    maximum: float | None = None,
) -> BarChart:
    """One group of bars per row (one bar per series); ``None`` draws no bar and writes "—"."""
    shown = list(rows[:MAX_ROWS])
    group = BAR_HEIGHT * max(1, len(series)) + ROW_GAP
    height = TOP + group * len(shown) + BOTTOM
    values = [v for _, vs in shown for v in vs if v is not None]
    top = maximum if maximum is not None else nice_ceiling(max(values, default=0.0))
    left, right = LABEL_WIDTH, WIDTH - VALUE_ROOM
    scale = (right - left) / top if top > 0 else 0.0
    chart = BarChart(
        WIDTH,
        height,
        left,
        TOP,
        height - BOTTOM,
        [(name, COLOURS[i % len(COLOURS)]) for i, name in enumerate(series)],
        left_out=max(0, len(rows) - MAX_ROWS),
    )
    for index, (label, row_values) in enumerate(shown):
        y = TOP + index * group
        chart.rows.append(RowLabel(y + (group - ROW_GAP) / 2, label))
        for number, value in enumerate(row_values):
            bar_y = y + number * BAR_HEIGHT
            length = 0.0 if value is None else max(0.0, min(value, top)) * scale
            chart.bars.append(
                Bar(
                    left,
                    bar_y,
                    length,
                    BAR_HEIGHT - 2,
                    COLOURS[number % len(COLOURS)],
                    "—" if value is None else fmt(value),
                )
            )
    chart.ticks = [Tick(left + (right - left) * f, fmt(top * f)) for f in (0.0, 0.5, 1.0)]
    return chart
