"""The report as one A4 page of SVG a client reads: hand-written, no plotting library.

Three panels: a Pareto of contacts by wrap-up code (failure-demand codes
hatched, a cumulative line), contacts per interval with the failure-demand
share as a line, and the client's escalation-SLA compliance as a table.
Colours are the Okabe-Ito palette and failure demand is hatched as well as
coloured, so the page reads in greyscale and without colour vision.  The
same report gives the same bytes: no clock, no random ids.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from deskline.report import CodeRow, DemandReport, EscalationSla, IntervalRow, Report
from deskline.report_export import duration, period_text

WIDTH = 1000  # user units; the page is 210 mm wide, so 1 unit = 0.21 mm
HEIGHT = 1414  # A4 portrait
MAX_BARS = 24  # more codes than this: the rest are named in a note
FAILURE = "#D55E00"  # vermillion, hatched
VALUE = "#0072B2"  # blue
UNKNOWN = "#BBBBBB"
INK = "#222222"
GRID = "#DDDDDD"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_LEFT, _RIGHT = 90, WIDTH - 90
# Characters XML 1.0 does not allow, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def esc(text: str) -> str:
    """Text for an SVG text node: markup escaped, characters XML forbids dropped."""
    return escape(_NOT_XML.sub("", text))


def attr(text: str) -> str:
    return quoteattr(_NOT_XML.sub("", text))


def _n(v: int) -> str:
    return f"{v:,}"


def _pc(v: float | None) -> str:
    return "\u2013" if v is None else f"{v:.1f} %"


def _f(v: float) -> str:
    """A coordinate: short and the same on every platform."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def text_width(text: str, size: float) -> float:
    """A rough width of a sans-serif line, for layout only."""
    return len(text) * size * 0.58


def nice_step(top: float, ticks: int = 5) -> int:
    """An axis step of 1, 2 or 5 times a power of ten, at least 1 (counts)."""
    raw = max(top, 1) / ticks
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return max(1, round(step))


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float = 14,
        *,
        anchor: str = "start",
        weight: str = "normal",
        fill: str = INK,
        rotate: float | None = None,
        halo: bool = False,
    ) -> None:
        rot = f' transform="rotate({_f(rotate)} {_f(x)} {_f(y)})"' if rotate is not None else ""
        bold = ' font-weight="bold"' if weight == "bold" else ""
        if halo:  # a white ground, so a line under the text does not cross it
            w = text_width(s, size) + 4
            left = {"start": x - 2, "middle": x - w / 2, "end": x - w + 2}[anchor]
            self.add(
                f'<rect x="{_f(left)}" y="{_f(y - size * 0.85)}" width="{_f(w)}" '
                f'height="{_f(size * 1.1)}" fill="#FFFFFF" fill-opacity="0.85"/>'
            )
        self.add(
            f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}"'
            f'{bold} fill="{fill}"{rot}>{esc(s)}</text>'
        )

    def line(
        self, x1: float, y1: float, x2: float, y2: float, stroke: str = INK, width: float = 1
    ) -> None:
        self.add(
            f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
            f'stroke="{stroke}" stroke-width="{_f(width)}"/>'
        )

    def rect(self, x: float, y: float, w: float, h: float, fill: str, title: str = "") -> None:
        tip = f"<title>{esc(title)}</title>" if title else ""
        body = f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" fill="{fill}"'
        self.add(f"{body}>{tip}</rect>" if tip else body + "/>")


def _fill(demand: str) -> str:
    return {"failure": "url(#failure)", "value": VALUE}.get(demand, UNKNOWN)


def _legend(svg: _Svg, x: float, y: float, items: Sequence[tuple[str, str]]) -> None:
    """Swatches ("line" draws the line-and-dot key) in one row."""
    for fill, label in items:
        if fill == "line":
            svg.line(x, y - 5, x + 26, y - 5, INK, 2)
            svg.add(
                f'<circle cx="{_f(x + 13)}" cy="{_f(y - 5)}" r="3.5" fill="#FFFFFF" '
                f'stroke="{INK}" stroke-width="2"/>'
            )
            x += 34
        else:
            svg.rect(x, y - 13, 16, 16, fill)
            x += 22
        svg.text(x, y, label, 14)
        x += text_width(label, 14) + 26


def _axes(
    svg: _Svg,
    top: float,
    bottom: float,
    max_count: int,
    left_title: str,
    right_title: str,
) -> tuple[float, float]:
    """Grid, left count axis, right 0-100 % axis; returns (count per unit, axis max)."""
    step = nice_step(max_count)
    axis_max = max(step, math.ceil(max_count / step) * step)
    height = bottom - top
    for v in range(0, axis_max + 1, step):
        y = bottom - v / axis_max * height
        svg.line(_LEFT, y, _RIGHT, y, GRID)
        svg.text(_LEFT - 8, y + 5, _n(v), 13, anchor="end")
    for p in range(0, 101, 20):
        y = bottom - p / 100 * height
        svg.text(_RIGHT + 8, y + 5, f"{p} %", 13)
    svg.line(_LEFT, top, _LEFT, bottom)
    svg.line(_RIGHT, top, _RIGHT, bottom)
    svg.line(_LEFT, bottom, _RIGHT, bottom)
    mid = (top + bottom) / 2
    svg.text(_LEFT - 58, mid, left_title, 14, anchor="middle", rotate=-90)
    svg.text(_RIGHT + 62, mid, right_title, 14, anchor="middle", rotate=90)
    return height / axis_max, float(axis_max)


def _polyline(svg: _Svg, points: list[tuple[float, float]], dots: bool, width: float = 2) -> None:
    if len(points) > 1:
        pts = " ".join(f"{_f(x)},{_f(y)}" for x, y in points)
        svg.add(f'<polyline points="{pts}" fill="none" stroke="{INK}" stroke-width="{_f(width)}"/>')
    if dots or len(points) == 1:
        for x, y in points:
            svg.add(
                f'<circle cx="{_f(x)}" cy="{_f(y)}" r="3.5" fill="#FFFFFF" '
                f'stroke="{INK}" stroke-width="2"/>'
            )


# --- panel 1: the Pareto ---------------------------------------------------------------
def _pareto(svg: _Svg, d: DemandReport, y: float) -> float:
    svg.text(_LEFT - 60, y, "Contacts by wrap-up code, most first", 20, weight="bold")
    _legend(
        svg,
        _LEFT - 60,
        y + 28,
        [
            ("url(#failure)", "failure demand"),
            (VALUE, "other demand"),
            (UNKNOWN, "no code / code not known"),
            ("line", "cumulative share"),
        ],
    )
    top, bottom = y + 56, y + 336
    rows: Sequence[CodeRow] = d.codes[:MAX_BARS]
    if not rows:
        _axes(svg, top, bottom, 1, "contacts", "cumulative share of contacts")
        svg.text(WIDTH / 2, (top + bottom) / 2, "No contacts in this period", 18, anchor="middle")
        return bottom + 50
    per, _ = _axes(
        svg, top, bottom, max(r.contacts for r in rows), "contacts", "cumulative share of contacts"
    )
    y80 = bottom - 0.8 * (bottom - top)
    svg.add(
        f'<line x1="{_LEFT}" y1="{_f(y80)}" x2="{_RIGHT}" y2="{_f(y80)}" stroke="{INK}" '
        'stroke-width="1" stroke-dasharray="6 4"/>'
    )
    svg.text(_RIGHT - 4, y80 - 5, "80 %", 12, anchor="end")
    slot = (_RIGHT - _LEFT) / len(rows)
    bar = min(slot * 0.72, 90)
    size = 13 if len(rows) <= 16 else 11
    points = []
    values = _Svg()  # drawn over the cumulative line, each on a white halo
    for i, r in enumerate(rows):
        cx = _LEFT + slot * (i + 0.5)
        h = r.contacts * per
        tip = f"{r.code} {r.label}: {r.contacts} contacts, {r.share_pct:.1f} %"
        svg.rect(cx - bar / 2, bottom - h, bar, h, _fill(r.demand), tip)
        # The count and share if they fit, else the share, smaller if need be.
        fits = [
            (text, size)
            for text, size in (
                (f"{_n(r.contacts)} ({r.share_pct:.1f} %)", 12),
                (f"{r.share_pct:.1f} %", 12),
                (f"{r.share_pct:.1f}", 10),
            )
            if text_width(text, size) <= slot - 2
        ]
        for above, above_size in fits[:1]:
            values.text(
                cx,
                bottom - h - 6,
                above,
                above_size,
                anchor="middle",
                weight="bold" if r.demand == "failure" else "normal",
                halo=True,
            )
        name = {"none": r.label, "unknown": f"{r.code} (code not in list)"}.get(
            r.demand, f"{r.code} {r.label}"
        )
        if len(name) > 30:
            name = name[:29] + "…"
        svg.text(
            cx + 4,
            bottom + 16,
            name,
            size,
            anchor="end",
            rotate=-35,
            weight="bold" if r.demand == "failure" else "normal",
        )
        points.append((cx, bottom - r.cumulative_pct / 100 * (bottom - top)))
    _polyline(svg, points, dots=True)
    svg.parts += values.parts
    end = bottom + 158
    rest = d.codes[MAX_BARS:]
    if rest:
        n = sum(r.contacts for r in rest)
        note = f"Not shown: {len(rest)} more codes with {_n(n)} contacts."
        svg.text(_RIGHT + 60, y, note, 13, anchor="end")
    return end


# --- panel 2: failure demand per interval ------------------------------------------------
# Tick steps, in intervals, that land on round times: 1 h, 3 h, 6 h, 12 h,
# a day, a week for 15-minute intervals, and so on.
_TICK_STEPS = {
    "15": (1, 2, 4, 8, 12, 24, 48, 96, 192, 672),
    "30": (1, 2, 4, 6, 12, 24, 48, 96, 336),
    "60": (1, 2, 3, 6, 12, 24, 48, 168, 336),
    "day": (1, 2, 7, 14, 28, 91, 182, 364),
}


def _tick_every(d: DemandReport, slot: float) -> int:
    """The smallest round tick step whose labels do not run into each other."""
    if not d.intervals:
        return 1
    width = text_width(_tick_label(d, d.intervals[0]), 13) + 14
    steps = _TICK_STEPS[d.period.interval]
    return next((k for k in steps if k * slot >= width), steps[-1] * 2)


def _tick_label(d: DemandReport, row: IntervalRow) -> str:
    if d.period.interval == "day":
        return row.label
    if d.period.end_ts - d.period.start_ts > 86400:
        return f"{row.start:%d %b %H:%M}"
    return row.label


def _intervals(svg: _Svg, d: DemandReport, y: float) -> float:
    iv = "daily" if d.period.interval == "day" else f"per {d.period.interval} minutes"
    svg.text(_LEFT - 60, y, f"Failure demand over time ({iv})", 20, weight="bold")
    _legend(
        svg,
        _LEFT - 60,
        y + 28,
        [
            ("url(#failure)", "failure demand"),
            (VALUE, "other demand"),
            (UNKNOWN, "cause not known"),
            ("line", "failure-demand share"),
        ],
    )
    top, bottom = y + 56, y + 286
    rows = d.intervals
    peak = max((r.contacts for r in rows), default=0)
    per, _ = _axes(svg, top, bottom, max(peak, 1), "contacts", "failure-demand share")
    if not peak:
        svg.text(WIDTH / 2, (top + bottom) / 2, "No contacts in this period", 18, anchor="middle")
    slot = (_RIGHT - _LEFT) / max(len(rows), 1)
    bar = max(slot * 0.8, 1)
    every = _tick_every(d, (_RIGHT - _LEFT) / max(len(rows), 1))
    segments: list[list[tuple[float, float]]] = [[]]
    for i, r in enumerate(rows):
        cx = _LEFT + slot * (i + 0.5)
        base = bottom
        for count, fill, what in (
            (r.failure, "url(#failure)", "failure demand"),
            (r.value, VALUE, "other demand"),
            (r.unclassified, UNKNOWN, "cause not known"),
        ):
            if count:
                h = count * per
                svg.rect(cx - bar / 2, base - h, bar, h, fill, f"{r.label}: {count} {what}")
                base -= h
        if i % every == 0:
            svg.line(cx, bottom, cx, bottom + 5)
            svg.text(cx, bottom + 22, _tick_label(d, r), 13, anchor="middle")
        if r.failure_pct is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append((cx, bottom - r.failure_pct / 100 * (bottom - top)))
    for seg in segments:
        _polyline(svg, seg, dots=slot >= 8, width=2 if slot >= 8 else 1.2)
    return bottom + 56


# --- panel 3: the client's escalation SLA ---------------------------------------------------
_COLS = (
    (_LEFT - 60, "start", "Severity"),
    (205, "end", "Raised"),
    (300, "end", "Cancelled"),
    (505, "end", "Acknowledged in time"),
    (665, "end", "Resolved in time"),
    (722, "end", "Open"),
    (840, "end", "Median ack"),
    (WIDTH - 30, "end", "Median resolve"),
)


def _dur(s: float | None) -> str:
    return "\u2013" if s is None else duration(s)


def _in_time(met: int, breached: int, p: float | None) -> str:
    return "\u2013" if met + breached == 0 else f"{met} of {met + breached} ({_pc(p)})"


def _escalations(svg: _Svg, e: EscalationSla, help_: EscalationSla, y: float) -> float:
    svg.text(_LEFT - 60, y, "Escalations to the client: SLA compliance", 20, weight="bold")
    y += 34
    o = e.overall
    if not o.raised:
        svg.text(_LEFT - 60, y, "No escalations to the client were raised in this period.", 15)
        y += 30
    else:
        for x, anchor, head in _COLS:
            svg.text(x, y, head, 14, anchor=anchor, weight="bold")
        svg.line(_LEFT - 60, y + 8, WIDTH - 30, y + 8)
        y += 30
        for f in (*e.by_severity, o):
            if f.severity is not None and not f.raised:
                continue
            weight = "bold" if f.severity is None else "normal"
            cells = (
                "All" if f.severity is None else f"Severity {f.severity}",
                _n(f.raised),
                _n(f.cancelled),
                _in_time(f.ack_met, f.ack_breached, f.ack_compliance_pct),
                _in_time(f.resolve_met, f.resolve_breached, f.resolve_compliance_pct),
                _n(f.open),
                _dur(f.ack_median_s),
                _dur(f.resolve_median_s),
            )
            for (x, anchor, _), cell in zip(_COLS, cells, strict=True):
                svg.text(x, y, cell, 14, anchor=anchor, weight=weight)
            y += 26
        notes = []
        if o.cancelled:
            notes.append(
                f"{o.cancelled} cancelled at the desk are not counted in the compliance figures"
                + (
                    f" ({o.cancelled_after_breach} after a deadline was missed)"
                    if o.cancelled_after_breach
                    else ""
                )
                + "."
            )
        if o.ack_pending or o.resolve_pending:
            notes.append(
                f"Still within their deadline: {o.ack_pending} to acknowledge, "
                f"{o.resolve_pending} to resolve."
            )
        if o.failed:
            notes.append(f"{o.failed} could not be delivered to the client's system.")
        for note in notes:
            svg.text(_LEFT - 60, y + 4, note, 13)
            y += 22
    h = help_.overall
    if h.raised:
        svg.text(
            _LEFT - 60,
            y + 10,
            f"Floor help (supervisor): {h.raised} raised, acknowledged in time "
            f"{_in_time(h.ack_met, h.ack_breached, h.ack_compliance_pct)}, median time to "
            f"acknowledge {_dur(h.ack_median_s)}.",
            13,
        )
        y += 30
    return y + 10


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def report_svg(r: Report) -> str:
    """The report's page: title, key figures, Pareto, intervals, escalation SLA."""
    d, s = r.demand, r.demand.summary
    svg = _Svg()
    title = f"{d.account_name}: failure demand and escalations"
    svg.text(_LEFT - 60, 56, title, 30, weight="bold")
    svg.text(_LEFT - 60, 90, period_text(d.period), 17)
    key = f"{_n(s.contacts)} contacts · failure demand {_pc(s.failure_pct)} ({_n(s.failure)})"
    svg.text(_LEFT - 60, 124, key, 18, weight="bold")
    more = f"Failure demand among the contacts the agent coded: {_pc(s.failure_of_coded_pct)}"
    if s.acd_contacts:
        more += f" · repeat contacts: {_pc(s.repeat_pct)} of {_n(s.acd_contacts)} ACD calls"
    svg.text(_LEFT - 60, 150, more, 15)
    key += ". " + more
    y = _pareto(svg, d, 192)
    y = _intervals(svg, d, y)
    y = _escalations(svg, r.client, r.floor_help, y)
    foot = (
        f"Failure demand: contacts caused by a failure to do something, or to do something "
        f"right, for the customer: the wrap-up codes {d.account_name} flags as such. Shares "
        "are of all contacts with a wrap-up; a contact counts in the interval its call was "
        "answered. In time: deadlines met of deadlines decided (inclusive). Deskline report "
        f"as of {r.as_of:%Y-%m-%d %H:%M %Z}."
    )
    lines = _wrap(foot, 125)
    fy = max(y + 20, HEIGHT - 24 - 18 * (len(lines) - 1))
    for i, line in enumerate(lines):
        svg.text(_LEFT - 60, fy + 18 * i, line, 12, fill="#555555")
    height = max(HEIGHT, math.ceil(fy + 18 * len(lines)))
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" '
        f'height="{_f(height * 0.21)}mm" viewBox="0 0 {WIDTH} {height}" '
        f"font-family={attr(FONT)}>\n"
        f"<title>{esc(title)}</title>\n"
        f"<desc>{esc(period_text(d.period) + '. ' + key)}</desc>\n"
        '<defs><pattern id="failure" patternUnits="userSpaceOnUse" width="8" height="8" '
        'patternTransform="rotate(45)">'
        f'<rect width="8" height="8" fill="{FAILURE}"/>'
        '<rect width="3" height="8" fill="#FFFFFF" fill-opacity="0.5"/></pattern></defs>\n'
        f'<rect width="{WIDTH}" height="{height}" fill="#FFFFFF"/>\n'
    )
    return head + "\n".join(svg.parts) + "\n</svg>\n"
