"""deskline flash: real esptool, one process per port, against simulated ROM loaders."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from deskline import cli, control, flash, ports
from deskline.bundle import Bundle, generate_key, sign_bundle, write_bundle
from deskline.errors import DesklineError
from deskline.fwimage import CHIPS, FirmwareImage, parse_image, read_image
from deskline.sim import fakefirmware
from deskline.sim.romloader import RomLoader

SIZE = 96 * 1024


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FirmwareImage]:
    folder = tmp_path_factory.mktemp("firmware")
    return {
        chip: read_image(fakefirmware.write(folder / f"{chip}.bin", chip, SIZE, seed=i))
        for i, chip in enumerate(CHIPS)
    }


def options(**kw: Any) -> flash.FlashOptions:
    kw.setdefault("baud", 921600)
    kw.setdefault("connect_attempts", 1)
    return flash.FlashOptions(**kw)


def start(loaders: list[RomLoader], chip: str, n: int, **kw: Any) -> RomLoader:
    kw.setdefault("speed", 0)
    sim = RomLoader(chip, mac=f"24:0a:c4:00:00:{n:02x}", **kw).start()
    loaders.append(sim)
    return sim


def flashed(sim: RomLoader, image: FirmwareImage) -> bool:
    data = image.path.read_bytes()
    return bytes(sim.flash[image.offset : image.offset + len(data)]) == data


# --- images ---------------------------------------------------------------------


def test_image_header_names_the_chip_and_the_offset(images: dict[str, FirmwareImage]) -> None:
    assert (images["esp32"].chip.name, images["esp32"].offset) == ("ESP32", 0x1000)
    assert (images["esp32s3"].chip.name, images["esp32s3"].offset) == ("ESP32-S3", 0x0)
    assert (images["esp32c3"].chip.name, images["esp32c3"].offset) == ("ESP32-C3", 0x0)
    assert images["esp32"].version == "v1.24.1"
    assert images["esp32"].project == "micropython"


def test_images_that_are_not_a_console_firmware_are_refused() -> None:
    good = bytearray(fakefirmware.build("esp32s3", SIZE))
    with pytest.raises(DesklineError, match="does not start with the image magic"):
        parse_image(b"\0" * SIZE, Path("zeros.bin"))
    c6 = bytearray(good)
    struct.pack_into("<H", c6, 12, 13)
    with pytest.raises(DesklineError, match="built for ESP32-C6"):
        parse_image(bytes(c6), Path("c6.bin"))
    app_only = good[0x10000:]
    with pytest.raises(DesklineError, match=r"no partition table .*micropython\.bin"):
        parse_image(bytes(app_only), Path("micropython.bin"))
    mixed = bytearray(good)
    struct.pack_into("<H", mixed, 0x10000 + 12, 0)
    with pytest.raises(DesklineError, match="bootloader is for ESP32-S3 but its application"):
        parse_image(bytes(mixed), Path("mixed.bin"))


# --- flashing -------------------------------------------------------------------


def test_parallel_ports_one_failing_and_rerun_skips(
    loaders: list[RomLoader], images: dict[str, FirmwareImage]
) -> None:
    esp32 = start(loaders, "esp32", 1)
    s3 = start(loaders, "esp32s3", 2)
    silent = start(loaders, "esp32", 3, silent=True)
    events: list[flash.Event] = []
    results = flash.flash_many(
        [esp32.port, s3.port, silent.port],
        list(images.values()),
        options(),
        events.append,
    )
    first, second, third = results
    assert (first.status, second.status) == ("flashed", "flashed"), (first.error, second.error)
    assert flashed(esp32, images["esp32"]) and flashed(s3, images["esp32s3"])
    assert (first.chip, first.mac, first.offset) == ("ESP32", "24:0a:c4:00:00:01", 0x1000)
    assert (second.chip, second.offset, second.flash_size) == ("ESP32-S3", 0, 4 << 20)
    assert second.version == "v1.24.1"
    assert (third.status, third.kind) == ("failed", "no-answer")
    assert "download mode" in third.error
    writes = [e.done for e in events if e.port == esp32.port and e.stage == "write"]
    assert writes[-1] == 1.0 and any(0 < d < 1 for d in writes)
    assert any(e.stage == "verify" for e in events if e.port == s3.port)

    # Again: the MD5 on the chip matches, nothing is erased or written.
    esp32.commands.clear()
    again = flash.flash_many([esp32.port, s3.port], list(images.values()), options())
    assert [r.status for r in again] == ["up-to-date", "up-to-date"]
    assert esp32.commands["SPI_FLASH_MD5"] == 1
    assert esp32.commands["FLASH_DEFL_DATA"] == esp32.commands["FLASH_DATA"] == 0
    assert flashed(esp32, images["esp32"])


def test_wrong_chip_is_refused_before_writing(
    loaders: list[RomLoader], images: dict[str, FirmwareImage]
) -> None:
    s3 = start(loaders, "esp32s3", 4)
    (result,) = flash.flash_many([s3.port], [images["esp32"]], options())
    assert (result.status, result.kind) == ("failed", "wrong-chip")
    assert "is an ESP32-S3" in result.error and "firmware for ESP32-S3" in result.error
    assert s3.flash.count(0xFF) == len(s3.flash)


def test_image_too_large_for_the_flash(
    loaders: list[RomLoader], images: dict[str, FirmwareImage], tmp_path: Path
) -> None:
    sim = start(loaders, "esp32", 5, flash_size=1 << 18)
    big = read_image(fakefirmware.write(tmp_path / "big.bin", "esp32", 256 * 1024))
    (result,) = flash.flash_many([sim.port], [big], options())
    assert (result.status, result.kind) == ("failed", "too-large")
    assert "does not fit the 256 KB of flash" in result.error
    assert sim.commands["FLASH_DEFL_BEGIN"] == 0


def test_md5_mismatch_is_reported(
    loaders: list[RomLoader], images: dict[str, FirmwareImage]
) -> None:
    # A flash cell stuck at 1 inside the image: esptool's MD5 check catches it.
    image = images["esp32"]
    data = image.path.read_bytes()
    cell = next(i for i in range(0x2000, len(data)) if not data[i] & 0x80)
    sim = start(loaders, "esp32", 6, stuck_bits={image.offset + cell: 0x80})
    (result,) = flash.flash_many([sim.port], [image], options())
    assert (result.status, result.kind) == ("failed", "verify-failed"), result.error
    assert "MD5 mismatch" in result.error


def test_a_renumbered_port_never_gets_the_image(
    loaders: list[RomLoader], images: dict[str, FirmwareImage], tmp_path: Path
) -> None:
    # The port path leads to console A when identified and to B when written
    # (a replug between the two): the write run's MAC differs, it is stopped.
    a = start(loaders, "esp32", 7)
    b = start(loaders, "esp32", 8, speed=1.0)
    link = tmp_path / "ttyUSB0"
    link.symlink_to(a.port)

    def swap(e: flash.Event) -> None:
        if e.stage == "write" and e.done == 0 and link.resolve() == Path(a.port):
            tmp = tmp_path / "next"
            tmp.symlink_to(b.port)
            tmp.replace(link)

    (result,) = flash.flash_many([str(link)], [images["esp32"]], options(), swap)
    assert (result.status, result.kind) == ("failed", "identity-changed"), result.error
    assert "24:0a:c4:00:00:07" in result.error and "24:0a:c4:00:00:08" in result.error
    assert b.flash.count(0xFF) == len(b.flash)
    assert b.commands["FLASH_DEFL_BEGIN"] == b.commands["FLASH_BEGIN"] == 0


def test_port_errors_a_technician_can_act_on(loaders: list[RomLoader], tmp_path: Path) -> None:
    sim = start(loaders, "esp32", 9)
    fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(flash.FlashError, match="port busy") as busy:
            flash.check_port(sim.port)
    finally:
        os.close(fd)
    assert busy.value.kind == "busy"
    assert "deskline console release" in str(busy.value) and "daemon" in str(busy.value)
    flash.check_port(sim.port)  # free again
    with pytest.raises(flash.FlashError, match="no console on") as missing:
        flash.check_port(str(tmp_path / "ttyUSB9"))
    assert missing.value.kind == "missing"
    denied = flash._open_error("/dev/ttyUSB0", OSError(errno.EACCES, "Permission denied"))
    assert denied.kind == "permission"
    assert "dialout" in str(denied) and "99-deskline.rules" in str(denied)


class FakeDaemon:
    """The daemon's control socket, as far as the hand-over uses it."""

    def __init__(self, path: Path, serves: set[str]) -> None:
        self.path = path
        self.serves = serves
        self.requests: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as f:
                line = f.readline()
                if not line:
                    continue
                req = json.loads(line)
                self.requests.append(req)
                if req["port"] in self.serves:
                    reply: dict[str, Any] = {"ok": True, "port": req["port"]}
                else:
                    reply = {"ok": False, "error": f"the daemon does not serve port {req['port']}"}
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=2)


def test_daemon_hands_the_port_over_and_takes_it_back(
    loaders: list[RomLoader], images: dict[str, FirmwareImage], tmp_path: Path
) -> None:
    served = start(loaders, "esp32", 10)
    other = start(loaders, "esp32s3", 11)
    daemon = FakeDaemon(tmp_path / "deskline.sock", {served.port})
    try:
        results = flash.flash_many(
            [served.port, other.port], list(images.values()), options(control=daemon.path)
        )
    finally:
        daemon.close()
    assert [r.status for r in results] == ["flashed", "flashed"]
    assert [r.handed_over for r in results] == [True, False]
    mine = [r["op"] for r in daemon.requests if r["port"] == served.port]
    assert mine == ["release", "attach"]
    assert [r["op"] for r in daemon.requests if r["port"] == other.port] == ["release"]


def app_bundle(arch: str = "xtensawin", key: Ed25519PrivateKey | None = None) -> Bundle:
    files = {"main.py": b"import app\n", "app.mpy": b"M\x06"}
    return sign_bundle(key or Ed25519PrivateKey.generate(), "1.0", arch, "6.3", files)


def test_bundle_deploy_and_provisioning_per_console(
    loaders: list[RomLoader], images: dict[str, FirmwareImage]
) -> None:
    a = start(loaders, "esp32", 12)
    b = start(loaders, "esp32", 13)
    calls: dict[str, dict[str, str]] = {}

    def fake_deploy(
        port: str, app: Bundle, provision: dict[str, str], progress: Callable[[int, int], None]
    ) -> dict[str, Any]:
        calls[port] = provision
        progress(50, 100)
        if port == b.port:
            raise DesklineError("no raw REPL")
        return {"status": "installed", "version": app.version}

    board = '{"chip": "esp32"}'
    prov = flash.Provisioning(app_bundle(), b"k" * 32, "desk-{n:02d}", board, "volt")
    events: list[flash.Event] = []
    results = flash.flash_many(
        [a.port, b.port],
        [images["esp32"]],
        options(provisioning=prov, deploy=fake_deploy),
        events.append,
    )
    assert results[0].status == "flashed"
    assert results[0].app == {"status": "installed", "version": "1.0"}
    assert (results[1].status, results[1].kind) == ("failed", "deploy")
    assert "the firmware is on" in results[1].error and "no raw REPL" in results[1].error
    assert flashed(b, images["esp32"])
    assert calls[a.port] == {
        "fleet_key": (b"k" * 32).hex(),
        "name": "desk-01",
        "board": board,
        "account": "volt",
    }
    assert calls[b.port]["name"] == "desk-02"
    assert any(e.stage == "deploy" and e.done == 0.5 for e in events)


def test_app_or_board_for_another_chip_is_refused_before_flashing(
    loaders: list[RomLoader], images: dict[str, FirmwareImage]
) -> None:
    c3 = start(loaders, "esp32c3", 15)
    s3 = start(loaders, "esp32s3", 16)
    xtensa = flash.Provisioning(app_bundle("xtensawin"), b"k" * 32)
    (result,) = flash.flash_many([c3.port], list(images.values()), options(provisioning=xtensa))
    assert (result.kind, result.chip) == ("wrong-chip", "ESP32-C3")
    assert "compiled for xtensawin" in result.error and "--target esp32c3" in result.error
    board = flash.Provisioning(app_bundle(), b"k" * 32, board='{"chip": "esp32"}')
    (result,) = flash.flash_many([s3.port], list(images.values()), options(provisioning=board))
    assert result.kind == "wrong-chip" and "board file is for esp32" in result.error
    assert c3.flash.count(0xFF) == len(c3.flash) and s3.flash.count(0xFF) == len(s3.flash)


# --- the command ----------------------------------------------------------------


def test_cli_json_report(
    loaders: list[RomLoader],
    images: dict[str, FirmwareImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = start(loaders, "esp32c3", 14)
    argv = [
        "flash",
        "--firmware",
        str(images["esp32c3"].path),
        "--port",
        sim.port,
        "--baud",
        "921600",
        "--connect-attempts",
        "1",
        "--state",
        str(tmp_path),
        "--json",
    ]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    (console,) = report["consoles"]
    assert (console["status"], console["chip"], console["offset"]) == ("flashed", "ESP32-C3", 0)
    assert report["firmware"][0]["md5"] == images["esp32c3"].md5
    assert flashed(sim, images["esp32c3"])


def test_cli_refuses_what_it_cannot_do(
    images: dict[str, FirmwareImage],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fw = str(images["esp32"].path)
    monkeypatch.setattr(ports, "scan", lambda **kw: [])
    assert cli.main(["flash", "--firmware", fw, "--all"]) == 1
    assert "no consoles to flash" in capsys.readouterr().err
    assert cli.main(["flash", "--firmware", fw, "--port", "/dev/x", "--name", "desk-1"]) == 1
    assert "add --bundle" in capsys.readouterr().err
    argv = ["flash", "--firmware", fw, "--bundle", "b", "--port", "/a", "--port", "/b"]
    assert cli.main([*argv, "--name", "desk-1"]) == 1
    assert "desk-{n:02d}" in capsys.readouterr().err
    assert cli.main(["flash", "--firmware", fw, "--firmware", fw, "--port", "/a"]) == 1
    assert "two firmware images for ESP32" in capsys.readouterr().err


def test_cli_provisions_with_a_signed_bundle(
    loaders: list[RomLoader],
    images: dict[str, FirmwareImage],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = start(loaders, "esp32", 17)
    public = generate_key(tmp_path / "fleet.key", tmp_path / "fleet.pub")
    from deskline.bundle import load_private_key

    write_bundle(app_bundle(key=load_private_key(tmp_path / "fleet.key")), tmp_path / "app.dlb")
    write_bundle(app_bundle(), tmp_path / "stranger.dlb")
    seen: list[dict[str, str]] = []

    def fake_deploy(
        port: str, app: Bundle, provision: dict[str, str], progress: Callable[[int, int], None]
    ) -> dict[str, Any]:
        seen.append(provision)
        return {"status": "installed", "version": app.version}

    monkeypatch.setattr(flash, "deploy_app", fake_deploy)
    board = Path(__file__).resolve().parent.parent / "hardware" / "boards" / "esp32-devkitc-v4.json"
    argv = ["flash", "--firmware", str(images["esp32"].path), "--port", sim.port]
    argv += ["--baud", "921600", "--connect-attempts", "1", "--state", str(tmp_path), "--json"]
    argv += ["--name", "desk-{mac}", "--board", str(board), "--account", "volt"]
    assert cli.main([*argv, "--bundle", str(tmp_path / "stranger.dlb")]) == 1
    assert "not signed by the fleet key" in capsys.readouterr().err
    assert sim.commands["SYNC"] == 0  # refused before any console was touched
    assert cli.main([*argv, "--bundle", str(tmp_path / "app.dlb")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["consoles"][0]["app"] == {"status": "installed", "version": "1.0"}
    assert seen == [
        {
            "fleet_key": public.hex(),
            "name": "desk-240ac4000011",
            "board": board.read_text(),
            "account": "volt",
        }
    ]


def test_with_the_real_daemon_holding_the_port(
    loaders: list[RomLoader], images: dict[str, FirmwareImage], tmp_path: Path
) -> None:
    sim = start(loaders, "esp32", 18)
    state = tmp_path / "state"
    sock = state / "deskline.sock"
    argv = [sys.executable, "-m", "deskline.cli", "daemon", "--state", str(state), "--no-usb"]
    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = subprocess.Popen([*argv, "--port", sim.port], stdout=log, stderr=log)

    def link_state() -> str:
        reply = control.request(sock, {"op": "devices"})
        rows = [r for r in reply.get("extra", []) + reply.get("devices", []) if r.get("port")]
        return str(rows[0]["link"]["state"]) if rows else ""

    try:

        def up() -> bool:
            return daemon.poll() is not None or control.request(sock, {"op": "ping"})["ok"]

        assert until(up) and daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        assert until(lambda: link_state() not in ("", "starting", "waiting"))
        # Without the control socket: the port is busy, and the message says how to fix it.
        (busy,) = flash.flash_many([sim.port], [images["esp32"]], options())
        assert busy.kind == "busy" and "deskline console release" in busy.error
        (result,) = flash.flash_many([sim.port], [images["esp32"]], options(control=sock))
        assert (result.status, result.handed_over) == ("flashed", True), result.error
        assert flashed(sim, images["esp32"])
        assert until(lambda: link_state() not in ("released", "waiting"))
    finally:
        daemon.terminate()
        code = daemon.wait(15)
    assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]


def until(pred: Callable[[], object], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(DesklineError, OSError):
            if pred():
                return True
        time.sleep(0.05)
    return False
