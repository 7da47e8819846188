"""The escalation service against a real store and a real client's HTTP server.

The SLA clock is a fake one (deadlines and breaches are decided by it); the
wire is real: webhooks go to `deskline.sim.client` over HTTP, signed, and
its callbacks come back through the daemon's Starlette app under uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deskline import webhook
from deskline.escalations import EscalationError, EscalationService
from deskline.floorconfig import demo_floor_toml, parse_floor
from deskline.floormodel import Floor
from deskline.sim.client import Answer, ClientSystem
from deskline.store import Batch, EventRow, Store
from deskline.web import WebServer, create_app, escalation_routes
from deskline.wire import codec
from deskline.writer import StoreWriter

SECRET = "test-secret-7f3a"
ENV = "DESKLINE_TEST_ESC_SECRET"
CALL_ID = "1700000000.1"
EARLIER_ID = "1699990000.7"
CALLER = "+447700900123"


def floor_for(url: str, extra: str = "", help_table: str = "") -> Floor:
    policy = f"""
[accounts.volt.escalation]
url = "{url}"
secret_env = "{ENV}"
timeout_s = 0.4
retry_base_s = 0.05
retry_cap_s = 0.1
give_up_s = 3
{extra}
[accounts.volt.escalation.deadlines]
high = {{ ack = "10m", resolve = "2h" }}
"""
    return parse_floor(demo_floor_toml(3) + policy + help_table)


class Harness:
    """A store writer, the service on a fake SLA clock, the HTTP side, and the desk pushes."""

    def __init__(self, db: Path, floor: Floor) -> None:
        self.floor = floor
        self.now = time.time()
        self.writer = StoreWriter(db)
        self.pushes: list[tuple[str, dict[str, Any]]] = []
        self.svc = EscalationService(
            self.writer, lambda: self.floor, self.push, clock=lambda: self.now, tick_s=3600
        )
        self.web = WebServer(create_app(escalation_routes(self.svc)))
        self.seq: dict[str, int] = {}

    def push(self, device: str, esc: dict[str, Any], done: Callable[[int], None]) -> bool:
        self.pushes.append((device, esc))
        done(0)
        return True

    async def __aenter__(self) -> Harness:
        await self.writer.start()
        await self.writer.call(lambda s: s.sync_floor(self.floor))
        await self.web.start()
        self.svc.public_url = self.web.url
        await self.svc.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.svc.stop()
        await self.web.stop()
        await self.writer.close()

    async def emit(
        self, device: str, kind: int, *, a: int = 0, c: int = 0, ref: int = 0, text: str = ""
    ) -> int:
        seq = self.seq.get(device, 0) + 1
        self.seq[device] = seq
        at = int(self.now)

        def run(store: Store) -> None:
            if seq == 1:
                store.hello(device, {"next_seq": 1, "first_unacked": 1}, "/dev/x", self.now)
            store.apply(
                Batch(events=[EventRow(device, seq, seq, at, kind, a, 0, c, ref, text, self.now)])
            )

        await self.writer.call(run)
        return seq

    async def escalate(self, device: str = "desk-01", severity: int = 2, kind: int = 0) -> str:
        call = await self.emit(device, codec.EV_CALL_START, a=2, text=CALL_ID)
        self.now += 95  # on the call for a while
        seq = await self.emit(
            device, codec.EV_ESC_RAISE, a=severity, c=kind, ref=call, text=CALL_ID
        )
        await self.sweep()
        rows = await self.query("SELECT ext_id FROM escalations WHERE seq = ?", seq)
        return str(rows[0]["ext_id"])

    async def sweep(self) -> None:
        await self.svc.tick()
        await self.svc.drain()

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return await self.writer.call(lambda s: s.query(sql, args))

    async def row(self, ext_id: str) -> dict[str, Any]:
        return (await self.query("SELECT * FROM escalations WHERE ext_id = ?", ext_id))[0]

    async def until(self, pred: Callable[[], Any], timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < end, "timed out"
            await asyncio.sleep(0.02)

    def statuses(self, device: str = "desk-01") -> list[int]:
        return [esc["status"] for d, esc in self.pushes if d == device]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientSystem]:
    monkeypatch.setenv(ENV, SECRET)
    with ClientSystem(SECRET, answer=Answer(ack_after_s=None)) as c:
        yield c


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _history(h: Harness) -> None:
    """The caller's earlier contact, coded at another desk, and this call in the ACD."""

    def seed(store: Store) -> None:
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO acd_calls (uniqueid, queue, account, callerid, entered, connected,"
                " ended, outcome, agent, talk_s) VALUES (?, 'volt-billing', 'volt', ?, ?, ?, ?,"
                " 'completed', 'ag-02', 200)",
                (
                    EARLIER_ID,
                    CALLER,
                    h.now - 2 * 86400,
                    h.now - 2 * 86400 + 20,
                    h.now - 2 * 86400 + 220,
                ),
            )
            cur.execute(
                "INSERT INTO calls (console_id, journal_epoch, seq, acd_call_id, source, started,"
                " code, wrapup_seq, desk, agent, account) VALUES (99, 1, 5, ?, 2, ?, 7, 6,"
                " 'desk-02', 'ag-02', 'volt')",
                (EARLIER_ID, h.now - 2 * 86400 + 20),
            )
            cur.execute(
                "INSERT INTO wrapups (console_id, journal_epoch, seq, call_seq, code, acw_s, how,"
                " at, desk, agent, account, label, failure_demand) VALUES (99, 1, 6, 5, 7, 12, 1,"
                " ?, 'desk-02', 'ag-02', 'volt', 'Confusing bill', 1)",
                (h.now - 2 * 86400 + 230,),
            )
            cur.execute(
                "INSERT INTO acd_calls (uniqueid, queue, account, callerid, entered, connected,"
                " outcome, agent, repeat_of, repeat_count) VALUES (?, 'volt-moves', 'volt', ?, ?,"
                " ?, 'answered', 'ag-01', ?, 1)",
                (CALL_ID, CALLER, h.now - 60, h.now - 30, EARLIER_ID),
            )

    await h.writer.call(seed)


def test_a_trigger_carries_the_case_and_the_clients_ack_reaches_the_desk(
    tmp_path: Path, client: ClientSystem
) -> None:
    async def main() -> None:
        async with Harness(tmp_path / "d.db", floor_for(client.url)) as h:
            await _history(h)
            on_time = Answer(ack_after_s=0.05, resolve_after_s=0.3, ticket="INC{n}")
            client.set_answer(lambda body: on_time if body["severity"]["level"] == 2 else Answer())
            ext = await h.escalate()
            assert ext.startswith("DL-desk-01-1-")
            await h.until(lambda: client.accepted("trigger"))
            d = client.accepted("trigger")[0]
            assert d.signature_ok and d.key == f"{ext}/trigger" and d.attempt == 1
            body = d.body
            assert body is not None
            assert body["schema"] == webhook.SCHEMA and body["event"] == "trigger"
            assert body["account"] == {
                "key": "volt",
                "name": "Volt Energy",
                "hotline": "+44 20 7946 0101",
            }
            assert body["queue"] == "volt-moves"
            assert body["desk"] == {"name": "desk-01", "console": "desk-01"}
            assert body["agent"]["id"] == "ag-01" and body["agent"]["name"]
            assert body["call"]["acd_call_id"] == CALL_ID
            assert body["call"]["callerid"] == CALLER
            assert body["call"]["time_on_call_s"] == 95
            assert body["severity"] == {"level": 2, "name": "high"}
            assert body["caller"]["repeat_contacts"] == 1
            [earlier] = body["caller"]["earlier_contacts"]
            assert earlier["acd_call_id"] == EARLIER_ID and earlier["outcome"] == "completed"
            assert earlier["wrapup"] == {
                "code": 7,
                "label": "Confusing bill",
                "failure_demand": True,
            }
            assert body["links"] == {"callback": h.web.url + "/api/v1/callbacks"}
            row = await h.row(ext)
            assert row["ack_due"] == pytest.approx(row["raised"] + 600)
            assert row["resolve_due"] == pytest.approx(row["raised"] + 7200)
            assert json.loads(row["context"])["ext_id"] == ext
            # Adoption, delivery, the client's acknowledge and resolve, each on the desk.
            await h.until(lambda: codec.ESC_RESOLVED in h.statuses())
            assert h.statuses() == [
                codec.ESC_RAISED,
                codec.ESC_DELIVERED,
                codec.ESC_ACKED,
                codec.ESC_RESOLVED,
            ]
            acked = next(e for _, e in h.pushes if e["status"] == codec.ESC_ACKED)
            assert acked["ticket"] == "INC1" and 7000 < acked["deadline_s"] <= 7200
            row = await h.row(ext)
            assert row["delivered"] and row["acked"] and row["resolved"] and not row["breached"]
            assert [c.status for c in client.callbacks()] == [200, 200]
            notes = await h.query(
                "SELECT note FROM escalation_history WHERE esc_seq = ? ORDER BY id", row["seq"]
            )
            assert [n["note"].split(" ")[0] for n in notes] == [
                "raised",
                "adopted",
                "delivered",
                "acknowledged",
                "resolved",
            ]

    run(main())


def test_missed_deadlines_breach_and_late_answers_keep_the_record(
    tmp_path: Path, client: ClientSystem
) -> None:
    async def main() -> None:
        async with Harness(tmp_path / "d.db", floor_for(client.url)) as h:
            ext = await h.escalate(severity=2)  # high: 10 min to acknowledge, 2 h to resolve
            h.now += 601
            await h.sweep()
            assert (await h.row(ext))["breached"] == "ack"
            breach = h.pushes[-1][1]
            assert breach["status"] == codec.ESC_BREACHED and -10 < breach["deadline_s"] < 0
            h.now += 60
            late = await h.svc.answer(ext, "acknowledge", via="supervisor ann (cli)")
            assert late["changed"] and late["escalation"]["status"] == "acknowledged"
            assert late["escalation"]["breached"] == ["ack"]
            again = await h.svc.answer(ext, "acknowledge", via="the client")
            assert not again["changed"]  # answering twice is harmless
            h.now += 7200
            await h.sweep()
            row = await h.row(ext)
            assert row["breached"] == "ack,resolve" and row["status"] == codec.ESC_BREACHED
            done = await h.svc.answer(ext, "resolve", via="the client", ticket="INC9")
            assert done["escalation"]["status"] == "resolved"
            assert h.statuses() == [
                codec.ESC_RAISED,
                codec.ESC_DELIVERED,
                codec.ESC_BREACHED,
                codec.ESC_ACKED,
                codec.ESC_BREACHED,
                codec.ESC_RESOLVED,
            ]
            with pytest.raises(EscalationError) as e:
                await h.svc.answer(ext, "acknowledge", via="x")
            assert e.value.http == 409 and "resolved" in str(e.value)

    run(main())


def test_retries_after_500s_and_timeouts_one_key_and_duplicates_refused(
    tmp_path: Path, client: ClientSystem
) -> None:
    async def main() -> None:
        async with Harness(tmp_path / "d.db", floor_for(client.url)) as h:
            client.fail_next(2)
            client.hang_next(1, seconds=1.0)  # past the 0.4 s timeout
            ext = await h.escalate()
            for _ in range(60):
                h.now += 0.2  # the retry backoff runs on the service's clock
                await h.sweep()
                if (await h.row(ext))["delivered"]:
                    break
                await asyncio.sleep(0.05)
            answered = [d.answered for d in client.deliveries()]
            assert answered == [500, 500, 202, 409], answered
            assert client.keys_per_event() == {(ext, "trigger"): {f"{ext}/trigger"}}
            [item] = await h.query("SELECT * FROM outbox")
            assert item["attempts"] == 4 and item["delivered"] and item["last_status"] == 409
            assert len(client.accepted()) == 1

    run(main())


def test_an_undeliverable_trigger_fails_on_the_desk(tmp_path: Path, client: ClientSystem) -> None:
    async def main() -> None:
        async with Harness(tmp_path / "d.db", floor_for(client.url)) as h:
            client.fail_next(1000)
            ext = await h.escalate()
            start = h.now
            while (await h.row(ext))["status"] != codec.ESC_FAILED:
                assert h.now - start < 10
                h.now += 0.5  # give_up_s = 3 on the service's clock
                await h.sweep()
                await asyncio.sleep(0.06)
            assert h.statuses()[-1] == codec.ESC_FAILED
            [item] = await h.query("SELECT * FROM outbox")
            assert item["gave_up"] and "HTTP 500" in item["last_error"]

    run(main())


def test_a_cancel_follows_its_trigger_and_an_unsent_trigger_is_dropped(
    tmp_path: Path, client: ClientSystem
) -> None:
    async def main() -> None:
        async with Harness(tmp_path / "d.db", floor_for(client.url)) as h:
            ext = await h.escalate()
            await h.until(lambda: client.accepted("trigger"))
            seq = int(ext.rsplit("-", 1)[1])
            await h.emit("desk-01", codec.EV_ESC_CANCEL, ref=seq)
            await h.sweep()
            await h.until(lambda: client.accepted("cancel"))
            cancel = client.accepted("cancel")[0]
            assert cancel.key == f"{ext}/cancel" and cancel.body
            assert cancel.body["reason"] == "cancelled at the desk"
            assert (await h.row(ext))["cancelled"]
            with pytest.raises(EscalationError) as e:
                await h.svc.answer(ext, "resolve", via="the client")
            assert e.value.code == "cancelled"
            # Raised and cancelled before the first send: nothing goes out at all.
            call = await h.emit("desk-01", codec.EV_CALL_START, a=2, text="x")
            raise_seq = await h.emit("desk-01", codec.EV_ESC_RAISE, a=2, ref=call)
            await h.emit("desk-01", codec.EV_ESC_CANCEL, ref=raise_seq)
            await h.sweep()
            keys = {d.key for d in client.deliveries()}
            assert keys == {f"{ext}/trigger", f"{ext}/cancel"}

    run(main())


def test_floor_help_is_delivered_when_shown_and_answered_by_a_supervisor(
    tmp_path: Path, client: ClientSystem
) -> None:
    async def main() -> None:
        floor = floor_for(client.url, help_table='\n[help]\nack = "2m"\nresolve = "10m"\n')
        async with Harness(tmp_path / "d.db", floor) as h:
            ext = await h.escalate(device="desk-02", kind=1)
            row = await h.row(ext)
            assert row["ack_due"] == pytest.approx(row["raised"] + 120)
            assert not client.deliveries()  # no help webhook: the supervisors' view
            assert await h.svc.help_shown("listed by ann") == 1
            assert (await h.row(ext))["status"] == codec.ESC_DELIVERED
            listed = await h.svc.listing(open_only=True)
            assert [(e["ext_id"], e["kind"], e["status"]) for e in listed] == [
                (ext, "floor_help", "delivered")
            ]
            await h.svc.answer(ext, "acknowledge", via="supervisor ann (cli)")
            await h.svc.answer(ext, "resolve", via="supervisor ann (cli)", note="sorted")
            assert h.statuses("desk-02") == [
                codec.ESC_RAISED,
                codec.ESC_DELIVERED,
                codec.ESC_ACKED,
                codec.ESC_RESOLVED,
            ]
            assert await h.svc.listing(open_only=True) == []
            with pytest.raises(EscalationError) as e:
                await h.svc.secret_for(ext)  # no help webhook: no signed callbacks
            assert e.value.http == 403

    run(main())


def test_the_callback_endpoint_refuses_what_it_cannot_trust(
    tmp_path: Path, client: ClientSystem
) -> None:
    async def main() -> None:
        async with Harness(tmp_path / "d.db", floor_for(client.url)) as h:
            ext = await h.escalate()
            url = h.web.url + "/api/v1/callbacks"
            key = SECRET.encode()

            def body(**over: Any) -> bytes:
                fields = {"ext_id": ext, "action": "acknowledge", "ticket": "INC7", "by": "jo"}
                return json.dumps({**fields, **over}).encode()

            async def post(data: bytes, sig: str | None, path: str = url) -> httpx.Response:
                hdrs = {webhook.SIGNATURE_HEADER: sig} if sig is not None else {}
                async with httpx.AsyncClient() as http:
                    return await http.post(path, content=data, headers=hdrs)

            now = int(time.time())
            good = body()
            cases = [
                (good, None, 401, "missing_signature"),
                (good, "t=1,v1=00", 401, "stale_signature"),
                (good, "v1=00", 401, "malformed_signature"),
                (good, webhook.sign(b"wrong", good, now), 401, "bad_signature"),
                # The signature covers the action: an acknowledge is no resolve.
                (body(action="resolve"), webhook.sign(key, good, now), 401, "bad_signature"),
                (body(ext_id="DL-nope-1-1"), None, 404, "unknown_escalation"),
                (body(action="close"), None, 400, "bad_action"),
                (b"[1]", None, 400, "bad_json"),
                (
                    body(ticket="\u00e9"),
                    webhook.sign(key, body(ticket="\u00e9"), now),
                    400,
                    "bad_ticket",
                ),
            ]
            for data, sig, status, code in cases:
                r = await post(data, sig)
                assert (r.status_code, r.json()["code"]) == (status, code), (data, r.json())
                assert r.json()["ok"] is False and r.json()["error"]
            sig = webhook.sign(key, good, now)
            r = await post(good, sig)
            assert r.status_code == 200 and r.json()["changed"] is True
            assert r.json()["escalation"]["ticket"] == "INC7"
            r = await post(good, sig)  # the same signed request again
            assert (r.status_code, r.json()["code"]) == (409, "replayed")
            hist = await h.query("SELECT note FROM escalation_history WHERE status = 2")
            assert hist[0]["note"] == "acknowledged by the client (jo)"
            r = await post(b"", None, h.web.url + "/api/v1/health")
            assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"

    run(main())
