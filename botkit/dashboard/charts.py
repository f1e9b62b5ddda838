"""Horizontal bar charts as inline SVG, drawn on the server: no script, no inline style.

    bar_chart("rating", [("1", 0), ("2", 1), ("5", 4)])
    grouped_bar_chart("Messages per day", ("MO", "MT"), [("2026-01-05", (3, 4))])

Every bar has its count written beside it (with its series' name when there are several),
so a chart reads without colour; the whole chart is one image to a screen reader, named
by its title and every figure. Labels may come from handsets: all text is escaped.
Colours are the stylesheet's (classes `bar s0`, `bar s1`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

WIDTH = 400  # the viewBox; the stylesheet scales the chart to the page
LABELS = 110  # the label column, right-aligned before the bars
ROW = 24  # one label's band; several series share it
CHAR = 8  # about the width of a character of the counts, room kept after the bars
MAX_LABEL = 15  # longer labels are cut (the accessible name keeps them whole)

SVG = Markup(
    '<svg class="chart" role="img" aria-label="{name}" viewBox="0 0 {width} {height}"'
    ' width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    "<title>{name}</title>{parts}</svg>"
)
LABEL = Markup('<text class="label" x="{x}" y="{y}" text-anchor="end">{text}</text>')
BAR = Markup(
    '<rect class="bar s{n}" x="{x}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}"/>'
)
COUNT = Markup('<text class="count" x="{x:.1f}" y="{y}">{text}</text>')


def bar_chart(title: str, bars: Sequence[tuple[str, int]]) -> Markup:
    """One bar a label, its length the count."""
    return grouped_bar_chart(title, ("",), [(label, (count,)) for label, count in bars])


def grouped_bar_chart(
    title: str, series: Sequence[str], groups: Sequence[tuple[str, Sequence[int]]]
) -> Markup:
    """A band of bars a label, one bar for each of `series` (its count in that order)."""
    longest = max((count for _, counts in groups for count in counts), default=0)
    widest = max((len(_figures(series, counts)) for _, counts in groups), default=0)
    scale = (WIDTH - LABELS - (widest + 1) * CHAR) / max(longest, 1)
    thickness = (ROW - 6) / len(series)
    parts = []
    for row, (label, counts) in enumerate(groups):
        top = row * ROW + 3
        baseline = top + ROW / 2 + 4
        parts.append(LABEL.format(x=LABELS - 6, y=baseline, text=_cut(label)))
        for n, count in enumerate(counts):
            y = top + n * thickness
            parts.append(BAR.format(n=n, x=LABELS, y=y, width=count * scale, height=thickness - 1))
        end = LABELS + max(counts, default=0) * scale + 4
        parts.append(COUNT.format(x=end, y=baseline, text=_figures(series, counts)))
    name = f"{title}: " + "; ".join(f"{label}: {_figures(series, c)}" for label, c in groups)
    height = len(groups) * ROW + 6
    return SVG.format(name=name, width=WIDTH, height=height, parts=Markup("").join(parts))


def _figures(series: Sequence[str], counts: Sequence[int]) -> str:
    """A band's counts as text: `4`, or `MO 3 · MT 4`."""
    return " · ".join(f"{name} {count}".strip() for name, count in zip(series, counts, strict=True))


def _cut(label: str) -> str:
    """A label short enough for its column."""
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
