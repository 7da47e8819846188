"""Updates end to end: the daemon streams signed bundles into virtual consoles.

One daemon serves every console of the module (found by glob); bundles are
built once.  Covered: a canary-first rollout while the desk keeps working,
a broken app rolled back by the console itself (and the rollout halted),
unsigned/tampered/foreign bundles refused, updates interrupted at random
points (daemon kill -9, unplug, power cut, line noise) that always leave a
console booting an app, MicroPython OTA with rollback, and the raw-REPL
deploy checked with real mpremote.  The windowed sender is tested sans-IO.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from deskline import bundle as B
from deskline import control
from deskline.cli import main
from deskline.deploy import deploy_app
from deskline.firmware import updcodes as upd
from deskline.sim import ota
from deskline.sim.console import Faults, VirtualConsole
from deskline.wire import codec
from deskline.xferout import CHUNK, WINDOW, FileSend

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
BOARDS = Path(__file__).resolve().parents[1] / "hardware" / "boards"
TERMINAL = ("done", "failed", "rolled_back", "up_to_date")


def wait(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or pred}")


class Rig:
    """A daemon, a fleet key, bundles, and virtual consoles it serves."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.key = Ed25519PrivateKey.generate()
        self.pub = B.public_bytes(self.key)
        self.state = work / "state"
        self.sock = self.state / "deskline.sock"
        self.daemon: subprocess.Popen[bytes] | None = None
        self.consoles: list[VirtualConsole] = []
        self.bundles: dict[str, Path] = {}
        self._log: Any = None

    # --- bundles ------------------------------------------------------------------
    def make_bundles(self) -> None:
        arch = B.native_arch()
        files = B.compile_app(arch, "2.0.0")
        mpy = B.mpy_version()
        v2 = B.sign_bundle(self.key, "2.0.0", arch, mpy, files)
        self.save("v2", v2)
        # Two more versions, each with 32 KB that no slot holds yet (a module
        # nobody imports): their streams take seconds on a paced line.
        for v in ("3.0.0", "4.0.0"):
            more = dict(B.compile_app(arch, v), **{"pad.mpy": random.Random(v).randbytes(32768)})
            self.save("v" + v[0], B.sign_bundle(self.key, v, arch, mpy, more))
        # An app that crashes as it loads: a module the app imports raises.
        broken = dict(files, **{"display.mpy": _compile("raise ValueError('broken build')\n")})
        self.save("broken", B.sign_bundle(self.key, "2.6.6", arch, mpy, broken))
        other = Ed25519PrivateKey.generate()
        self.save("foreign", B.sign_bundle(other, "2.0.1", arch, mpy, files))
        forged = B.sign_bundle(self.key, "2.0.2", arch, mpy, files)
        # A manifest edited after signing (a file swapped for another).
        swapped = dict(files, **{"display.mpy": files["leds.mpy"]})
        forged_manifest = B.make_manifest("2.0.2", arch, mpy, swapped, self.pub)
        self.save(
            "tampered",
            B.Bundle(
                "2.0.2",
                arch,
                mpy,
                forged.key_id,
                forged_manifest,
                forged.signature,
                B.parse_manifest(forged_manifest)[1],
                swapped,
            ),
        )
        self.save(
            "unsigned",
            B.Bundle("2.0.3", arch, mpy, v2.key_id, v2.manifest, bytes(64), v2.entries, files),
        )
        fw = {"micropython.bin": ota.fake_image("1.30.0", 48 * 1024)}
        self.save("fw", B.sign_bundle(self.key, "2.0.0", arch, mpy, {**files, **fw}, frozenset(fw)))
        panic = {"micropython.bin": ota.fake_image("1.31.0", 48 * 1024, panic=True)}
        self.save(
            "fwpanic",
            B.sign_bundle(self.key, "2.0.0", arch, mpy, {**files, **panic}, frozenset(panic)),
        )

    def save(self, name: str, bundle: B.Bundle) -> None:
        path = self.work / f"{name}.dlb"
        B.write_bundle(bundle, path)
        self.bundles[name] = path

    # --- the daemon -----------------------------------------------------------------
    def start_daemon(self) -> None:
        self._log = open(self.work / "daemon.log", "ab")
        glob = str(self.work / "vc" / "*" / "tty")
        self.daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deskline.cli",
                "daemon",
                "--state",
                str(self.state),
                "--no-usb",
                "--glob",
                glob,
            ],
            stdout=self._log,
            stderr=self._log,
        )
        wait(lambda: self.sock.exists() and self._ping(), 20, "the daemon")

    def _ping(self) -> bool:
        try:
            return bool(self.ask("ping")["ok"])
        except Exception:
            return False

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait(10)
        self._log.close()
        self.daemon = None

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.terminate()
            code = self.daemon.wait(15)
            self._log.close()
            assert code == 0, self.log()[-3000:]
        stops = [threading.Thread(target=vc.stop) for vc in self.consoles]
        for t in stops:
            t.start()
        for t in stops:
            t.join()

    def log(self) -> str:
        return (self.work / "daemon.log").read_text(errors="replace")

    def ask(self, op: str, **req: Any) -> dict[str, Any]:
        return control.request(self.sock, {"op": op, **req}, timeout=20)

    # --- consoles ---------------------------------------------------------------------
    def vc(self, device: str) -> VirtualConsole:
        return next(vc for vc in self.consoles if vc.device_id == device)

    def console(self, device: str, baud: int = 0, faults: Faults | None = None) -> VirtualConsole:
        vc = VirtualConsole(
            self.work / "vc" / device,
            device_id=device,
            baud=baud,
            faults=faults,
            fleet_key=self.pub,
        )
        vc.start()
        self.consoles.append(vc)
        return vc

    def status(self, device: str) -> dict[str, Any]:
        for c in self.ask("update_status")["consoles"]:
            if c["device"] == device:
                return dict(c)
        return {}

    def online(self, device: str, timeout: float = 30.0) -> dict[str, Any]:
        return dict(wait(lambda: (s := self.status(device)).get("online") and s, timeout, device))

    def update(self, device: str, bundle: str, **req: Any) -> dict[str, Any]:
        reply = self.ask("update", device=device, bundle=str(self.bundles[bundle]), **req)
        assert reply["ok"], reply
        return self.job(device)

    def job(
        self,
        device: str,
        timeout: float = 90.0,
        states: Collection[str] = TERMINAL,
        what: str = "",
    ) -> dict[str, Any]:
        """The console's update job once it is in one of these states (by default: ended)."""

        def there() -> dict[str, Any] | None:
            for j in self.ask("update_status")["jobs"]:
                if j["device"] == device and j["state"] in states:
                    return dict(j)
            return None

        return dict(wait(there, timeout, what or f"{device}'s update"))

    def events(self, device: str, kind: int) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{self.state / 'deskline.db'}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(
                "SELECT e.a, e.b, e.c, e.text FROM events e JOIN consoles c ON c.id = e.console_id "
                "WHERE c.device_id = ? AND e.kind = ? ORDER BY e.journal_epoch, e.seq",
                (device, kind),
            ).fetchall()
        finally:
            con.close()


def _compile(source: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "m.py"
        src.write_text(source)
        subprocess.run([B.MPY_CROSS, "-o", str(Path(tmp) / "m.mpy"), str(src)], check=True)
        return (Path(tmp) / "m.mpy").read_bytes()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = Rig(tmp_path_factory.mktemp("update"))
    try:
        # The module's consoles boot while the bundles build and the daemon
        # starts; each test takes the ones it names.
        r.console("desk-a1", baud=115200)  # a paced line: the stream takes seconds
        for d in ("desk-a2", "desk-b1", "desk-b2"):
            r.console(d)
        r.console("desk-e1", faults=Faults(corrupt=0.00005, drop=0.00002, seed=3))
        r.make_bundles()
        r.start_daemon()
        yield r
    finally:
        r.stop()
    for vc in r.consoles:
        tb = vc.traceback()
        # The broken bundle's crash is the one traceback a console may show.
        assert not tb or "broken build" in tb or "OSError" in tb, tb


# --- a rollout ------------------------------------------------------------------------------
def test_canary_first_rollout_while_the_desk_keeps_working(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    paced, fast = rig.vc("desk-a1"), rig.vc("desk-a2")
    for d in ("desk-a1", "desk-a2"):
        rig.online(d)
    pressed: list[int] = []

    def press_while_streaming() -> None:
        # Presses at the desk while the canary's bundle goes over.
        rig.job("desk-a1", 20, {"sending"}, "the stream")
        for key in "1234":
            paced.press(key, ms=80, gap_ms=120)
            pressed.append(int(key))

    presser = threading.Thread(target=press_while_streaming)
    presser.start()
    code = main(
        [
            "update",
            "--bundle",
            str(rig.bundles["v2"]),
            "--console",
            "desk-a1",
            "--console",
            "desk-a2",
            "--canary-console",
            "desk-a1",
            "--control",
            str(rig.sock),
            "--json",
        ]
    )
    presser.join()
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    got = {c["device"]: c for c in report["consoles"]}
    assert got["desk-a1"]["result"] == "updated" and got["desk-a1"]["canary"]
    assert got["desk-a2"]["result"] == "updated" and not got["desk-a2"]["canary"]
    assert got["desk-a1"]["from_version"] == "0.1.0"
    for d in ("desk-a1", "desk-a2"):
        st = rig.status(d)
        assert (st["app_version"], st["app_slot"]) == ("2.0.0", 2)
        assert not st["flags"] & upd.HELLO_TRIAL
        assert rig.events(d, upd.EV_UPDATE)[-1][:2] == (upd.UPD_APP_OK, 2)
    # Every press made during the stream reached the store.
    presses = [row[0] for row in rig.events("desk-a1", codec.EV_PRESS)]
    assert presses[-len(pressed) :] == pressed
    # Again: both are up to date, nothing is sent.
    assert (
        main(
            [
                "update",
                "--bundle",
                str(rig.bundles["v2"]),
                "--console",
                "desk-a2",
                "--control",
                str(rig.sock),
                "--json",
            ]
        )
        == 0
    )
    again = json.loads(capsys.readouterr().out)
    assert again["consoles"][0]["result"] == "up_to_date"
    assert fast.boots == 2  # one restart: into the update


def test_broken_bundle_rolls_back_and_halts_the_rollout(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    for d in ("desk-b1", "desk-b2"):
        rig.online(d)
    code = main(
        [
            "update",
            "--bundle",
            str(rig.bundles["broken"]),
            "--console",
            "desk-b1",
            "--console",
            "desk-b2",
            "--canary",
            "1",
            "--control",
            str(rig.sock),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and "canary desk-b1 rolled back" in report["halted"]
    got = {c["device"]: c["result"] for c in report["consoles"]}
    assert got == {"desk-b1": "rolled_back", "desk-b2": "skipped"}
    st = rig.online("desk-b1")
    assert (st["app_version"], st["app_slot"]) == ("0.1.0", 1)
    assert st["flags"] & upd.HELLO_ROLLED_BACK
    ev = rig.events("desk-b1", upd.EV_UPDATE)[-1]
    assert ev[0] == upd.UPD_APP_ROLLBACK and ev[3] == "2.6.6"
    assert "failed 2 starts" in rig.log()
    # The way forward after a rollback is a fixed bundle.
    assert rig.update("desk-b1", "v2")["state"] == "done"


def test_unsigned_tampered_and_foreign_bundles_are_refused(rig: Rig) -> None:
    before = rig.online("desk-a2")  # on 2.0.0 since the rollout
    for name, why in (
        ("unsigned", "signature does not match"),
        ("foreign", "signature does not match"),
        ("tampered", "signature does not match"),
    ):
        job = rig.update("desk-a2", name, force=True)
        assert job["state"] == "failed" and why in job["error"], (name, job)
    st = rig.status("desk-a2")
    assert (st["app_version"], st["app_slot"]) == (before["app_version"], before["app_slot"])
    assert st["flags"] == 0


# --- interruptions --------------------------------------------------------------------------
def test_interrupted_updates_always_leave_a_console_that_boots_an_app(rig: Rig) -> None:
    rng = random.Random(6)
    vc = rig.vc("desk-a1")  # on 2.0.0 since the rollout; a paced line
    rig.online("desk-a1")

    def mid_stream() -> None:
        rig.job("desk-a1", 20, {"sending"}, "the stream")
        time.sleep(rng.uniform(0.3, 2.0))

    # kill -9 of the daemon mid-stream: the console keeps its app; a new
    # daemon picks the update up again and skips what already arrived.
    assert rig.ask("update", device="desk-a1", bundle=str(rig.bundles["v3"]))["ok"]
    mid_stream()
    rig.kill_daemon()
    time.sleep(0.5)
    rig.start_daemon()
    assert rig.online("desk-a1")["app_version"] == "2.0.0"
    # The cable pulled mid-stream: the job waits and goes on.
    assert rig.ask("update", device="desk-a1", bundle=str(rig.bundles["v3"]))["ok"]
    mid_stream()
    vc.unplug()
    time.sleep(1.0)
    vc.replug()
    job = rig.job("desk-a1")
    assert job["state"] == "done", job
    assert rig.online("desk-a1")["app_version"] == "3.0.0"
    # Power cuts at random points of the next update: mid-stream, then
    # right after the switch (the new app on trial).
    assert rig.ask("update", device="desk-a1", bundle=str(rig.bundles["v4"]))["ok"]
    mid_stream()
    vc.power_cut()
    rig.job("desk-a1", 60, {"trial"}, "the switch")
    vc.power_cut()
    job = rig.job("desk-a1")
    st = rig.online("desk-a1")
    # The trial got a second start and proved itself (or, unlucky, went back).
    assert st["app_version"] in ("3.0.0", "4.0.0")
    if job["state"] != "done":
        assert rig.update("desk-a1", "v4")["state"] == "done"
    assert rig.online("desk-a1")["app_version"] == "4.0.0"


def test_line_noise_costs_resends_not_the_update(rig: Rig) -> None:
    rig.online("desk-e1")
    job = rig.update("desk-e1", "v2")
    assert job["state"] == "done", job
    assert job["resends"] > 0
    assert rig.online("desk-e1")["app_version"] == "2.0.0"


# --- MicroPython itself, through the OTA partitions -------------------------------------------
def test_firmware_ota_confirmed_then_a_bad_one_rolled_back(rig: Rig) -> None:
    vc = rig.vc("desk-b2")  # still on its first app: the firmware, then the app
    rig.online("desk-b2")
    job = rig.update("desk-b2", "fw", firmware=True)
    assert job["state"] == "done", job
    st = ota.state(vc.ota)
    assert (st["running"], st["state"]) == ("ota_1", "valid")
    assert (vc.ota / "ota_1.bin").read_bytes()[: 48 * 1024] == B.read_bundle(
        rig.bundles["fw"]
    ).files["micropython.bin"]
    kinds = [e[0] for e in rig.events("desk-b2", upd.EV_UPDATE)]
    assert kinds == [upd.UPD_FW_OK, upd.UPD_APP_OK]  # the firmware first, then the app
    # A firmware that panics at boot: the bootloader goes back by itself.
    job = rig.update("desk-b2", "fwpanic", firmware=True)
    assert job["state"] == "rolled_back", job
    st = ota.state(vc.ota)
    assert (st["running"], st["aborted"]) == ("ota_1", "ota_0")
    assert rig.online("desk-b2")["app_version"] == "2.0.0"
    # A good firmware is never rolled back by a later power cut.
    vc.power_cut()
    rig.online("desk-b2")
    assert ota.state(vc.ota)["running"] == "ota_1"


# --- deploy through the raw REPL ---------------------------------------------------------------
def test_deploy_through_the_raw_repl_and_mpremote_sees_it(rig: Rig, tmp_path: Path) -> None:
    vc = VirtualConsole(tmp_path / "h", device_id="desk-h1", baud=0)
    vc.start()
    try:
        bundle = B.read_bundle(rig.bundles["v2"])
        seen: list[tuple[int, int]] = []
        board = (BOARDS / "sim.json").read_text()
        report = deploy_app(
            str(vc.port_link),
            bundle,
            {"name": "desk-h1", "account": "acme", "board": board, "fleet_key": rig.pub.hex()},
            lambda done, total: seen.append((done, total)),
        )
        assert report["status"] == "installed" and report["slot"] == "b"
        assert seen[-1][0] == seen[-1][1] == report["bytes"] > 0
        # It restarts into the deployed app.
        from testhost import TestHost

        host = TestHost(str(vc.port_link))
        try:
            hello = host.wait_frame("hello", lambda m: m["app_version"] == "2.0.0", timeout=20)
            assert hello["app_slot"] == 2
            host.keepalive = False
            time.sleep(1.2)
            assert host.command(codec.REPL)["status"] == codec.OK
        finally:
            host.close()
        time.sleep(0.3)
        out = subprocess.run(
            [
                MPREMOTE,
                "connect",
                str(vc.port_link),
                "resume",
                "fs",
                "cat",
                ":/b/MANIFEST",
                "+",
                "fs",
                "cat",
                ":/fleet.pub",
                "+",
                "fs",
                "ls",
                ":/b",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert bundle.manifest.decode() in out.stdout
        assert rig.pub.hex() in out.stdout and "app.mpy" in out.stdout
        # A second deploy sends only what changed (here: nothing but the slot).
        again = deploy_app(str(vc.port_link), bundle, {"fleet_key": rig.pub.hex()}, reset=False)
        assert again["slot"] == "a"
    finally:
        vc.stop()


# --- the windowed sender, sans-IO --------------------------------------------------------------
class _Line:
    def __init__(self) -> None:
        self.frames: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, mtype: int, **fields: Any) -> None:
        self.frames.append((mtype, fields))

    def data(self) -> list[int]:
        return [f["offset"] for t, f in self.frames if t == codec.XFER_DATA]


def _send(size: int) -> tuple[FileSend, _Line, list[FileSend]]:
    done: list[FileSend] = []
    fs = FileSend(codec.XFER_APP_FILE, "x.mpy", os.urandom(size), 9, 1, 2, done.append)
    line = _Line()
    fs.start(0.0, line)
    fs.on_result({"cmd_id": 1, "status": codec.OK, "text": ""}, 0.0, line)
    return fs, line, done


def _ack(fs: FileSend, line: _Line, offset: int, now: float = 0.0) -> None:
    fs.on_ack({"xfer_id": 9, "offset": offset, "status": codec.OK}, now, line)


def test_sender_keeps_a_window_in_flight_and_ends() -> None:
    fs, line, done = _send(CHUNK * 10 + 7)
    assert line.data() == [i * CHUNK for i in range(WINDOW)]
    _ack(fs, line, CHUNK)
    assert line.data()[-1] == WINDOW * CHUNK
    for off in range(2 * CHUNK, fs.size, CHUNK):
        _ack(fs, line, off)
    _ack(fs, line, fs.size)
    assert line.frames[-1][0] == codec.XFER_END and fs.stage == "end"
    fs.on_result({"cmd_id": 2, "status": codec.OK, "text": ""}, 0.0, line)
    assert done == [fs] and fs.status == codec.OK
    assert sorted(set(line.data())) == list(range(0, fs.size, CHUNK))


def test_sender_goes_back_on_a_lost_chunk_and_on_silence() -> None:
    fs, line, _ = _send(CHUNK * 8)
    # Chunk 1 lost: the console acks 512 for every later chunk.
    _ack(fs, line, CHUNK)
    n = len(line.data())
    _ack(fs, line, CHUNK)
    _ack(fs, line, CHUNK)  # the second duplicate: back to 512 at once
    assert line.data()[n:][0] == CHUNK and fs.resends == 1
    # Silence: after STALL_S the window goes again from the acked offset.
    m = len(line.data())
    fs.tick(5.0, line)
    assert line.data()[m] == CHUNK and fs.resends == 2


def test_sender_skips_a_file_the_console_has() -> None:
    done: list[FileSend] = []
    fs = FileSend(codec.XFER_APP_FILE, "x.mpy", b"abc", 9, 1, 2, done.append)
    line = _Line()
    fs.start(0.0, line)
    assert line.data() == [0]  # the first window goes with BEGIN
    fs.on_result({"cmd_id": 1, "status": codec.OK, "text": "present"}, 0.0, line)
    assert line.frames[-1][0] == codec.XFER_END and fs.present
    assert line.data() == [0]
    refused = FileSend(codec.XFER_APP_FILE, "y.mpy", b"abc", 9, 1, 2, done.append)
    refused.start(0.0, line)
    refused.on_result({"cmd_id": 1, "status": upd.E_SIGNATURE, "text": "no"}, 0.0, line)
    assert refused.status == upd.E_SIGNATURE and done[-1] is refused


def test_sender_starts_afresh_when_begins_answer_is_lost() -> None:
    fs, line, _ = _send(CHUNK * 8)
    fs2 = FileSend(codec.XFER_APP_FILE, "y.mpy", os.urandom(CHUNK * 8), 9, 1, 2)
    fs2.start(0.0, line)
    _ack(fs2, line, 2 * CHUNK)  # the window arrived, BEGIN's answer did not
    assert fs2.acked == 2 * CHUNK and fs2.stage == "begin"
    fs2.tick(3.0, line)  # BEGIN again: the console restarts the file at 0
    assert line.frames[-WINDOW - 1][0] == codec.XFER_BEGIN and fs2.acked == 0
    assert line.data()[-WINDOW:] == [i * CHUNK for i in range(WINDOW)]
    assert fs.stage == "data"


def test_sender_gives_up_after_retries() -> None:
    fs, line, done = _send(CHUNK * 8)
    t = 0.0
    for _ in range(10):
        t += 2.0
        fs.tick(t, line)
    assert fs.status == -1 and "no progress" in fs.text and done == [fs]
    digest = hashlib.sha256(fs.data).digest()
    assert line.frames[0][1]["sha256"] == digest
