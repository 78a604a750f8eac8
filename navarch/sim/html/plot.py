"""A chart's plot area: simulated time and counts mapped onto SVG, with its axes and ticks."""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape

from navarch.sim.html.text import clock_long, clock_short, number, secs

WIDTH = 640
WIDE = 1280
LEFT, RIGHT, TOP, BOTTOM = 58, 28, 14, 42
# Tick steps for a time axis, in seconds; each is a span a person reads without arithmetic.
_TIME_STEPS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900)
_TIME_STEPS += (1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class Plot:
    """Maps simulated time and a count onto a plot area, and draws its axes."""

    def __init__(
        self,
        width: int,
        height: int,
        span: tuple[float, float],
        peak: float,
        y_title: str,
        x_title: str = "simulated time",
        x_unit: float = 0.0,
    ):
        self.width, self.total_height = width, height
        self.height = height - TOP - BOTTOM
        self.plot_width = width - LEFT - RIGHT
        self.t0, self.t1 = span
        self.ymax, self.yticks = value_ticks(peak)
        self.y_title, self.x_title = y_title, x_title
        # Ticks land on multiples of x_unit, such as a histogram's bin edges, when it is set.
        self.x_unit = x_unit

    def x(self, t: float) -> float:
        return LEFT + (t - self.t0) / (self.t1 - self.t0) * self.plot_width

    def y(self, v: float) -> float:
        return TOP + self.height - v / self.ymax * self.height

    def line(self, points: list[tuple[float, float]], colour: str, dash: str = "") -> str:
        coords = point_list([(self.x(t), self.y(v)) for t, v in points])
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        return (
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashes} '
            f'stroke-linejoin="round" points="{coords}"/>'
        )

    def marker(
        self, t: float, v: float, colour: str, before: int | None, after: int | None, tip: str
    ) -> str:
        x, y = self.x(t), self.y(v)
        style = f'fill="{colour}" stroke="#fff" stroke-width="1"><title>{escape(tip)}</title>'
        if before is None or after is None or after == before:
            return f'<circle cx="{coord(x)}" cy="{coord(y)}" r="4" {style}</circle>'
        # The triangle points the way the pool moved.
        dy = -6 if after > before else 6
        corners = [(x, y + dy), (x - 5, y - dy * 0.6), (x + 5, y - dy * 0.6)]
        return f'<polygon points="{point_list(corners)}" {style}</polygon>'

    def svg(self, body: str, *, seconds_axis: bool = False) -> str:
        bottom = TOP + self.height
        right = LEFT + self.plot_width
        axis = []
        for tick in self.yticks:
            y = self.y(tick)
            axis.append(
                f'<line class="grid" x1="{LEFT}" y1="{coord(y)}" x2="{right}" y2="{coord(y)}"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{coord(y + 4)}" text-anchor="end">'
                f"{number(tick)}</text>"
            )
        raw = (self.t1 - self.t0) / (10 if self.width > WIDTH else 6)
        step = self.x_unit * math.ceil(raw / self.x_unit) if self.x_unit else pick_step(raw)
        label = secs if seconds_axis else (clock_long if self.t1 > 3600 else clock_short)
        tick = math.ceil(self.t0 / step) * step
        while tick <= self.t1 + step * 1e-6:
            x = self.x(tick)
            axis.append(
                f'<line class="axisline" x1="{coord(x)}" y1="{bottom}" x2="{coord(x)}" '
                f'y2="{bottom + 4}"/>'
                f'<text class="tick" x="{coord(x)}" y="{bottom + 16}" text-anchor="middle">'
                f"{label(tick)}</text>"
            )
            tick += step
        axis.append(
            f'<line class="axisline" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
            f'<text class="axis" x="{coord(LEFT + self.plot_width / 2)}" '
            f'y="{self.total_height - 6}" text-anchor="middle">{escape(self.x_title)}</text>'
            f'<text class="axis" transform="translate(14 {coord(TOP + self.height / 2)}) '
            f'rotate(-90)" text-anchor="middle">{escape(self.y_title)}</text>'
        )
        return svg_element(self.width, self.total_height, "".join(axis) + body)


def svg_element(width: int, height: int, body: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'preserveAspectRatio="xMidYMid meet">{body}</svg>'
    )


def value_ticks(peak: float) -> tuple[float, list[float]]:
    """A rounded top for a count axis and the ticks up to it; counts never tick below 1."""
    if peak <= 0:
        return 1.0, [0.0, 1.0]
    raw = peak / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)
    top = math.ceil(peak / step) * step
    return top, [i * step for i in range(round(top / step) + 1)]


def pick_step(raw: float) -> float:
    for step in _TIME_STEPS:
        if step >= raw:
            return step
    return _TIME_STEPS[-1] * math.ceil(raw / _TIME_STEPS[-1])


def point_list(points: Iterable[tuple[float, float]]) -> str:
    return " ".join(f"{coord(x)},{coord(y)}" for x, y in points)


def coord(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
