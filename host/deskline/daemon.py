"""`deskline daemon`: serves every console on the floor.

One asyncio loop holds a `PortWorker` per serial port (found explicitly, by
glob or by USB VID/PID, rescanned for hot-plugging), one `StoreWriter`
thread, the floor configuration watcher and the control socket.  A fault on
one port — a console that babbles, hangs, speaks another protocol version or
vanishes — stays inside that port's worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskline import control, ports
from deskline.acdfeed import AcdFeed, AcdOptions
from deskline.bundle import read_bundle
from deskline.errors import DesklineError
from deskline.escalations import EscalationService
from deskline.floorconfig import FloorWatcher
from deskline.floormodel import Floor
from deskline.floorview import FloorView, placements
from deskline.livefeed import LiveFeed
from deskline.portworker import PortWorker
from deskline.session import ONLINE, Command, FloorLight
from deskline.store import Batch, HelloOutcome, Store
from deskline.update import UpdateJob, Updater
from deskline.web import WebServer, create_app, escalation_routes, parse_address
from deskline.webapi import api_routes
from deskline.webauth import WebAuth, auth_routes
from deskline.webui import ui_routes
from deskline.wire import codec
from deskline.writer import StoreWriter

log = logging.getLogger("deskline.daemon")

ESC_NAMES = {
    "raised": codec.ESC_RAISED,
    "delivered": codec.ESC_DELIVERED,
    "acknowledged": codec.ESC_ACKED,
    "resolved": codec.ESC_RESOLVED,
    "breached": codec.ESC_BREACHED,
    "cancelled": codec.ESC_CANCELLED,
    "failed": codec.ESC_FAILED,
}
BANDS = {
    "unknown": codec.BAND_UNKNOWN,
    "green": codec.BAND_GREEN,
    "amber": codec.BAND_AMBER,
    "red": codec.BAND_RED,
}
NO_DEADLINE = 0x7FFFFFFF
_NOBODY = {"console": "-", "port": "-"}  # log lines about the daemon itself


@dataclass
class DaemonOptions:
    db: Path
    control: Path
    floor: Path | None = None
    ports: list[str] = field(default_factory=list)
    globs: list[str] = field(default_factory=list)
    usb: bool = True
    baud: int = 115200
    rescan_s: float = 2.0
    synchronous: str = "FULL"
    http: str = ""  # HOST:PORT of the HTTP side (client callbacks); "" = none
    public_url: str = ""  # how the client's system reaches it, for callback links
    acd: AcdOptions | None = None  # the ACD's queue_log to follow (service level)
    web_public: bool = False  # the floor view may be read without a login (a wall screen)
    state: Path | None = None  # supervisors and the web secret; default: the store's folder


def default_paths(state_dir: Path | None = None) -> tuple[Path, Path]:
    """(database, control socket) under the state directory."""
    base = state_dir or Path.cwd() / "var"
    return base / "deskline.db", base / "deskline.sock"


class Daemon:
    def __init__(self, opts: DaemonOptions) -> None:
        self.opts = opts
        self.writer = StoreWriter(opts.db, synchronous=opts.synchronous)
        self.workers: dict[str, PortWorker] = {}
        self.by_device: dict[str, PortWorker] = {}
        self.floor: Floor | None = None
        self.floor_errors: list[str] = []
        self.watcher = FloorWatcher(opts.floor) if opts.floor else None
        self.lights: dict[str, FloorLight] = {}  # per account key, set by hand (floor-light)
        self.acd = AcdFeed(self, opts.acd) if opts.acd else None
        self.started = time.time()
        self._stop = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.updater = Updater(self.by_device.get)  # `deskline update` jobs (update.py)
        self.escalations: EscalationService | None = None
        self.web: WebServer | None = None
        self.view = FloorView(self)
        self.feed = LiveFeed(self.view, self._help_shown)

    # --- life cycle -----------------------------------------------------------------
    async def run(self) -> None:
        await self.writer.start()
        await self._check_floor(force=True)
        await self._start_escalations()
        self._server = await control.serve(self.opts.control, self.handle)
        log.info(
            "daemon up: store %s, control %s, floor %s",
            self.opts.db,
            self.opts.control,
            self.opts.floor or "(none)",
            extra=_NOBODY,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        tasks = [
            asyncio.create_task(self._rescan_loop(), name="rescan"),
            asyncio.create_task(self._floor_loop(), name="floor"),
        ]
        if self.acd is not None:
            tasks.append(asyncio.create_task(self.acd.run(), name="acd"))
        tasks.append(asyncio.create_task(self.feed.run(), name="floor view"))
        await self._stop.wait()
        log.info("stopping", extra=_NOBODY)
        self.feed.close()  # ends the dashboards' streams, so the HTTP side can stop
        for t in tasks:
            t.cancel()
        self._server.close()
        await self._stop_escalations()
        await self.updater.stop()
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        await self.writer.close()
        with contextlib.suppress(FileNotFoundError):
            self.opts.control.unlink()

    def stop(self) -> None:
        self._stop.set()

    async def _rescan_loop(self) -> None:
        while True:
            try:
                self._rescan()
            except Exception:
                log.exception("port scan failed", extra=_NOBODY)
            await asyncio.sleep(self.opts.rescan_s)

    def _rescan(self) -> None:
        found = ports.scan(self.opts.ports, self.opts.globs, usb=self.opts.usb)
        seen = set()
        for info in found:
            seen.add(info.device)
            if info.device not in self.workers:
                worker = PortWorker(self, info.device, self.opts.baud)
                self.workers[info.device] = worker
                worker.start()
        for device, worker in list(self.workers.items()):
            # A port the scan no longer finds and that is not serving goes;
            # explicit ports stay (they are retried and reported).
            if device not in seen and worker.state != "open" and not worker.released:
                del self.workers[device]
                task = asyncio.create_task(worker.stop())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _floor_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._check_floor()
            except Exception:
                log.exception("floor check failed", extra=_NOBODY)

    async def _check_floor(self, force: bool = False) -> None:
        if self.watcher is None:
            return
        r = self.watcher.check(force=force)
        if r.errors_changed:
            if r.errors:
                for e in r.errors:
                    log.error("floor config: %s", e, extra=_NOBODY)
                log.error(
                    "floor config not applied; %s",
                    "keeping the previous one" if self.floor else "serving consoles without one",
                    extra=_NOBODY,
                )
                self.writer.submit(_counter("floor_config_errors", 1))
            else:
                log.info("floor config is good again", extra=_NOBODY)
        self.floor_errors = list(r.errors)
        floor = r.floor
        if floor is None or not r.changed:
            return
        versions = await self.writer.call(lambda store: store.sync_floor(floor))
        self.floor = floor
        if self.acd is not None:
            self.acd.set_floor(floor)
        log.info(
            "floor %r loaded: %d desks, %d accounts (config versions %s)",
            floor.name,
            len(floor.desks),
            len(floor.accounts),
            ", ".join(f"{k} v{v}" for k, v in sorted(versions.items())),
            extra=_NOBODY,
        )
        for device_id, worker in list(self.by_device.items()):
            session = worker.session
            if session is None or session.state != ONLINE:
                continue
            config = await self.writer.call(lambda store, d=device_id: store.config_for_console(d))
            session.want_config(config, time.monotonic())
            session.set_floor(self.floor_light_for(device_id))
            worker.poke()

    # --- called by workers ----------------------------------------------------------
    def hello_lookup(
        self, store: Store, device_id: str, hello: dict[str, Any], port: str, now: float
    ) -> tuple[HelloOutcome, tuple[int, bytes] | None, list[dict[str, Any]]]:
        """On the store thread: record the hello, find config and open escalations."""
        outcome = store.hello(device_id, hello, port, now)
        config = store.config_for_console(device_id)
        escalations = []
        for esc in store.open_escalations(device_id):
            deadline = esc.get("deadline")
            left = NO_DEADLINE if deadline is None else int(deadline - now)
            escalations.append(
                {
                    "esc_seq": esc["esc_seq"],
                    "kind": esc.get("kind", 0),
                    "status": esc["status"],
                    "ticket": esc.get("ticket", "") or "",
                    "deadline_s": max(-NO_DEADLINE, min(NO_DEADLINE, left)),
                    "hotline": "",
                }
            )
        return outcome, config, escalations

    def claim(self, worker: PortWorker, device_id: str) -> None:
        other = self.by_device.get(device_id)
        if other is not None and other is not worker and other.state == "open":
            log.warning(
                "console %s answers on two ports (%s and %s): serving the newer",
                device_id,
                other.device,
                worker.device,
                extra={"console": device_id, "port": worker.device},
            )
        self.by_device[device_id] = worker
        if self.floor is not None and self.floor.desk_for_console(device_id) is None:
            log.warning(
                "console %s is not on the floor config: its events are stored, "
                "but it gets no account config until a desk names it",
                device_id,
                extra={"console": device_id, "port": worker.device},
            )
            self.writer.submit(_counter("unknown_consoles", 1))

    def floor_light_for(self, device_id: str) -> FloorLight:
        # The ACD feed's light for the desk's queues; one set by hand
        # (floor-light) where no ACD feeds the daemon.
        if self.acd is not None and device_id in self.acd.lights:
            return self.acd.lights[device_id]
        if self.floor is None:
            return FloorLight()
        desk = self.floor.desk_for_console(device_id)
        if desk is None:
            return FloorLight()
        return self.lights.get(desk.account, FloorLight())

    def command_finished(self, worker: PortWorker, cmd: Command) -> None:
        ok = cmd.status == codec.OK
        log.log(
            logging.INFO if ok else logging.WARNING,
            "%s command %s: %s",
            cmd.kind,
            "done" if ok else f"failed ({cmd.status})",
            cmd.text,
            extra={"console": worker.device_id or "-", "port": worker.device},
        )
        if cmd.kind == "repl" and ok:
            worker.release()

    # --- control requests -----------------------------------------------------------
    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown op {op!r}"}
        result: dict[str, Any] = await handler(req)
        return result

    def _worker(self, req: dict[str, Any]) -> PortWorker:
        if "device" in req:
            worker = self.by_device.get(str(req["device"]))
            if worker is None:
                raise DesklineError(f"no console {req['device']!r} has said hello on any port")
            return worker
        if "port" in req:
            port = str(req["port"])
            for w in self.workers.values():
                if w.device == port or Path(w.device).resolve() == Path(port).resolve():
                    return w
            raise DesklineError(f"the daemon does not serve port {port}")
        raise DesklineError("name a console (device) or a port")

    async def _run_command(self, worker: PortWorker, what: str, **fields: Any) -> dict[str, Any]:
        fut: asyncio.Future[Command] = asyncio.get_running_loop().create_future()

        def done(cmd: Command) -> None:
            if not fut.done():
                fut.set_result(cmd)

        worker.command(what, on_done=done, **fields)
        cmd = await fut
        return {
            "ok": cmd.status == codec.OK,
            "status": cmd.status,
            "text": cmd.text,
            "device": worker.device_id,
            "port": worker.device,
        }

    async def _op_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "started": self.started}

    async def _op_devices(self, req: dict[str, Any]) -> dict[str, Any]:
        rows = await self.writer.call(lambda store: store.devices())
        live = {w.device_id: w for w in self.workers.values() if w.device_id}
        for row in rows:
            w = live.get(row["device_id"])
            row["link"] = _link(w) if w else {"state": "absent"}
        known = {row["device_id"] for row in rows}
        extra = [
            {"device_id": None, "port": w.device, "link": _link(w)}
            for w in self.workers.values()
            if not w.device_id or w.device_id not in known
        ]
        return {"ok": True, "devices": rows + extra}

    async def _op_status(self, req: dict[str, Any]) -> dict[str, Any]:
        floor = self.floor
        desks = [
            self._desk_view(device_id, desk.name, desk.account, desk.agent, desk.row, desk.col)
            if desk is not None
            else self._desk_view(device_id, "", "", None, 0, 0)
            for device_id, desk in placements(floor, self.by_device)
        ]
        return {
            "ok": True,
            "floor": floor.name if floor else "",
            "floor_errors": self.floor_errors,
            "events_per_s": round(self.writer.current_rate(), 1),
            "committed_events": self.writer.committed_events,
            "store_failures": self.writer.failures,
            "ports": len(self.workers),
            "online": sum(
                1 for w in self.workers.values() if w.session and w.session.state == ONLINE
            ),
            "desks": desks,
            "lights": {k: vars(v) for k, v in self.lights.items()},
            "service": self.acd.summary() if self.acd else [],
        }

    def _desk_view(
        self, device_id: str, desk: str, account: str, agent: str | None, row: int, col: int
    ) -> dict[str, Any]:
        w = self.by_device.get(device_id)
        s = w.session if w else None
        view: dict[str, Any] = {
            "desk": desk,
            "console": device_id,
            "account": account,
            "agent": agent,
            "row": row,
            "col": col,
            "online": bool(w and w.online),
            "link": _link(w) if w else {"state": "absent"},
            "mirror": dict(s.status_mirror) if s else {},
            "floor_light": vars(self.floor_light_for(device_id)),
        }
        return view

    async def _op_floor(self, req: dict[str, Any]) -> dict[str, Any]:
        account = str(req["account"])
        band = req.get("band", "unknown")
        light = FloorLight(
            band=BANDS[band] if isinstance(band, str) else int(band),
            sl_permille=int(req.get("sl_permille", 0)),
            target_pct=int(req.get("target_pct", 80)),
            waiting=int(req.get("waiting", 0)),
            longest_wait=int(req.get("longest_wait", 0)),
        )
        self.lights[account] = light
        sent = 0
        for device_id, worker in self.by_device.items():
            if worker.session is None:
                continue
            light_now = self.floor_light_for(device_id)
            if light_now is light:
                worker.session.set_floor(light)
                worker.poke()
                sent += 1
        return {"ok": True, "consoles": sent}

    async def _op_call(self, req: dict[str, Any]) -> dict[str, Any]:
        op = 1 if req.get("action", "start") == "start" else 0
        return await self._run_command(
            self._worker(req),
            "call",
            op=op,
            call_id=str(req.get("call_id", "")),
            queue=str(req.get("queue", "")),
        )

    async def _op_escalation(self, req: dict[str, Any]) -> dict[str, Any]:
        worker = self._worker(req)
        status = req["status"]
        code = ESC_NAMES[status] if isinstance(status, str) else int(status)
        esc_id = int(req["esc_id"])
        deadline_s = req.get("deadline_s")
        now = time.time()
        try:
            await self.writer.call(
                lambda store: store.set_escalation_status(
                    worker.device_id,
                    esc_id,
                    code,
                    now,
                    ticket=str(req.get("ticket", "")),
                    deadline=None if deadline_s is None else now + float(deadline_s),
                    note=str(req.get("note", "")),
                )
            )
        except (KeyError, ValueError) as e:
            raise DesklineError(
                f"console {worker.device_id}: cannot set escalation {esc_id} to {status!r}: {e}"
            ) from e
        return await self._run_command(
            worker,
            "esc_status",
            esc_id=esc_id,
            kind=int(req.get("kind", 0)),
            status=code,
            deadline_s=NO_DEADLINE if deadline_s is None else int(deadline_s),
            ticket=str(req.get("ticket", "")),
            hotline=str(req.get("hotline", "")),
        )

    async def _op_reboot(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self._run_command(self._worker(req), "reboot", mode=0)

    async def _op_repl(self, req: dict[str, Any]) -> dict[str, Any]:
        worker = self._worker(req)
        reply = await self._run_command(worker, "repl")
        if reply["ok"]:
            await self._closed(worker)
            reply["hint"] = (
                f"the console's REPL is free on {reply['port']}: use mpremote there, "
                f"then `deskline console attach {reply['port']}`"
            )
        return reply

    async def _op_release(self, req: dict[str, Any]) -> dict[str, Any]:
        worker = self._worker(req)
        worker.release()
        await self._closed(worker)
        return {"ok": True, "port": worker.device, "device": worker.device_id}

    @staticmethod
    async def _closed(worker: PortWorker) -> None:
        """Until the port is really closed: the caller's next tool opens it."""
        for _ in range(100):
            if worker.ser is None:
                return
            await asyncio.sleep(0.02)

    async def _op_attach(self, req: dict[str, Any]) -> dict[str, Any]:
        worker = self._worker(req)
        worker.attach()
        return {"ok": True, "port": worker.device, "device": worker.device_id}

    async def _op_reload(self, req: dict[str, Any]) -> dict[str, Any]:
        errors = await self.reload_floor()
        return {"ok": not errors, "errors": errors}

    async def reload_floor(self) -> list[str]:
        """Re-reads the floor file now and pushes what changed; its errors, if any."""
        await self._check_floor(force=True)
        return list(self.floor_errors)

    async def reboot_console(self, device_id: str) -> dict[str, Any]:
        return await self._run_command(self._worker({"device": device_id}), "reboot", mode=0)

    async def push_config(self, device_id: str) -> dict[str, Any]:
        """Sends the console its account's config again, even at the version it reports."""
        worker = self._worker({"device": device_id})
        session = worker.session
        if session is None or not worker.online:
            raise DesklineError(f"console {device_id} is offline: its config goes when it is back")
        config = await self.writer.call(lambda store: store.config_for_console(device_id))
        if config is None:
            raise DesklineError(
                f"console {device_id} is on no desk of the floor config, so it has no account "
                "config: add a desk naming it"
            )
        session.want_config(config, time.monotonic(), force=True)
        worker.poke()
        return {"device": device_id, "version": config[0]}

    async def _op_dashboard(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **await self.feed.snapshot()}

    async def _help_shown(self) -> None:
        if self.escalations is not None:
            await self.escalations.help_shown("shown on the floor dashboard")

    async def _op_sla(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.acd is None:
            raise DesklineError(
                "the daemon follows no ACD queue_log: start it with --queue-log FILE"
            )
        return {"ok": True, **self.acd.sla(history=bool(req.get("history")))}

    async def _op_update(self, req: dict[str, Any]) -> dict[str, Any]:
        """Starts updating one console from a bundle file (deskline update)."""
        device = str(req["device"])
        bundle = read_bundle(str(req["bundle"]))
        firmware = req.get("firmware")
        if firmware:
            bundle.firmware_entry(None if firmware is True else str(firmware))
        job = UpdateJob(
            device,
            bundle,
            firmware=None if not firmware else "" if firmware is True else str(firmware),
            force=bool(req.get("force")),
        )
        try:
            self.updater.start(job)
        except ValueError as e:
            raise DesklineError(str(e)) from e
        return {"ok": True, "device": device, "version": bundle.version}

    async def _op_update_status(self, req: dict[str, Any]) -> dict[str, Any]:
        """Update jobs, and every console's app as its last hello told."""
        consoles = []
        for device_id, w in sorted(self.by_device.items()):
            s = w.session
            hello = s.hello if s else {}
            consoles.append(
                {
                    "device": device_id,
                    "online": w.online,
                    "app_version": hello.get("app_version", ""),
                    "fw_version": hello.get("fw_version", ""),
                    "app_slot": hello.get("app_slot", 0),
                    "flags": hello.get("flags", 0),
                }
            )
        jobs = [j.view() for j in self.updater.jobs.values()]
        return {"ok": True, "jobs": jobs, "consoles": consoles}

    async def _op_counters(self, req: dict[str, Any]) -> dict[str, Any]:
        counters = await self.writer.call(lambda store: store.counters())
        return {"ok": True, "counters": counters}

    # --- escalations and the HTTP side (docs/escalations.md) ----------------------------
    async def _start_escalations(self) -> None:
        svc = EscalationService(
            self.writer, lambda: self.floor, self.push_escalation, public_url=self.opts.public_url
        )
        self.escalations = svc
        if self.opts.http:
            host, port = parse_address(self.opts.http)
            auth = WebAuth(self.opts.state or self.opts.db.parent, public_read=self.opts.web_public)
            routes = [
                *escalation_routes(svc),
                *auth_routes(auth),
                *api_routes(self, self.feed, auth),
                *ui_routes(auth),
            ]
            self.web = WebServer(create_app(routes), host, port)
            await self.web.start()
            if not self.opts.public_url and host not in ("0.0.0.0", "::"):
                svc.public_url = self.web.url
            log.info(
                "HTTP on %s: floor dashboard at %s/ (%s), client callbacks",
                self.web.url,
                self.web.url,
                "readable without a login" if self.opts.web_public else "supervisors log in",
                extra=_NOBODY,
            )
        await svc.start()

    async def _stop_escalations(self) -> None:
        if self.web is not None:
            await self.web.stop()
        if self.escalations is not None:
            await self.escalations.stop()

    def push_escalation(
        self, device_id: str, esc: dict[str, Any], on_done: Callable[[int], None] | None = None
    ) -> bool:
        """Sends an escalation's status to its console (ESC_STATUS) if it is
        online; on_done gets the console's RESULT status (-1: no answer)."""
        worker = self.by_device.get(device_id)
        if worker is None or worker.session is None or worker.session.state != ONLINE:
            return False
        worker.command(
            "esc_status",
            on_done=(lambda cmd: on_done(cmd.status if cmd.status is not None else -1))
            if on_done
            else None,
            esc_id=int(esc["esc_seq"]),
            kind=int(esc.get("kind", 0)),
            status=int(esc["status"]),
            deadline_s=int(esc.get("deadline_s", NO_DEADLINE)),
            ticket=str(esc.get("ticket", "")),
            hotline=str(esc.get("hotline", "")),
        )
        return True

    def _service(self) -> EscalationService:
        if self.escalations is None:
            raise DesklineError("the escalation service is not running")
        return self.escalations

    async def _op_escalations(self, req: dict[str, Any]) -> dict[str, Any]:
        svc = self._service()
        if req.get("viewer") == "supervisor":  # help requests shown to a supervisor
            await svc.help_shown(f"listed by {req.get('by') or 'a supervisor'}")
        rows = await svc.listing(open_only=bool(req.get("open")))
        return {"ok": True, "escalations": rows}

    async def _op_escalation_ack(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self._answer(req, "acknowledge")

    async def _op_escalation_resolve(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self._answer(req, "resolve")

    async def _answer(self, req: dict[str, Any], action: str) -> dict[str, Any]:
        result = await self._service().answer(
            str(req["ext_id"]),
            action,
            via=f"supervisor {req.get('by') or '?'} (cli)",
            ticket=str(req.get("ticket", "")),
            note=str(req.get("note", "")),
        )
        return {"ok": True, **result}

    async def _op_web(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": self.web.url if self.web else None,
            "public_url": self.escalations.public_url if self.escalations else "",
        }


def _counter(name: str, n: int) -> Batch:
    return Batch(counters=[(None, name, n)])


def _link(w: PortWorker) -> dict[str, Any]:
    s = w.session
    h = s.health if s else None
    return {
        "state": w.state if not (s and w.state == "open") else s.state,
        "port": w.device,
        "error": w.last_error,
        "reconnects": w.reconnects,
        "frames_in": h.frames_in if h else 0,
        "bad_frames": (h.bad_frames + h.bad_schema) if h else 0,
        "duplicates": h.duplicates if h else 0,
        "out_of_order": h.out_of_order if h else 0,
        "acked": s.acked if s else 0,
        "last_frame_age": round(time.monotonic() - h.last_frame, 1) if h and h.last_frame else None,
    }


class _Formatter(logging.Formatter):
    """`time level console=… port=… message`, or one JSON object per line."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        console = getattr(record, "console", "-")
        port = getattr(record, "port", "-")
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if self.as_json:
            return json.dumps(
                {
                    "ts": round(record.created, 3),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "console": console,
                    "port": port,
                    "msg": msg,
                }
            )
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = record.levelname
        return f"{stamp}.{int(record.msecs):03d} {level:<7} console={console} port={port} {msg}"


def setup_logging(as_json: bool = False, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json))
    root = logging.getLogger("deskline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_daemon(opts: DaemonOptions) -> int:
    try:
        asyncio.run(Daemon(opts).run())
    except DesklineError as e:
        log.error("%s", e, extra=_NOBODY)
        return 1
    return 0
