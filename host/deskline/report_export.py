"""The report as JSON, CSV and a plain-text table (`deskline report --format`).

JSON is the stable interface (`"schema": "deskline.report/1"`; fields are
only ever added).  CSV is one table per section, separated by a blank line,
every row starting with its section's name, so a spreadsheet can filter it
and `csv_sections` reads it back.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from deskline.report import (
    SCHEMA,
    CauseRow,
    CodeRow,
    DemandReport,
    EscalationSla,
    IntervalRow,
    Period,
    Report,
    SlaFigures,
)


def _plain(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def period_json(period: Period) -> dict[str, Any]:
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "tz": period.tz,
        "interval": period.interval,
    }


def demand_json(d: DemandReport) -> dict[str, Any]:
    """The failure-demand part, as the dashboard serves it."""
    return {
        "schema": SCHEMA,
        "account": {"key": d.account, "name": d.account_name},
        "period": period_json(d.period),
        "contacts": _plain(d.summary),
        "codes": _plain(d.codes),
        "failure_causes": _plain(d.causes),
        "intervals": _plain(d.intervals),
    }


def escalation_json(e: EscalationSla) -> dict[str, Any]:
    return {"overall": _plain(e.overall), "by_severity": _plain(e.by_severity)}


def report_json(r: Report) -> dict[str, Any]:
    out = demand_json(r.demand)
    out["as_of"] = r.as_of.isoformat()
    out["escalations"] = {
        "client": escalation_json(r.client),
        "floor_help": escalation_json(r.floor_help),
    }
    return out


# --- CSV ----------------------------------------------------------------------------
def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bool):
        return int(v)
    return v


def _sla_rows(kind: str, e: EscalationSla) -> Iterable[dict[str, Any]]:
    for f in (e.overall, *e.by_severity):
        row = {"kind": kind, **dataclasses.asdict(f)}
        row["severity"] = "all" if f.severity is None else f.severity
        yield row


def report_sections(r: Report) -> dict[str, list[dict[str, Any]]]:
    """The report as named tables of flat rows (what the CSV holds)."""
    d, p = r.demand, r.period
    s = dataclasses.asdict(d.summary)
    by_how = s.pop("by_how")
    summary: list[dict[str, Any]] = [
        {"metric": "account", "value": d.account},
        {"metric": "account_name", "value": d.account_name},
        {"metric": "from", "value": p.start.isoformat()},
        {"metric": "to", "value": p.end.isoformat()},
        {"metric": "tz", "value": p.tz},
        {"metric": "interval", "value": p.interval},
        {"metric": "as_of", "value": r.as_of.isoformat()},
    ]
    summary += [{"metric": k, "value": v} for k, v in s.items()]
    summary += [{"metric": f"how_{k}", "value": v} for k, v in by_how.items()]
    return {
        "summary": summary,
        "codes": [dataclasses.asdict(c) for c in d.codes],
        "failure_causes": [dataclasses.asdict(c) for c in d.causes],
        "intervals": [dataclasses.asdict(i) for i in d.intervals],
        "escalations": [
            *_sla_rows("client", r.client),
            *_sla_rows("floor_help", r.floor_help),
        ],
    }


_HEADERS: dict[str, list[str]] = {
    "summary": ["metric", "value"],
    "codes": [f.name for f in dataclasses.fields(CodeRow)],
    "failure_causes": [f.name for f in dataclasses.fields(CauseRow)],
    "intervals": [f.name for f in dataclasses.fields(IntervalRow)],
    "escalations": ["kind", *(f.name for f in dataclasses.fields(SlaFigures))],
}


def report_csv(r: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for i, (name, rows) in enumerate(report_sections(r).items()):
        if i:
            w.writerow([])
        header = _HEADERS[name]
        w.writerow(["section", *header])
        for row in rows:
            w.writerow([name, *(_cell(row.get(h)) for h in header)])
    return out.getvalue()


def csv_sections(text: str) -> dict[str, list[dict[str, str]]]:
    """Reads report_csv's text back: section name -> rows (strings)."""
    out: dict[str, list[dict[str, str]]] = {}
    header: list[str] | None = None
    by_header = {tuple(h): name for name, h in _HEADERS.items()}
    for row in csv.reader(io.StringIO(text)):
        if not row:
            header = None
            continue
        if header is None:
            header = row
            # An empty section has no rows to name it: its header does.
            if tuple(row[1:]) in by_header:
                out.setdefault(by_header[tuple(row[1:])], [])
            continue
        rec = dict(zip(header[1:], row[1:], strict=True))
        out.setdefault(row[0], []).append(rec)
    return out


# --- the terminal ------------------------------------------------------------------
def _p(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} %"


def duration(s: float | None) -> str:
    """Seconds as a person reads them: 45 s, 4 m 05 s, 2 h 10 m, 3 d 04 h."""
    if s is None:
        return "-"
    n = round(s)
    if n < 60:
        return f"{n} s"
    if n < 3600:
        return f"{n // 60} m {n % 60:02d} s"
    if n < 86400:
        return f"{n // 3600} h {n % 3600 // 60:02d} m"
    return f"{n // 86400} d {n % 86400 // 3600:02d} h"


def _table(head: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = []
    for row in (head, *rows):
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def period_text(p: Period) -> str:
    iv = "daily" if p.interval == "day" else f"{p.interval}-minute"
    return f"{p.start:%a %d %b %Y %H:%M} to {p.end:%a %d %b %Y %H:%M} ({p.tz}), {iv} intervals"


def sla_lines(e: EscalationSla) -> list[str]:
    rows = []
    for f in (*e.by_severity, e.overall):
        rows.append(
            [
                "all" if f.severity is None else str(f.severity),
                str(f.raised),
                str(f.cancelled),
                str(f.open),
                f"{f.ack_met} of {f.ack_met + f.ack_breached}",
                _p(f.ack_compliance_pct),
                f"{f.resolve_met} of {f.resolve_met + f.resolve_breached}",
                _p(f.resolve_compliance_pct),
                f"{duration(f.ack_median_s)} / {duration(f.ack_p90_s)}",
                f"{duration(f.resolve_median_s)} / {duration(f.resolve_p90_s)}",
            ]
        )
    head = [
        "severity",
        "raised",
        "cancelled",
        "open",
        "acked in time",
        "",
        "resolved in time",
        "",
        "to ack: median / p90",
        "to resolve: median / p90",
    ]
    return _table(head, rows, set(range(1, 8)))


def report_text(r: Report) -> str:
    d, s = r.demand, r.demand.summary
    out = [
        f"{d.account_name} ({d.account}): failure demand and escalations",
        period_text(d.period),
        "",
        (
            f"Contacts: {s.contacts}.  Failure demand {s.failure} ({_p(s.failure_pct)}), "
            f"value {s.value}, no cause known {s.unclassified}."
        ),
        (
            f"The agent keyed a known code on {s.coded}; failure demand among those: "
            f"{_p(s.failure_of_coded_pct)}."
        ),
    ]
    if s.calls_without_wrapup:
        out.append(f"Calls still without a wrap-up: {s.calls_without_wrapup}.")
    if s.acd_contacts:
        out.append(
            f"Repeat contacts: {s.repeat_contacts} of {s.acd_contacts} ACD calls "
            f"({_p(s.repeat_pct)}); {s.repeats_about_open_escalation} about an open escalation."
        )
    out += ["", "Contacts by wrap-up code (most first)"]
    if d.codes:
        out += _table(
            ["code", "label", "demand", "contacts", "share", "cumulative", "keyed", "fallback"],
            [
                [
                    str(c.code),
                    c.label,
                    "FAILURE" if c.demand == "failure" else c.demand,
                    str(c.contacts),
                    _p(c.share_pct),
                    _p(c.cumulative_pct),
                    str(c.keyed),
                    str(c.fallback),
                ]
                for c in d.codes
            ],
            {0, 3, 4, 5, 6, 7},
        )
    else:
        out.append("  no contacts in this period")
    if d.causes:
        out += ["", "Failure demand by cause"]
        out += _table(
            ["code", "label", "contacts", "of all contacts", "of failure demand"],
            [
                [str(c.code), c.label, str(c.contacts), _p(c.share_pct), _p(c.share_of_failure_pct)]
                for c in d.causes
            ],
            {0, 2, 3, 4},
        )
    # Quiet hours before the first and after the last activity are left out.
    busy = [
        n
        for n, i in enumerate(d.intervals)
        if i.contacts or i.escalations or i.floor_help or i.acd_contacts
    ]
    shown = d.intervals[busy[0] : busy[-1] + 1] if busy else ()
    out += ["", "By interval" + ("" if busy else ": no activity in this period")]
    out += (
        []
        if not busy
        else _table(
            [
                "interval",
                "contacts",
                "failure",
                "failure %",
                "escalations",
                "floor help",
                "ACD",
                "repeats",
            ],
            [
                [
                    f"{i.start:%Y-%m-%d %H:%M}" if d.period.interval != "day" else i.label,
                    str(i.contacts),
                    str(i.failure),
                    _p(i.failure_pct),
                    str(i.escalations),
                    str(i.floor_help),
                    str(i.acd_contacts),
                    str(i.repeat_contacts),
                ]
                for i in shown
            ],
            set(range(1, 8)),
        )
    )
    for title, e in (("Client escalations (SLA)", r.client), ("Floor help", r.floor_help)):
        o = e.overall
        out += ["", f"{title}: {o.raised} raised, {o.delivered} delivered, {o.open} open"]
        if o.cancelled:
            out.append(
                f"  {o.cancelled} cancelled at the desk (not counted in the SLA figures; "
                f"{o.cancelled_after_breach} after a deadline was missed)"
            )
        if o.failed:
            out.append(f"  {o.failed} could not be delivered")
        if o.raised:
            out += sla_lines(e)
    out += ["", f"As of {r.as_of:%Y-%m-%d %H:%M:%S %Z}"]
    return "\n".join(out) + "\n"
