"""Wrap-up codes go back to queue reporting tools as CALLSTATUS lines."""

from __future__ import annotations

from pathlib import Path

from deskline import acdcalls, callstatus
from deskline.store import Batch, Store
from deskline.wire import codec
from test_store import T0, ev, hello_fields, make_floor


def test_wrapups_of_acd_calls_become_callstatus_lines(tmp_path: Path) -> None:
    E = codec
    with Store(tmp_path / "d.db") as store:
        store.sync_floor(make_floor())
        store.hello("d1", hello_fields(), "p", T0)
        with store.transaction() as cur:
            acdcalls.record(
                cur, [acdcalls.Entered("1700.42", "billing", "acme", "0161", T0, 1)], {}
            )
        store.apply(
            Batch(
                events=[
                    ev("d1", 1, E.EV_CALL_START, a=1, epoch=int(T0) + 10),
                    ev("d1", 2, E.EV_CALL_START, a=2, ref=1, text="1700.42"),
                    ev("d1", 3, E.EV_CALL_END, a=1, b=42, ref=1),
                    ev("d1", 4, E.EV_WRAPUP, a=2, b=15, c=E.HOW_CODE, ref=1, epoch=int(T0) + 70),
                    # A call the ACD never named (handset only): no line.
                    ev("d1", 5, E.EV_CALL_START, a=1),
                    ev("d1", 6, E.EV_CALL_END, a=1, b=3, ref=5),
                    ev("d1", 7, E.EV_WRAPUP, a=1, b=4, c=E.HOW_CODE, ref=5),
                ]
            )
        )
        assert callstatus.position(store) == 0
        wrapups = callstatus.new_wrapups(store, 0)
        assert [w.code for w in wrapups] == [2, 1]
        lines = [callstatus.line(w) for w in wrapups]
        assert lines == [f"{int(T0) + 70}|1700.42|billing|Agent/ann|CALLSTATUS|2||2", None]
        log = callstatus.CallStatusLog(tmp_path / "logs" / "callstatus_log")
        log.append([x for x in lines if x])
        callstatus.set_position(store, wrapups[-1].rowid)
        assert callstatus.new_wrapups(store, callstatus.position(store)) == []
    text = (tmp_path / "logs" / "callstatus_log").read_text()
    assert text == f"{int(T0) + 70}|1700.42|billing|Agent/ann|CALLSTATUS|2||2\n"
