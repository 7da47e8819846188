"""Deploys an app bundle and a console's provisioning through its raw REPL.

For a console that has MicroPython and nothing else (`deskline flash` calls
this right after writing the firmware), or one whose app must be replaced
by hand.  The app goes into the slot the console does not boot, every file
is hashed on the console, and only then is that slot named in `/slot`
(an atomic rename): a cut cable or a power cut half-way leaves the console
booting what it booted before.

Speed: MicroPython's raw-paste mode carries one small receiver function;
the files then stream as base64 lines (512 bytes each, acknowledged one by
one so a small UART buffer never overflows): ~4.9 KB/s at 115200 baud on a
virtual console, where `mpremote fs cp` (repr() chunks of 256 bytes) gets
~3 KB/s.  Files the console already holds (same SHA-256) are not sent
again.  Updates of a running floor go through the daemon instead
(deskline.update: 10 KB/s on the same line).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Callable
from typing import Any

import serial

from deskline.bundle import ARCHES, Bundle
from deskline.errors import DesklineError
from deskline.serial_link import open_port
from deskline.wire import codec, encode

LINE = 512  # raw bytes per base64 line
TIMEOUT_S = 5.0
_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
# bootslot.py's files of an update in progress: a deploy starts afresh.
_UPDATE_STATE = ("trial", "rollback", "fwtry", "fwnext")

# Runs on the console: the receiver and a few helpers, defined once.
_HELPER = """\
import os, sys, binascii, hashlib, json
_dl_wdt = None
try:
    # An app that ran armed the watchdog, and nothing stops it: feed it.
    import board
    _dl_wdt = board.make().wdt
except Exception:
    pass
def _dl_feed():
    if _dl_wdt is not None:
        _dl_wdt.feed()
def _dl_sha(p):
    h = hashlib.sha256()
    b = bytearray(512)
    try:
        with open(p, 'rb') as f:
            while True:
                n = f.readinto(b)
                if not n:
                    break
                h.update(memoryview(b)[:n])
        _dl_feed()
    except OSError:
        return ''
    return binascii.hexlify(h.digest()).decode()
def _dl_put(p, size):
    h = hashlib.sha256()
    got = 0
    with open(p + '.new', 'wb') as f:
        while got < size:
            d = binascii.a2b_base64(sys.stdin.readline())
            f.write(d)
            h.update(d)
            got += len(d)
            _dl_feed()
            sys.stdout.write('.')
    os.rename(p + '.new', p)
    print(binascii.hexlify(h.digest()).decode())
def _dl_mkdir(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
def _dl_rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
def _dl_ls(d):
    try:
        return [e[0] for e in os.ilistdir(d) if e[1] != 0x4000]
    except OSError:
        return []
"""


class RawRepl:
    """MicroPython's raw REPL on a serial port (the protocol mpremote speaks)."""

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = port
        self.ser = open_port(port, baud)
        self.paste = True  # raw-paste mode until the console says it lacks it

    def close(self) -> None:
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> RawRepl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- bytes ----------------------------------------------------------------------
    def _read_until(self, end: bytes, timeout: float = TIMEOUT_S) -> bytes:
        buf = bytearray()
        deadline = time.monotonic() + timeout
        while not buf.endswith(end):
            if time.monotonic() > deadline:
                raise DesklineError(
                    f"{self.port}: the console stopped answering at its REPL "
                    f"(waiting for {end!r}, got {bytes(buf[-60:])!r})"
                )
            chunk = self.ser.read(max(1, min(self.ser.in_waiting, len(end))))
            buf += chunk
        return bytes(buf)

    def _read(self, n: int, timeout: float = TIMEOUT_S) -> bytes:
        """n bytes, or fewer if the console fell silent for timeout."""
        buf = bytearray()
        deadline = time.monotonic() + timeout
        while len(buf) < n and time.monotonic() < deadline:
            buf += self.ser.read(n - len(buf))
        return bytes(buf)

    def _drain(self, quiet: float = 0.1) -> bytes:
        out = bytearray()
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            chunk = self.ser.read(self.ser.in_waiting or 1)
            if chunk:
                out += chunk
                end = time.monotonic() + quiet
        return bytes(out)

    # --- entering -------------------------------------------------------------------
    def enter(self) -> None:
        """Into the raw REPL; a running Deskline app is asked to leave first."""
        for attempt in range(3):
            self.ser.write(b"\r\x03\x03")
            time.sleep(0.05)
            self._drain(0.1)
            self.ser.write(b"\r\x01")
            try:
                self._read_until(_BANNER, 1.5)
                return
            except DesklineError:
                pass
            if attempt == 0:
                # The app runs with Ctrl-C off: the protocol's REPL command
                # asks it to stop and give the REPL back.
                self.ser.write(encode(codec.REPL, cmd_id=0xFFFF))
                time.sleep(1.0)
                self._drain(0.2)
        raise DesklineError(
            f"{self.port}: no MicroPython REPL answers (is MicroPython flashed? "
            "hold ESCALATE while powering up for safe boot)"
        )

    # --- running code -----------------------------------------------------------------
    def _send_code(self, code: bytes) -> None:
        if self.paste:
            self.ser.write(b"\x05A\x01")
            head = self._read_until(b"\x01", 2.0)[-2:]
            if head == b"R\x01":
                window = struct.unpack("<H", self._read(2))[0]
                self._paste(code, window)
                return
            # Understood but unsupported (R\x00), or an old console ("ra...").
            self.paste = False
            self._drain(0.2)
            self.ser.write(b"\x03")
            self._drain(0.1)
        for i in range(0, len(code), 256):
            self.ser.write(code[i : i + 256])
            time.sleep(0.01)
        self.ser.write(b"\x04")
        self._read_until(b"OK")

    def _paste(self, code: bytes, window: int) -> None:
        # The console grants `window` bytes at a time (\x01 per grant).
        remain = window
        i = 0
        while i < len(code):
            while remain == 0 or self.ser.in_waiting:
                b = self._read(1)
                if b == b"\x01":
                    remain += window
                elif b == b"\x04":
                    self.ser.write(b"\x04")
                    raise DesklineError(f"{self.port}: the console refused the code it was sent")
                elif not b:
                    raise DesklineError(f"{self.port}: the console stopped taking code")
            part = code[i : i + remain]
            self.ser.write(part)
            remain -= len(part)
            i += len(part)
        self.ser.write(b"\x04")
        self._read_until(b"\x04")

    def _result(self, timeout: float = TIMEOUT_S) -> str:
        out = self._read_until(b"\x04", timeout)[:-1]
        err = self._read_until(b"\x04", timeout)[:-1]
        self._read_until(b">", timeout)
        if err.strip():
            text = err.decode(errors="replace").strip().splitlines()
            raise DesklineError(f"{self.port}: the console failed: {text[-1] if text else err!r}")
        return out.decode(errors="replace")

    def exec(self, code: str, timeout: float = TIMEOUT_S) -> str:
        """Runs code on the console; its stdout, or DesklineError with its error."""
        self._send_code(code.encode())
        return self._result(timeout)

    def put(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Writes path on the console (atomically: a .new file renamed)."""
        self._send_code(f"_dl_put({path!r}, {len(data)})".encode())
        for i in range(0, len(data), LINE):
            chunk = data[i : i + LINE]
            self.ser.write(base64.b64encode(chunk) + b"\n")
            ack = self._read(1)
            if ack != b".":
                # It stopped taking lines: what it says next is why.
                self.ser.write(b"\x03")
                rest = ack + self._drain(0.5)
                raise DesklineError(
                    f"{self.port}: writing {path} failed at byte {i}: "
                    f"{rest.decode(errors='replace').strip()[-200:]}"
                )
            if progress is not None:
                progress(len(chunk))
        got = self._result().strip().splitlines()
        want = hashlib.sha256(data).hexdigest()
        if not got or got[-1] != want:
            raise DesklineError(f"{self.port}: {path} arrived damaged (sha256 {got[-1:]})")


def console_arch(mpy: int) -> tuple[str, str]:
    """(arch, mpy version) from sys.implementation._mpy."""
    index = mpy >> 10
    arch = ARCHES[index] if index < len(ARCHES) else "?"
    return arch, f"{mpy & 0xFF}.{(mpy >> 8) & 3}"


def deploy_app(
    port: str,
    bundle: Bundle,
    provision: dict[str, str],
    progress: Callable[[int, int], None] | None = None,
    reset: bool = True,
) -> dict[str, Any]:
    """Writes bundle and provision onto the console at port; returns a report.

    provision keys (all optional): "name" (device name), "board" (board
    file JSON text), "account" (client account key), "fleet_key" (the fleet
    public key, 64 hex digits).  progress(done_bytes, total_bytes) follows
    the files going over.  The console restarts into the app unless reset
    is False.
    """
    started = time.monotonic()
    with RawRepl(port) as repl:
        repl.enter()
        repl.exec(_HELPER)
        probe = json.loads(
            repl.exec(
                "print(json.dumps({'mpy': sys.implementation._mpy, "
                "'slot': open('/slot').read().strip() if 'slot' in _dl_ls('/') else '', "
                "'root': _dl_ls('/')}))"
            )
        )
        arch, mpy = console_arch(int(probe["mpy"]))
        if (arch, mpy) != (bundle.arch, bundle.mpy):
            raise DesklineError(
                f"{port}: bundle {bundle.version} is built for {bundle.arch} mpy {bundle.mpy}, "
                f"the console runs {arch} mpy {mpy}: build it with `deskline bundle --target ...`"
            )
        slot = "b" if probe["slot"] == "a" else "a"
        files = _layout(bundle, slot, provision)
        shas = json.loads(
            repl.exec(
                "_dl_mkdir('/" + slot + "')\n"
                "print(json.dumps({p: _dl_sha(p) for p in " + repr(list(files)) + "}))",
                timeout=60.0,
            )
        )
        todo = {p: d for p, d in files.items() if shas.get(p) != hashlib.sha256(d).hexdigest()}
        total = sum(len(d) for d in todo.values())
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        for path, data in todo.items():
            repl.put(path, data, step)
        # What the bundle does not have goes: stale modules in the slot and
        # at the root (an old layout), and any update in progress.
        keep = [p for p in files if p.startswith(f"/{slot}/")]
        stale = [f"/{slot}/{n}" for n in _ls(repl, f"/{slot}") if f"/{slot}/{n}" not in keep]
        stale += [
            f"/{n}"
            for n in probe["root"]
            if (n.endswith((".py", ".mpy")) and f"/{n}" not in files) or n in _UPDATE_STATE
        ]
        repl.exec(
            "for p in " + repr(stale) + ":\n    _dl_rm(p)\n"
            "with open('/slot.new', 'w') as f:\n    f.write(" + repr(slot) + ")\n"
            "os.rename('/slot.new', '/slot')\n"
        )
        if reset:
            # machine.reset on a console; the virtual one's MCU restarts on exit.
            repl._send_code(
                b"try:\n    import machine\n    machine.reset()\n"
                b"except (ImportError, AttributeError):\n    sys.exit()\n"
            )
    return {
        "status": "installed",
        "version": bundle.version,
        "slot": slot,
        "files": len(todo),
        "unchanged": len(files) - len(todo),
        "bytes": total,
        "seconds": round(time.monotonic() - started, 1),
    }


def _ls(repl: RawRepl, d: str) -> list[str]:
    names: list[str] = json.loads(repl.exec(f"print(json.dumps(_dl_ls({d!r})))"))
    return names


def _layout(bundle: Bundle, slot: str, provision: dict[str, str]) -> dict[str, bytes]:
    """Console path -> content: the loader at the root, the app in slot."""
    files: dict[str, bytes] = {}
    for e in bundle.entries:
        if e.kind == "loader":
            files[f"/{e.name}"] = bundle.files[e.name]
        elif e.kind == "file":
            files[f"/{slot}/{e.name}"] = bundle.files[e.name]
    files[f"/{slot}/MANIFEST"] = bundle.manifest
    files[f"/{slot}/MANIFEST.sig"] = bundle.signature
    if provision.get("board"):
        files["/board.json"] = provision["board"].encode()
    if provision.get("fleet_key"):
        key = provision["fleet_key"].strip().lower()
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise DesklineError("the fleet key to provision is not 64 hex digits")
        files["/fleet.pub"] = (key + "\n").encode()
    ident = {k: provision[k] for k in ("name", "account") if provision.get(k)}
    if ident:
        files["/provision.json"] = json.dumps(ident, sort_keys=True).encode()
    return files
