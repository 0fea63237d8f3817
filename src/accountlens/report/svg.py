"""Horizontal bar charts as inline SVG, drawn on the server: a report holding them is one
self-contained file that prints (and becomes a PDF) without scripts, fonts or network.

One chart kind is all the reports need: a row per bar with its label on the left, the bar, and
its value written on the right; an optional lighter track behind a bar shows the whole it is a
part of (active users of members, points of the points a factor can give)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Layout, in SVG user units (the chart scales to its container's width through its viewBox).
FONT_SIZE = 11
CHAR_WIDTH = 6.8  # an 11-unit sans-serif character's advance, generously: labels are cut to fit
BAR_HEIGHT = 16
GAP = 7
TOP = 4
BAR_COLOR = "#2f63c8"
TRACK_COLOR = "#dfe6f3"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # missing or negative values draw no bar (their text says so)
    total: float | None = None  # the whole the value is a part of: a light track behind the bar
    text: str | None = None  # the value as written next to the bar (default: the value, rounded)


def bar_chart(bars: Sequence[Bar], title: str, width: int = 340, label_width: int = 118,
              value_width: int = 74, max_value: float | None = None) -> str:
    """An `<svg>` with one horizontal bar per item, all on one scale: from 0 to the largest of
    `max_value`, the values and the totals. Every text is escaped; labels too long for
    `label_width` are cut with an ellipsis (the full label is the bar's tooltip). An empty
    `bars` gives an empty string: the caller says in words that there is nothing to draw.
    Inline in HTML, so without an `xmlns` (the page names no URL at all)."""
    if not bars:
        return ""
    scale = max([_number(max_value), *(_number(b.value) for b in bars),
                 *(_number(b.total) for b in bars)])
    span = width - label_width - value_width
    height = TOP * 2 + len(bars) * (BAR_HEIGHT + GAP) - GAP
    parts = [f'<svg class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i, bar in enumerate(bars):
        y = TOP + i * (BAR_HEIGHT + GAP)
        middle = y + BAR_HEIGHT / 2 + FONT_SIZE * 0.35
        value = _number(bar.value)
        parts.append(f'<g class="bar" data-label="{escape(bar.label)}" '
                     f'data-value="{_attr(bar.value)}" data-total="{_attr(bar.total)}">')
        parts.append(f"<title>{escape(bar.label)}: {escape(_text(bar))}</title>")
        parts.append(f'<text x="{label_width - 6}" y="{middle:.1f}" text-anchor="end" '
                     f'font-size="{FONT_SIZE}">{escape(fit(bar.label, label_width - 8))}</text>')
        if bar.total is not None and scale > 0:
            parts.append(f'<rect x="{label_width}" y="{y}" width="{_length(bar.total, scale, span)}"'
                         f' height="{BAR_HEIGHT}" fill="{TRACK_COLOR}"/>')
        if value > 0 and scale > 0:
            parts.append(f'<rect x="{label_width}" y="{y}" width="{_length(value, scale, span)}" '
                         f'height="{BAR_HEIGHT}" fill="{BAR_COLOR}"/>')
        parts.append(f'<text x="{label_width + span + 6}" y="{middle:.1f}" '
                     f'font-size="{FONT_SIZE}">{escape(_text(bar))}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def fit(label: str, room: float) -> str:
    """`label`, cut with an ellipsis so that it takes at most `room` units."""
    most = max(int(room // CHAR_WIDTH), 2)
    return label if len(label) <= most else label[:most - 1].rstrip() + "…"


def _number(value: float | None) -> float:
    """A value as a length on the scale: missing, NaN and negative values are 0."""
    if value is None or not math.isfinite(value):
        return 0.0
    return max(float(value), 0.0)


def _length(value: float | None, scale: float, span: float) -> str:
    return f"{min(_number(value) / scale, 1.0) * span:.1f}"


def _attr(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _text(bar: Bar) -> str:
    if bar.text is not None:
        return bar.text
    if bar.value is None or not math.isfinite(bar.value):
        return "–"
    return f"{bar.value:,.0f}" if float(bar.value).is_integer() else f"{bar.value:,.1f}"
