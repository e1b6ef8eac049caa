"""The dashboard's charts, drawn on the server as SVG (no chart library, nothing fetched).

Each function takes plain numbers (what `loyalty.domain.backoffice.dashboard` gathered) and
returns an `<svg>` element as Markup, sized by its viewBox so it scales with the page (laptop,
tablet). Every chart has a <title> and <desc> for screen readers and a <title> on each mark
(a tooltip with the exact value); a missing value (no customers, no answers) leaves a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from flask_babel import gettext as _
from markupsafe import Markup

from loyalty.web.staff.words import word

PALETTE = ("#1b6ca8", "#d1495b", "#2a9d8f", "#e9a23b", "#6a4c93", "#8d99ae", "#577590")
WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 44


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str = PALETTE[0]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _svg(
    title: str, desc: str, body: list[str], width: int = WIDTH, height: int = HEIGHT
) -> Markup:
    uid = abs(hash((title, desc))) % 10**8
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="t{uid} d{uid}" xmlns="http://www.w3.org/2000/svg" '
        f'preserveAspectRatio="xMidYMid meet" font-family="system-ui, sans-serif" font-size="11">'
        f'<title id="t{uid}">{_e(title)}</title><desc id="d{uid}">{_e(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _fmt(value: float | None, percent: bool, places: int = 1) -> str:
    if value is None:
        return "\u2013"  # an en dash
    return f"{value * 100:.{places}f}%" if percent else f"{value:.{places}f}"


def _axes(
    labels: Sequence[str], low: float, high: float, percent: bool, ticks: int = 4
) -> tuple[list[str], float, float]:
    """Grid lines with the y values, the x labels (thinned to fit); the x step and the plot
    height."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels), 1)
    out = []
    for i in range(ticks + 1):
        value = low + (high - low) * i / ticks
        y = TOP + plot_h - plot_h * i / ticks
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{_e(_fmt(value, percent, 0))}</text>"
        )
    every = max(1, round(len(labels) / 12))
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + step * (i + 0.5)
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="#555">'
            f"{_e(label)}</text>"
        )
    return out, step, plot_h


def _legend(series: Sequence[Series]) -> list[str]:
    out = []
    x = LEFT
    for s in series:
        out.append(
            f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" fill="{s.color}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 7}" fill="#333">{_e(s.name)}</text>'
        )
        x += 24 + 7 * len(s.name)
    return out


def _y(value: float, low: float, high: float, plot_h: float) -> float:
    span = (high - low) or 1.0
    return TOP + plot_h - plot_h * (min(max(value, low), high) - low) / span


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    low: float = 0.0,
    high: float = 1.0,
    percent: bool = True,
) -> Markup:
    """Lines over periods (a gap where a value is None), a dot with its value on each point."""
    body, step, plot_h = _axes(labels, low, high, percent)
    for s in series:
        path, pen_down = [], False
        for i, value in enumerate(s.values):
            if value is None:
                pen_down = False
                continue
            x, y = LEFT + step * (i + 0.5), _y(value, low, high, plot_h)
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{s.color}">'
                f"<title>{_e(s.name)} {_e(labels[i])}: {_e(_fmt(value, percent))}</title></circle>"
            )
        if path:
            body.insert(
                0, f'<path d="{" ".join(path)}" fill="none" stroke="{s.color}" stroke-width="2"/>'
            )
    body.extend(_legend(series))
    return _svg(title, _describe(labels, series, percent), body)


def _describe(labels: Sequence[str], series: Sequence[Series], percent: bool) -> str:
    """The chart in words (its SVG description): each series' value per label."""
    return "; ".join(
        f"{s.name}: "
        + ", ".join(f"{lab} {_fmt(v, percent)}" for lab, v in zip(labels, s.values, strict=False))
        for s in series
    )


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, percent: bool = True
) -> Markup:
    """Grouped vertical bars over periods (rates: 0 to 100%)."""
    high = 1.0 if percent else max([v or 0 for s in series for v in s.values] + [1])
    body, step, plot_h = _axes(labels, 0.0, high, percent)
    width = step * 0.8 / max(len(series), 1)
    for j, s in enumerate(series):
        for i, value in enumerate(s.values):
            if value is None:
                continue
            x = LEFT + step * i + step * 0.1 + width * j
            y = _y(value, 0.0, high, plot_h)
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width - 1:.1f}" '
                f'height="{TOP + plot_h - y:.1f}" fill="{s.color}">'
                f"<title>{_e(s.name)} {_e(labels[i])}: {_e(_fmt(value, percent))}</title></rect>"
            )
    body.extend(_legend(series))
    return _svg(title, _describe(labels, series, percent), body)


def horizontal_bars(title: str, counts: dict[str, int]) -> Markup:
    """One bar per category, its count at its end (members per segment)."""
    row, left = 26, 110
    height = TOP + row * max(len(counts), 1) + 8
    top = max(counts.values(), default=0) or 1
    plot_w = WIDTH - left - 60
    body = []
    counts = {word(name): count for name, count in counts.items()}
    for i, (name, count) in enumerate(counts.items()):
        y = TOP + row * i
        w = plot_w * count / top
        body.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="#333">'
            f"{_e(name.replace('_', ' '))}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_e(name)}: {count}</title></rect>'
            f'<text x="{left + w + 6:.1f}" y="{y + 15}" fill="#333">{count}</text>'
        )
    desc = ", ".join(f"{name}: {count}" for name, count in counts.items())
    return _svg(title, desc, body, height=height)


def _heat(value: float | None) -> str:
    """White (0%) to the palette's blue (100%); grey for no value."""
    if value is None:
        return "#f3f3f3"
    v = min(max(value, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * v) for c in (0x1B, 0x6C, 0xA8))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(title: str, cohorts: Sequence[dict[str, Any]], width: int = 1000) -> Markup:
    """The cohort matrix: a row per cohort (month of first purchase, its size), a column per
    month after (k = 0, 1, …), each cell coloured by the share that bought then."""
    columns = max((len(c["retention"]) for c in cohorts), default=1)
    left, head, cell_h = 120, 28, 22
    cell_w = (width - left - RIGHT) / max(columns, 1)
    height = head + cell_h * max(len(cohorts), 1) + 8
    body = [
        f'<text x="{left + cell_w * (k + 0.5):.1f}" y="{head - 10}" text-anchor="middle" '
        f'fill="#555">+{k}</text>'
        for k in range(columns)
    ]
    for i, c in enumerate(cohorts):
        y = head + cell_h * i
        body.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="#333">'
            f"{_e(c['cohort'])} ({_e(c['size'])})</text>"
        )
        for k, value in enumerate(c["retention"]):
            x = left + cell_w * k
            shown = "" if value is None else f"{round(value * 100)}"
            ink = "#fff" if value is not None and value > 0.55 else "#222"
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                f'fill="{_heat(value)}"><title>{_e(c["cohort"])} +{k}: '
                f"{_e(_fmt(value, True))}</title></rect>"
            )
            if cell_w >= 22:
                body.append(
                    f'<text x="{x + cell_w / 2:.1f}" y="{y + 15}" text-anchor="middle" '
                    f'fill="{ink}" font-size="10">{shown}</text>'
                )
    desc = _(
        "%(n)d monthly cohorts; share of each that bought k months after its first.",
        n=len(cohorts),
    )
    return _svg(title, desc, body, width=width, height=height)


def _uplift_tip(r: dict[str, Any]) -> str:
    h: dict[str, Any] = r["holdout"]
    return _(
        "%(kind)s: uplift %(uplift)s (95%% CI %(low)s to %(high)s); treated %(treated_rate)s"
        " of %(treated)s, holdout %(holdout_rate)s of %(holdout)s",
        kind=word(r["kind"]),
        uplift=_fmt(h["uplift"], True),
        low=_fmt(h["ci_low"], True),
        high=_fmt(h["ci_high"], True),
        treated_rate=_fmt(h["treated_rate"], True),
        treated=h["treated"],
        holdout_rate=_fmt(h["holdout_rate"], True),
        holdout=h["holdout"],
    )


def uplift(title: str, kinds: Sequence[dict[str, Any]], empty: str, width: int = 1000) -> Markup:
    """Per voucher kind with a holdout: the uplift (treated rate − holdout rate) as a dot with
    its 95% confidence interval as a whisker, around a line at zero (no effect); `empty` is
    said when no kind had a holdout."""
    rows = [k for k in kinds if k.get("holdout") and k["holdout"]["uplift"] is not None]
    if not rows:
        text = f'<text x="{width / 2}" y="36" text-anchor="middle" fill="#555">{_e(empty)}</text>'
        return _svg(title, empty, [text], width=width, height=60)
    row, left = 40, 120
    height = TOP + row * len(rows) + 30
    lows = [r["holdout"]["ci_low"] for r in rows]
    highs = [r["holdout"]["ci_high"] for r in rows]
    bound = max(0.05, *(abs(v) for v in lows + highs if v is not None))
    plot_w = width - left - RIGHT - 10

    def x_of(v: float) -> float:
        return left + plot_w * (v + bound) / (2 * bound)

    zero = x_of(0.0)
    body = [
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{TOP - 6}" y2="{height - 24}" '
        f'stroke="#999" stroke-dasharray="4 3"/>',
        f'<text x="{x_of(-bound):.1f}" y="{height - 8}" fill="#555">'
        f"{_e(_fmt(-bound, True))}</text>",
        f'<text x="{zero:.1f}" y="{height - 8}" text-anchor="middle" fill="#555">0</text>',
        f'<text x="{x_of(bound):.1f}" y="{height - 8}" text-anchor="end" fill="#555">'
        f"+{_e(_fmt(bound, True))}</text>",
    ]
    for i, r in enumerate(rows):
        h: dict[str, Any] = r["holdout"]
        y = TOP + row * i + row / 2
        lo, hi = h["ci_low"], h["ci_high"]
        color = PALETTE[2] if lo is not None and lo > 0 else PALETTE[0]
        tip = _uplift_tip(r)
        body.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#333">'
            f"{_e(word(r['kind']))}</text>"
        )
        if lo is not None and hi is not None:
            body.append(
                f'<line x1="{x_of(lo):.1f}" x2="{x_of(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="3"/>'
            )
        body.append(
            f'<circle cx="{x_of(h["uplift"]):.1f}" cy="{y:.1f}" r="6" fill="{color}">'
            f"<title>{_e(tip)}</title></circle>"
        )
    desc = "; ".join(
        _(
            "%(kind)s uplift %(uplift)s",
            kind=word(r["kind"]),
            uplift=_fmt(r["holdout"]["uplift"], True),
        )
        for r in rows
    )
    return _svg(title, desc, body, width=width, height=height)
