"""Daily revenue, cost and margin as an SVG bar chart, drawn on the server (no JavaScript).

Grouped bars per day: revenue and cost side by side, margin as a line of dots over them. The
text and colours meet WCAG AA contrast on white; the chart has a <title> and <desc>, and the
page shows the same figures in a table beside it for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from rater.money import from_micro

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 40
REVENUE, COST, MARGIN = "#1f5f99", "#b35900", "#1d6b35"  # 4.5:1 or better on white


@dataclass(frozen=True)
class Day:
    day: str  # YYYY-MM-DD
    revenue: int  # micro-units
    cost: int
    margin: int


def _money(micro: int) -> str:
    return from_micro(micro, 2)


def svg(days: Sequence[Day], currency: str) -> str:
    title = f"Daily revenue, cost and margin ({currency})"
    if not days:
        return (
            f'<svg role="img" viewBox="0 0 {WIDTH} 60" width="100%" aria-label="{title}">'
            f'<title>{title}</title><text x="10" y="35" fill="#333">no calls in these days'
            "</text></svg>"
        )
    top = max(max(d.revenue, d.cost, d.margin) for d in days) or 1
    low = min(0, *(d.margin for d in days))
    span = top - low
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: int) -> float:
        return TOP + plot_h * (top - value) / span

    slot = plot_w / len(days)
    bar = max(min(slot * 0.35, 28), 1.5)
    parts = [
        f'<svg role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{len(days)} days from {days[0].day} to {days[-1].day}; '
        "the table below has the figures.</desc>",
        '<g font-family="sans-serif" font-size="11" fill="#222">',
    ]
    for i in range(5):  # grid and axis labels
        value = low + span * i // 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#ccc"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{_money(value)}</text>'
        )
    every = max(1, len(days) // 10)
    for i, d in enumerate(days):
        x = LEFT + slot * i + slot / 2
        for offset, value, colour, what in (
            (-bar, d.revenue, REVENUE, "revenue"),
            (0.0, d.cost, COST, "cost"),
        ):
            top_y, base_y = y(max(value, 0)), y(min(value, 0))
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top_y:.1f}" width="{bar:.1f}" '
                f'height="{max(base_y - top_y, 0.5):.1f}" fill="{colour}">'
                f"<title>{d.day} {what} {_money(value)} {escape(currency)}</title></rect>"
            )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(d.margin):.1f}" r="3.5" fill="{MARGIN}">'
            f"<title>{d.day} margin {_money(d.margin)} {escape(currency)}</title></circle>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                f"{d.day[5:]}</text>"
            )
    legend_y = HEIGHT - 8
    for i, (name, colour) in enumerate((("revenue", REVENUE), ("cost", COST), ("margin", MARGIN))):
        x = LEFT + i * 110
        parts.append(
            f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{legend_y}">{name}</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)
