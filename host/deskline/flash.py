"""Flashing blank consoles: MicroPython onto the chip, then the app, many at once.

esptool does the flashing, each run in its own process: its logger is
process-wide (progress of two chips in one process cannot be told apart), a
crash stays with one port, and esptool's GPL stays on the far side of a
process boundary from our MIT code.  We read its output line by line for
the chip, the MAC, the flash size and the progress.

Per port, in order:

1. the daemon hands the port over, when it serves it (and takes it back at
   the end, whatever happened in between);
2. the port is opened once here, so busy / permission / missing read as
   such instead of as esptool's generic "busy or doesn't exist";
3. identify (`esptool --no-stub flash-id`, left in the loader): chip, MAC, flash size,
   USB serial number; pick the image built for that chip, check it fits;
4. write (`esptool --chip <chip> write-flash --skip-flashed`): esptool
   itself refuses another chip type, and this process compares the MAC the
   writing run prints as it connects with the one identified in step 3, and
   kills the run the moment they differ — while the flasher stub is still
   uploading, long before anything is erased — so a renumbered port never
   gets the wrong image.  (Where the OS knows a USB serial number, it is
   compared too, before the run starts.)  An image already on the chip is
   found by its MD5 and not rewritten; a written one is verified by MD5;
5. the console resets into MicroPython, and the app bundle is deployed and
   the console provisioned (deskline.deploy) once its port is back (a
   native-USB S3 re-enumerates on reset).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deskline import control, ports
from deskline.bundle import TARGETS, Bundle
from deskline.deploy import deploy_app
from deskline.errors import DesklineError
from deskline.fwimage import Chip, FirmwareImage, chip_by_name

UDEV_RULE = "hardware/99-deskline.rules"


class FlashError(DesklineError):
    """A failure on one port; `kind` sorts it for the report and the summary."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class FlashOptions:
    """How to run esptool, and what to do around it."""

    baud: int = 460800
    stub: bool = True  # esptool's flasher stub: compressed 16 KiB blocks
    before: str = "default-reset"
    connect_attempts: int = 4
    # esptool in its own process, through the launcher that spares it its
    # hex formatting (see esptoolrun); (sys.executable, "-m", "esptool") works too.
    esptool: Sequence[str] = (sys.executable, "-m", "deskline.esptoolrun")
    control: Path | None = None  # the daemon's control socket, for the hand-over
    provisioning: Provisioning | None = None
    deploy: DeployFn | None = None  # None: deskline.deploy.deploy_app


@dataclass(frozen=True)
class Provisioning:
    """The app and the console's identity on the floor, installed after flashing.

    The bundle is read and its signature checked once, before any console is
    touched; each console checks it again itself.
    """

    bundle: Bundle
    fleet_key: bytes  # the raw Ed25519 public key the consoles will trust
    name: str | None = None  # a template: {n} (1-based), {mac}, {chip}, {port}
    board: str | None = None  # the board file's JSON text
    account: str | None = None

    @property
    def board_chip(self) -> str | None:
        """The "chip" the board file names (checked against each console)."""
        if self.board is None:
            return None
        try:
            chip = json.loads(self.board).get("chip")
        except (ValueError, AttributeError):
            return None
        return chip if isinstance(chip, str) else None

    def for_console(self, index: int, ident: Identity, port: str) -> dict[str, str]:
        """deploy_app's provision dict for one console."""
        out = {"fleet_key": self.fleet_key.hex()}
        if self.name:
            out["name"] = console_name(self.name, index, ident, port)
        if self.board is not None:
            out["board"] = self.board
        if self.account:
            out["account"] = self.account
        return out


@dataclass
class Identity:
    """Who answers on a port: what the ROM loader says, and the USB serial."""

    chip: Chip
    description: str
    mac: str
    flash_size: int | None
    usb_serial: str | None = None


@dataclass
class Event:
    """Progress of one port, for a progress bar: stage, fraction done, detail."""

    port: str
    stage: str  # handover, identify, write, verify, deploy, done, failed
    done: float = 0.0
    text: str = ""


ProgressFn = Callable[[Event], None]
# deskline.deploy.deploy_app's shape: port, bundle, provision, progress(done, total).
DeployFn = Callable[[str, Bundle, dict[str, str], Callable[[int, int], None]], dict[str, Any]]


@dataclass
class ConsoleResult:
    """What happened on one port: the summary row and the --json record."""

    port: str
    status: str = "failed"  # flashed, up-to-date, failed
    kind: str = ""  # for failures: busy, permission, missing, no-answer, ...
    error: str = ""
    chip: str = ""
    description: str = ""
    mac: str = ""
    usb_serial: str | None = None
    flash_size: int | None = None
    firmware: str = ""
    firmware_md5: str = ""
    version: str = ""
    offset: int | None = None
    handed_over: bool = False
    app: dict[str, Any] | None = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        del out["log"]
        if not self.ok:
            out["esptool_tail"] = self.log[-12:]
        return out


def flash_many(
    port_names: Sequence[str],
    images: Sequence[FirmwareImage],
    opts: FlashOptions,
    progress: ProgressFn | None = None,
) -> list[ConsoleResult]:
    """Flashes every port at once, one thread (and esptool process) each.

    A failure on one port is that port's result; the others carry on.
    """
    if not port_names:
        return []
    with ThreadPoolExecutor(max_workers=len(port_names), thread_name_prefix="flash") as pool:
        futures = [
            pool.submit(flash_console, port, images, opts, progress, index)
            for index, port in enumerate(port_names, start=1)
        ]
        return [f.result() for f in futures]


def flash_console(
    port: str,
    images: Sequence[FirmwareImage],
    opts: FlashOptions,
    progress: ProgressFn | None = None,
    index: int = 1,
) -> ConsoleResult:
    """One port, start to end; never raises (the result says what failed)."""
    result = ConsoleResult(port=port)
    started = time.monotonic()

    def tell(stage: str, done: float = 0.0, text: str = "") -> None:
        if progress is not None:
            progress(Event(port, stage, done, text))

    handover = Handover(opts.control)
    try:
        tell("handover", text="asking the daemon for the port")
        result.handed_over = handover.release(port)
        check_port(port)
        tell("identify", text="connecting to the ROM loader")
        ident = identify(port, opts, result.log)
        result.chip, result.description, result.mac = ident.chip.name, ident.description, ident.mac
        result.flash_size, result.usb_serial = ident.flash_size, ident.usb_serial
        image = pick_image(port, ident, images)
        if opts.provisioning is not None:
            check_provisioning(port, ident, opts.provisioning)
        result.firmware, result.firmware_md5 = str(image.path), image.md5
        result.version, result.offset = image.version, image.offset
        check_fits(port, ident, image)
        tell("write", text=f"{ident.chip.name} {ident.mac}")
        wrote = write(port, ident, image, opts, result.log, tell)
        result.status = "flashed" if wrote else "up-to-date"
        if opts.provisioning is not None:
            tell("deploy", text="installing the app")
            wait_for_port(port)
            result.app = deploy(port, ident, opts, index, tell)
        tell("done", 1.0, result.status)
    except FlashError as e:
        result.status, result.kind, result.error = "failed", e.kind, str(e)
        tell("failed", text=e.kind)
    except DesklineError as e:
        result.status, result.kind, result.error = "failed", "error", str(e)
        tell("failed", text="error")
    except Exception as e:  # one port's bug must not end the other ports' runs
        result.status, result.kind, result.error = "failed", "internal", f"{type(e).__name__}: {e}"
        tell("failed", text="internal error")
    finally:
        try:
            handover.attach(port)
        except DesklineError as e:
            result.error = (result.error + "; " if result.error else "") + str(e)
            result.status, result.kind = "failed", result.kind or "daemon"
        result.seconds = round(time.monotonic() - started, 2)
    return result


# --- the daemon's port -----------------------------------------------------------


class Handover:
    """Borrows a port from the daemon (control ops release/attach), if it serves it."""

    def __init__(self, control_path: Path | None) -> None:
        self.control_path = control_path
        self.released: str | None = None

    def release(self, port: str) -> bool:
        if self.control_path is None or not control.listening(self.control_path):
            return False
        reply = control.request(self.control_path, {"op": "release", "port": port})
        if reply.get("ok"):
            self.released = port
            return True
        error = str(reply.get("error", ""))
        if "does not serve" in error:
            return False
        raise FlashError("daemon", f"the daemon would not hand over {port}: {error}")

    def attach(self, port: str) -> None:
        if self.released is None or self.control_path is None:
            return
        self.released = None
        reply = control.request(self.control_path, {"op": "attach", "port": port})
        if not reply.get("ok"):
            raise FlashError(
                "daemon",
                f"the daemon did not take {port} back ({reply.get('error')}); "
                f"run `deskline console attach {port}`",
            )


# --- the port itself ---------------------------------------------------------------


def check_port(port: str) -> None:
    """Opens the port exclusively once, to name busy / permission / missing clearly."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise _open_error(port, e) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as e:
        raise _open_error(port, e) from e
    finally:
        os.close(fd)


def busy_message(port: str) -> str:
    return (
        f"port busy: {port} is held by another program. If it is the deskline daemon, "
        "let `deskline flash` reach its control socket (--state/--control) and it hands the "
        f"port over by itself, or run `deskline console release {port}` first and "
        f"`deskline console attach {port}` after; otherwise close the program holding it "
        f"(`fuser -v {port}` names it: screen, minicom, mpremote, a serial monitor)"
    )


def _open_error(port: str, e: OSError) -> FlashError:
    if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
        return FlashError("busy", busy_message(port))
    if e.errno in (errno.EACCES, errno.EPERM):
        return FlashError(
            "permission",
            f"permission denied on {port}: add yourself to the dialout group "
            "(`sudo usermod -aG dialout $USER`, then log out and back in) or install "
            f"the udev rule: `sudo cp {UDEV_RULE} /etc/udev/rules.d/ && "
            "sudo udevadm control --reload && sudo udevadm trigger`, then replug",
        )
    if e.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
        return FlashError(
            "missing",
            f"no console on {port}: is it plugged in (and the cable a data cable)? "
            "`deskline flash --all` finds consoles by their USB ids",
        )
    return FlashError("port", f"cannot open {port}: {e.strerror or e}")


def wait_for_port(port: str, timeout: float = 10.0) -> None:
    """Until the port exists again after a reset (USB re-enumeration)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(port):
        if time.monotonic() > deadline:
            raise FlashError(
                "missing",
                f"{port} did not come back within {timeout:.0f} s of the reset: the firmware "
                "is written; replug the console and run the command again (it skips the "
                "firmware and installs the app)",
            )
        time.sleep(0.1)


def usb_serial(port: str) -> str | None:
    """The USB serial number behind a port, when the OS knows it."""
    found = ports.scan(explicit=[port], usb=False)
    return found[0].serial_number if found else None


# --- esptool runs ----------------------------------------------------------------

_CONNECTED = re.compile(r"Connected to (\S+) on ")
_CHIP_TYPE = re.compile(r"^Chip type:\s+(.+)$")
_MAC = re.compile(r"^MAC:\s+([0-9a-fA-F:]{17})")
_FLASH_SIZE = re.compile(r"^Detected flash size:\s+(\d+)\s*([KM])B")
_WRITING = re.compile(r"^Writing at 0x[0-9a-fA-F]+\s.*?(\d+(?:\.\d+)?)%")
_WRONG_CHIP = re.compile(r"This chip is (\S+), not (\S+)\.")
_FATAL = re.compile(r"A fatal error occurred:\s*(.*)")


def identify(port: str, opts: FlashOptions, log: list[str]) -> Identity:
    """Chip, MAC and flash size, from `esptool flash-id`; the chip stays in its loader."""
    serial_before = usb_serial(port)
    info: dict[str, str] = {}

    def on_line(line: str) -> str | None:
        _collect(line, info)
        return None

    run = _esptool(
        port,
        ["flash-id"],
        opts,
        log,
        on_line,
        timeout=30 + 5 * opts.connect_attempts,
        baud=115200,
        after="no-reset",
        # The ROM reads the flash id as well as the stub does; uploading the
        # stub just to ask would cost a second of the line at 115200.
        stub=False,
    )
    if run.killed:
        raise _stalled(port, run.killed)
    if run.rc != 0:
        raise _esptool_error(port, log)
    chip = chip_by_name(info.get("chip", ""))
    if chip is None:
        raise FlashError(
            "wrong-chip",
            f"{port} is an {info.get('chip') or 'unknown chip'}; Deskline consoles are "
            "ESP32, ESP32-S3 or ESP32-C3",
        )
    if "mac" not in info:
        raise FlashError("esptool", f"esptool did not report the MAC of the console on {port}")
    size = int(info["size"]) if "size" in info else None
    return Identity(chip, info.get("description", chip.name), info["mac"], size, serial_before)


def pick_image(port: str, ident: Identity, images: Sequence[FirmwareImage]) -> FirmwareImage:
    for image in images:
        if image.chip == ident.chip:
            return image
    have = ", ".join(f"{i.path.name} ({i.chip.name})" for i in images)
    raise FlashError(
        "wrong-chip",
        f"{port} is an {ident.chip.name} ({ident.mac}) but the firmware given is for "
        f"another chip: {have}. Pass the MicroPython firmware for {ident.chip.name} "
        "(--firmware can be given once per chip)",
    )


def check_fits(port: str, ident: Identity, image: FirmwareImage) -> None:
    if ident.flash_size is not None and image.offset + image.size > ident.flash_size:
        raise FlashError(
            "too-large",
            f"{image.path.name} ({image.size} bytes from {image.offset:#x}) does not fit the "
            f"{_size(ident.flash_size)} of flash of the console on {port} ({ident.mac}): use "
            "the firmware built for this board's flash size",
        )


def write(
    port: str,
    ident: Identity,
    image: FirmwareImage,
    opts: FlashOptions,
    log: list[str],
    tell: Callable[[str, float, str], None],
) -> bool:
    """Writes and verifies the image; False when it was already on the chip."""
    serial_now = usb_serial(port)
    if ident.usb_serial and serial_now != ident.usb_serial:
        raise _renumbered(port, ident, f"USB serial {serial_now or 'none'}")
    seen: dict[str, str] = {}

    def on_line(line: str) -> str | None:
        _collect(line, seen)
        if "mac" in seen and seen["mac"] != ident.mac:
            return f"MAC {seen['mac']}"
        m = _WRITING.match(line)
        if m:
            tell("write", float(m.group(1)) / 100, f"{ident.chip.name} {ident.mac}")
        elif line.startswith("Verifying written data"):
            tell("verify", 1.0, "MD5 check")
        elif line.startswith("Comparing flash contents"):
            tell("verify", 0.0, "comparing with the flash")
        return None

    wire_s = image.size * 10 / max(opts.baud, 9600) * (1 if opts.stub else 3)
    run = _esptool(
        port,
        ["write-flash", "--skip-flashed", f"{image.offset:#x}", str(image.path)],
        opts,
        log,
        on_line,
        timeout=60 + 5 * opts.connect_attempts + 3 * wire_s,
        chip=ident.chip,
        after="hard-reset",
    )
    if run.timed_out:
        raise _stalled(port, run.killed)
    if run.killed:
        raise _renumbered(port, ident, run.killed)
    if run.rc != 0:
        raise _esptool_error(port, log, ident)
    if any("already in flash, skipping write" in line for line in log):
        return False
    if not any(line.startswith("Hash of data verified") for line in log):
        raise FlashError(
            "verify-failed", f"esptool did not confirm the MD5 of what it wrote to {port}"
        )
    return True


def _stalled(port: str, why: str) -> FlashError:
    return FlashError(
        "no-answer", f"{why} on {port}: check the cable and the hub, then run the command again"
    )


def _renumbered(port: str, ident: Identity, now: str) -> FlashError:
    return FlashError(
        "identity-changed",
        f"the console on {port} changed: identified as {ident.chip.name} {ident.mac}, now "
        f"{now}. The ports were renumbered (a console unplugged or replugged?); nothing was "
        "written to it. Run the command again",
    )


def _collect(line: str, info: dict[str, str]) -> None:
    if m := _CONNECTED.search(line):
        info["chip"] = m.group(1)
    elif m := _CHIP_TYPE.match(line):
        info["description"] = m.group(1).strip()
    elif m := _MAC.match(line):
        info["mac"] = m.group(1).lower()
    elif m := _FLASH_SIZE.match(line):
        info["size"] = str(int(m.group(1)) << (20 if m.group(2) == "M" else 10))


def _esptool(
    port: str,
    command: list[str],
    opts: FlashOptions,
    log: list[str],
    on_line: Callable[[str], str | None],
    timeout: float,
    baud: int | None = None,
    after: str = "hard-reset",
    chip: Chip | None = None,
    stub: bool = True,
) -> _Run:
    """Runs esptool on one port; on_line may return a reason to kill it at once."""
    argv = [
        *opts.esptool,
        "--port",
        port,
        "--baud",
        str(baud or opts.baud),
        "--before",
        opts.before,
        "--after",
        after,
        "--connect-attempts",
        str(opts.connect_attempts),
    ]
    if chip is not None:
        argv += ["--chip", chip.key]
    if not (opts.stub and stub):
        argv.append("--no-stub")
    argv += command
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", TERM="dumb", COLUMNS="120")
    log.append("$ " + " ".join(argv[len(opts.esptool) :]))
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    killed = ""
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = killed or f"esptool did not finish within {timeout:.0f} s"
                timed_out = True
                proc.kill()
                break
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                log.append(line)
                reason = on_line(line)
                if reason and not killed:
                    killed = reason
                    proc.kill()
        if pending.strip():
            log.append(pending.decode("utf-8", "replace").strip())
    finally:
        proc.stdout.close()
        rc = proc.wait()
    if killed:
        log.append(f"(esptool stopped: {killed})")
    return _Run(rc, killed, timed_out)


@dataclass
class _Run:
    rc: int
    killed: str = ""  # why this process stopped esptool, if it did
    timed_out: bool = False


def _esptool_error(port: str, log: list[str], ident: Identity | None = None) -> FlashError:
    """Sorts a failed esptool run into something a technician can act on."""
    text = "\n".join(log[-40:])
    fatal = ""
    for line in log:
        if m := _FATAL.search(line):
            fatal = m.group(1)
    who = f" ({ident.chip.name} {ident.mac})" if ident else ""
    if "No module named" in text and "esptool" in text:
        return FlashError(
            "esptool",
            "esptool is not installed for this Python: `pip install esptool` "
            "(`make` installs it into .venv)",
        )
    if "Could not open" in text or "could not open" in text:
        if "Errno 2" in text or "No such file" in text:
            return _open_error(port, OSError(errno.ENOENT, "no such file"))
        if "Errno 13" in text or "Permission denied" in text:
            return _open_error(port, OSError(errno.EACCES, "permission denied"))
        return FlashError("busy", busy_message(port))
    if m := _WRONG_CHIP.search(text):
        return FlashError(
            "wrong-chip",
            f"{port} is now an {m.group(1)}, not the {m.group(2)} identified: "
            "nothing was written; run the command again",
        )
    if "will not fit" in text or "goes past" in text:
        return FlashError("too-large", f"the firmware does not fit the flash on {port}{who}")
    if "MD5 of file does not match" in text:
        return FlashError(
            "verify-failed",
            f"the flash of the console on {port}{who} does not read back what was written "
            "(MD5 mismatch): try again, then at a lower --baud; if it persists the "
            "console's flash chip is faulty — replace the console",
        )
    if "Failed to connect" in text or "No serial data received" in text:
        return FlashError(
            "no-answer",
            f"the console on {port} does not answer the ROM loader: check the USB cable "
            "carries data (not a charge-only cable); then hold BOOT, press and release "
            "EN/RESET, release BOOT (download mode) and run the command again",
        )
    if "stopped responding" in text or "Timed out" in text or "Lost connection" in text:
        return FlashError(
            "no-answer",
            f"the console on {port}{who} stopped answering during the transfer: check the "
            "cable and the hub, try a lower --baud, and run the command again",
        )
    last = fatal or (log[-1] if log else "no output")
    return FlashError("esptool", f"esptool failed on {port}{who}: {last}")


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


# --- the app ---------------------------------------------------------------------


def check_provisioning(port: str, ident: Identity, prov: Provisioning) -> None:
    """Refuses, before flashing, an app or a board file made for another chip."""
    want = TARGETS.get(ident.chip.key)
    if want is not None and prov.bundle.arch != want:
        raise FlashError(
            "wrong-chip",
            f"the app bundle {prov.bundle.version} is compiled for {prov.bundle.arch}, but the "
            f"console on {port} is an {ident.chip.name} ({want}): build one with "
            f"`deskline bundle --target {ident.chip.key}`; nothing was written",
        )
    board_chip = prov.board_chip
    if board_chip and board_chip != ident.chip.key:
        raise FlashError(
            "wrong-chip",
            f"the board file is for {board_chip}, but the console on {port} is an "
            f"{ident.chip.name}: pick its board from hardware/boards/; nothing was written",
        )


def deploy(
    port: str,
    ident: Identity,
    opts: FlashOptions,
    index: int,
    tell: Callable[[str, float, str], None],
) -> dict[str, Any]:
    """Installs the app bundle and provisions the console (deskline.deploy)."""
    prov = opts.provisioning
    assert prov is not None
    provision = prov.for_console(index, ident, port)

    def progress(done: int, total: int) -> None:
        tell("deploy", done / total if total else 1.0, provision.get("name", "installing the app"))

    try:
        return (opts.deploy or deploy_app)(port, prov.bundle, provision, progress)
    except DesklineError as e:
        raise FlashError("deploy", f"the firmware is on {port} but the app is not: {e}") from e


def console_name(template: str, index: int, ident: Identity, port: str) -> str:
    """desk-{n:02d} -> desk-03 for the third port; {mac}, {chip}, {port} too."""
    try:
        return template.format(
            n=index, mac=ident.mac.replace(":", ""), chip=ident.chip.key, port=Path(port).name
        )
    except (KeyError, IndexError, ValueError) as e:
        raise DesklineError(
            f"bad --name template {template!r}: use {{n}}, {{n:02d}}, {{mac}}, {{chip}} or {{port}}"
        ) from e
