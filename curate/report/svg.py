"""Inline SVG charts drawn from numbers: no plotting library, no script, nothing fetched.

Every label and tooltip goes through `curate.report.html` escaping, including `<title>` and `<text>`,
because labels are often crawled strings (domain names, benchmark names). Colours come from CSS classes
of the page (`c0`..`c7`, `cut`, `axis`), so the charts follow the page's light or dark scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from curate.report.html import Markup, el, fmt_int, shorten

WIDTH = 760
LABEL_WIDTH = 210
VALUE_WIDTH = 110
ROW_HEIGHT = 22


@dataclass(frozen=True)
class Segment:
    name: str
    value: float
    css: str


def _svg(width: float, height: float, title: str, *children: object) -> Markup:
    return el(
        "svg",
        el("title", title),
        *children,
        xmlns="http://www.w3.org/2000/svg",
        width=width,
        height=height,
        viewBox=f"0 0 {width:.0f} {height:.0f}",
        role="img",
        aria_label=title,
        class_="chart",
    )


def share_bars(title: str, rows: Sequence[tuple[str, float, Sequence[Segment]]]) -> Markup:
    """One full-width bar per row, split into segments by their share of the row's total (kept vs each
    drop reason), so a stage with 100 rows reads as clearly as one with a billion."""
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = ROW_HEIGHT * len(rows) + 8
    shapes = []
    for index, (label, total, segments) in enumerate(rows):
        y = 4 + index * ROW_HEIGHT
        shapes.append(el("text", shorten(label, 30), x=LABEL_WIDTH - 8, y=y + 15, text_anchor="end", class_="label"))
        x = float(LABEL_WIDTH)
        for segment in segments:
            if total <= 0 or segment.value <= 0:
                continue
            width = plot * segment.value / total
            tip = f"{label}: {segment.name} {fmt_int(segment.value)} ({100 * segment.value / total:.1f}%)"
            shapes.append(
                el(
                    "rect",
                    el("title", tip),
                    x=x,
                    y=y + 3,
                    width=max(width, 0.5),
                    height=ROW_HEIGHT - 6,
                    class_=segment.css,
                )
            )
            x += width
        if total <= 0:
            shapes.append(el("text", "no rows", x=LABEL_WIDTH + 4, y=y + 15, class_="muted"))
        shapes.append(el("text", fmt_int(total), x=WIDTH - 4, y=y + 15, text_anchor="end", class_="label"))
    return _svg(WIDTH, height, title, *shapes)


def hbars(
    title: str,
    rows: Sequence[tuple[str, float, str]],
    *,
    max_value: float | None = None,
    value_text: Callable[[float], str] = fmt_int,
    threshold: float | None = None,
    threshold_label: str = "",
) -> Markup:
    """Horizontal bars (label, value, tooltip), optionally with a vertical threshold line."""
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    top = 18 if threshold is not None else 4
    height = top + ROW_HEIGHT * len(rows) + 6
    peak = max_value if max_value is not None else max([v for _, v, _ in rows] or [0])
    scale = plot / peak if peak > 0 else 0.0
    shapes = []
    for index, (label, value, tip) in enumerate(rows):
        y = top + index * ROW_HEIGHT
        shapes.append(el("text", shorten(label, 30), x=LABEL_WIDTH - 8, y=y + 15, text_anchor="end", class_="label"))
        shapes.append(
            el(
                "rect",
                el("title", tip),
                x=LABEL_WIDTH,
                y=y + 3,
                width=max(value * scale, 0.5),
                height=ROW_HEIGHT - 6,
                class_=f"c{index % 2}",
            )
        )
        shapes.append(el("text", value_text(value), x=WIDTH - 4, y=y + 15, text_anchor="end", class_="label"))
    if threshold is not None and scale:
        x = LABEL_WIDTH + threshold * scale
        shapes.append(el("line", x1=x, x2=x, y1=top - 4, y2=height - 2, class_="cut"))
        shapes.append(el("text", threshold_label, x=x + 4, y=12, class_="cut-label"))
    return _svg(WIDTH, height, title, *shapes)


def _log_height(count: float, peak: float) -> float:
    return math.log10(count + 1) / math.log10(peak + 1) if peak > 0 else 0.0


def histogram(
    title: str,
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    cutoff: float | None = None,
    cutoff_label: str = "",
    log: bool = True,
) -> Markup:
    """Columns over a continuous x axis (bin edges), a log-count y axis, and a vertical cut-off line."""
    left, right, top, bottom = 56, 16, 22, 34
    plot_w, plot_h = WIDTH - left - right, 220
    height = top + plot_h + bottom
    low, high = edges[0], edges[-1]
    span = (high - low) or 1.0
    peak = max(counts or [0])

    def x_of(value: float) -> float:
        return left + plot_w * (value - low) / span

    shapes = [el("line", x1=left, x2=left + plot_w, y1=top + plot_h, y2=top + plot_h, class_="axis")]
    for start, end, count in zip(edges[:-1], edges[1:], counts, strict=True):
        share = _log_height(count, peak) if log else (count / peak if peak else 0)
        bar = plot_h * share
        shapes.append(
            el(
                "rect",
                el("title", f"{start:.3f}–{end:.3f}: {fmt_int(count)}"),
                x=x_of(start) + 0.5,
                y=top + plot_h - bar,
                width=max(x_of(end) - x_of(start) - 1, 0.5),
                height=bar,
                class_="c0",
            )
        )
    for tick in _ticks(low, high):
        shapes.append(el("text", f"{tick:g}", x=x_of(tick), y=top + plot_h + 16, text_anchor="middle", class_="label"))
    for level in _count_ticks(peak, log):
        y = top + plot_h - plot_h * (_log_height(level, peak) if log else level / peak)
        shapes.append(el("line", x1=left - 4, x2=left, y1=y, y2=y, class_="axis"))
        shapes.append(el("text", fmt_int(level), x=left - 6, y=y + 4, text_anchor="end", class_="label"))
    scale_note = "pages (log scale)" if log else "pages"
    shapes.append(el("text", scale_note, x=4, y=12, class_="muted"))
    if cutoff is not None and low <= cutoff <= high:
        x = x_of(cutoff)
        shapes.append(el("line", x1=x, x2=x, y1=top - 6, y2=top + plot_h, class_="cut"))
        anchor = "end" if x > left + plot_w * 0.75 else "start"
        shapes.append(
            el(
                "text",
                cutoff_label,
                x=x + (-4 if anchor == "end" else 4),
                y=top - 8,
                text_anchor=anchor,
                class_="cut-label",
            )
        )
    return _svg(WIDTH, height, title, *shapes)


def columns(
    title: str,
    bars: Sequence[tuple[str, float, str]],
    *,
    log: bool = False,
    value_text: Callable[[float], str] = fmt_int,
) -> Markup:
    """Vertical columns with a category label under each (label, value, tooltip)."""
    left, top, bottom = 16, 20, 34
    plot_h = 160
    slot = min(90.0, (WIDTH - 2 * left) / max(len(bars), 1))
    height = top + plot_h + bottom
    peak = max([v for _, v, _ in bars] or [0])
    shapes = [el("line", x1=left, x2=left + slot * len(bars), y1=top + plot_h, y2=top + plot_h, class_="axis")]
    for index, (label, value, tip) in enumerate(bars):
        share = _log_height(value, peak) if log else (value / peak if peak else 0)
        bar = plot_h * share
        x = left + index * slot
        shapes.append(
            el(
                "rect",
                el("title", tip),
                x=x + slot * 0.15,
                y=top + plot_h - bar,
                width=slot * 0.7,
                height=max(bar, 0.5),
                class_=f"c{index % 2}",
            )
        )
        shapes.append(
            el(
                "text",
                value_text(value),
                x=x + slot / 2,
                y=top + plot_h - bar - 4,
                text_anchor="middle",
                class_="label",
            )
        )
        shapes.append(
            el("text", shorten(label, 14), x=x + slot / 2, y=top + plot_h + 16, text_anchor="middle", class_="label")
        )
    if log:
        shapes.append(el("text", "log scale", x=WIDTH - 4, y=12, text_anchor="end", class_="muted"))
    return _svg(WIDTH, height, title, *shapes)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = (high - low) / count if high > low else 1.0
    return [round(low + i * step, 6) for i in range(count + 1)]


def _count_ticks(peak: float, log: bool) -> list[int]:
    if peak <= 0:
        return []
    if not log:
        return [int(peak * f) for f in (0.5, 1.0)]
    return [10**k for k in range(int(math.log10(peak)) + 1)]
