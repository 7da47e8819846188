"""A blank console in download mode: the ESP32 ROM loader on a pseudo-terminal.

Real, unmodified esptool talks to it as to a chip held in download mode: SLIP
frames, SYNC, chip detection (the magic register on the ESP32,
GET_SECURITY_INFO on the S3/C3), eFuse words holding the MAC, the SPI
peripheral answering RDID/SFDP, SPI_ATTACH/SPI_SET_PARAMS, FLASH_BEGIN/DATA/END,
the compressed FLASH_DEFL_* writes, SPI_FLASH_MD5 and CHANGE_BAUDRATE
(the serial protocol in esptool's docs, serial-protocol.rst).

esptool's default is to upload its flasher stub to RAM and run it.  No
Xtensa or RISC-V code runs here, but the stub's protocol is emulated: after
MEM_END the loader greets with "OHAI" and from then on answers as the stub
does (two status bytes, raw MD5, 16 KiB blocks, SYNC value 0).  With
`--no-stub` esptool stays with the ROM's protocol, which works as well.

Flash is a bytearray with NOR semantics (writes can only clear bits, so a
write without its erase shows up), optionally saved to a file.  The line is
paced at the baud rate the host set on the port (read from the pty's
termios), times `speed`; 0 leaves it unpaced.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import threading
import time
import tty
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deskline.errors import DesklineError

SECTOR = 0x1000

# Command codes (esptool's ESPLoader.ESP_CMDS).
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
ERASE_FLASH, ERASE_REGION = 0xD0, 0xD1
NAMES = {
    code: name
    for name, code in list(globals().items())
    if name.isupper() and name != "SECTOR" and isinstance(code, int)
}

# Error codes the ROM and the stub send in the status bytes.
ROM_INVALID_MESSAGE = 0x05
ROM_BAD_CHECKSUM = 0x07
ROM_BAD_DATA_LEN = 0x0A
ROM_INFLATE_ERROR = 0x0B
STUB_UNIMPLEMENTED = 0xFF
STUB_BAD_CHECKSUM = 0xC1
STUB_BAD_BLOCK = 0xC5
FLASH_OUT_OF_RANGE = 0x09

CHIP_DETECT_MAGIC_REG = 0x40001000
SPI_CMD_USR = 1 << 18
ROM_SYNC_VALUE = 0x20120707
SYNC_PAYLOAD = b"\x07\x07\x12\x20" + 32 * b"\x55"
# Flash size id in RDID's third byte: 2**id bytes.
_SIZE_IDS = {1 << n: n for n in range(18, 26)}


@dataclass(frozen=True)
class ChipModel:
    """Just the registers esptool reads of one chip, and how it names itself."""

    key: str
    name: str
    image_id: int
    magic: int | None  # at CHIP_DETECT_MAGIC_REG, for chips without GET_SECURITY_INFO
    spi_base: int
    spi_usr2: int  # offsets in the SPI peripheral
    spi_w0: int
    mac_regs: Callable[[bytes], dict[int, int]]
    fixed_regs: tuple[tuple[int, int], ...] = ()

    def registers(self, mac: bytes) -> dict[int, int]:
        regs = dict(self.fixed_regs)
        regs.update(self.mac_regs(mac))
        if self.magic is not None:
            regs[CHIP_DETECT_MAGIC_REG] = self.magic
        return regs


def _esp32_mac(mac: bytes) -> dict[int, int]:
    # eFuse BLK0 words 1 and 2 (esptool ESP32ROM.read_mac: the low 16 bits of
    # word 2 are the first two bytes, word 1 the last four).
    (low,) = struct.unpack(">I", mac[2:6])
    return {0x3FF5A004: low, 0x3FF5A008: (mac[0] << 8) | mac[1]}


def _mac_at(reg: int) -> Callable[[bytes], dict[int, int]]:
    # S3/C3: MAC_EFUSE_REG holds the last four bytes, the next word the first two.
    def regs(mac: bytes) -> dict[int, int]:
        (low,) = struct.unpack(">I", mac[2:6])
        return {reg: low, reg + 4: (mac[0] << 8) | mac[1]}

    return regs


CHIPS: dict[str, ChipModel] = {
    "esp32": ChipModel(
        key="esp32",
        name="ESP32",
        image_id=0,
        magic=0x00F01D83,
        spi_base=0x3FF42000,
        spi_usr2=0x24,
        spi_w0=0x80,
        mac_regs=_esp32_mac,
        fixed_regs=(
            # A D0WD-V3 revision 3.1: package 1, rev bits in eFuse words 3/5
            # and the APB date register.
            (0x3FF5A00C, (1 << 9) | (1 << 15)),
            (0x3FF5A014, (1 << 20) | (1 << 24)),
            (0x3FF6607C, 1 << 31),
            # 40 MHz crystal: the UART divider at 115200 baud, and the ROM's
            # RTC calibration (what the stub reports).
            (0x3FF40014, 347),
            (0x3FF5A010, 128),
            (0x3FF5F06C, 800 << 7),
        ),
    ),
    "esp32s3": ChipModel(
        key="esp32s3",
        name="ESP32-S3",
        image_id=9,
        magic=None,
        spi_base=0x60002000,
        spi_usr2=0x20,
        spi_w0=0x58,
        mac_regs=_mac_at(0x60007044),
        fixed_regs=((0x60000014, 347),),
    ),
    "esp32c3": ChipModel(
        key="esp32c3",
        name="ESP32-C3",
        image_id=5,
        magic=None,
        spi_base=0x60002000,
        spi_usr2=0x20,
        spi_w0=0x58,
        mac_regs=_mac_at(0x60008844),
        fixed_regs=((0x60000014, 347),),
    ),
}

_BAUDS = {
    getattr(termios, name): int(name[1:])
    for name in dir(termios)
    if name[0] == "B" and name[1:].isdigit()
}


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def slip_decode(body: bytes) -> bytes:
    # Every 0xDB starts an escape, so the two replacements cannot overlap.
    return body.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")


class RomLoader:
    """One simulated chip in download mode: start(), let esptool at `port`, stop()."""

    def __init__(
        self,
        chip: str = "esp32",
        mac: str | bytes = "24:0a:c4:00:00:01",
        flash_size: int = 4 << 20,
        flash_file: Path | None = None,
        link: Path | None = None,
        speed: float = 1.0,
        stub: bool = True,
        silent: bool = False,
        stuck_bits: dict[int, int] | None = None,
    ) -> None:
        if chip not in CHIPS:
            raise DesklineError(f"no simulated chip {chip!r}; choose one of {', '.join(CHIPS)}")
        if flash_size not in _SIZE_IDS:
            raise DesklineError(f"flash size {flash_size} is not a power of two of 256K..32M")
        self.chip = CHIPS[chip]
        self.mac = _mac_bytes(mac)
        self.flash_size = flash_size
        self.flash_file = Path(flash_file) if flash_file else None
        self.flash = bytearray(b"\xff" * flash_size)
        if self.flash_file and self.flash_file.exists():
            saved = self.flash_file.read_bytes()[:flash_size]
            self.flash[: len(saved)] = saved
        self.link = Path(link) if link else None
        self.speed = speed
        self.stub_capable = stub
        self.silent = silent
        # Flash cells that read back with these bits set whatever is written
        # (a worn or broken chip): esptool's MD5 check must catch it.
        self.stuck_bits = dict(stuck_bits or {})
        self.commands: Counter[str] = Counter()
        self.port = ""
        self.in_stub = False
        self.regs = self.chip.registers(self.mac)
        self._master = self._slave = -1
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._free_at = 0.0
        self._write: _WriteState | None = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> RomLoader:
        self._master, self._slave = pty.openpty()
        # The loader keeps its own end of the slave open, as a USB bridge
        # keeps the tty alive between esptool runs.
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        self.port = os.ttyname(self._slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.port)
            tmp.replace(self.link)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._serve, daemon=True, name=f"romloader:{self.chip.key}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, saves the flash file, closes every descriptor."""
        self._stopping = True
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = -1
        self.save()

    def save(self) -> None:
        if self.flash_file is not None:
            tmp = self.flash_file.with_name(self.flash_file.name + ".tmp")
            tmp.write_bytes(self.flash)
            tmp.replace(self.flash_file)

    def __enter__(self) -> RomLoader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def mac_text(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac)

    # --- the line ----------------------------------------------------------------
    def _serve(self) -> None:
        buf = bytearray()
        while not self._stopping:
            try:
                ready, _, _ = select.select([self._master, self._wake_r], [], [], 0.5)
            except (OSError, ValueError):
                return
            if self._wake_r in ready or not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                time.sleep(0.01)
                continue
            self._pace(len(data))
            if self.silent:
                continue
            buf += data
            while True:
                start = buf.find(0xC0)
                if start < 0:
                    buf.clear()
                    break
                end = buf.find(0xC0, start + 1)
                if end < 0:
                    del buf[:start]
                    break
                frame = slip_decode(bytes(buf[start + 1 : end]))
                del buf[:end]  # the closing 0xC0 may open the next frame
                if frame:
                    self._handle(frame)

    def _pace(self, n: int) -> None:
        # The bytes take 10 bit times each on the wire at the host's baud rate.
        if not self.speed:
            return
        try:
            baud = _BAUDS.get(termios.tcgetattr(self._master)[4], 115200)
        except termios.error:
            baud = 115200
        now = time.monotonic()
        self._free_at = max(now, self._free_at) + n * 10 / (baud * self.speed)
        if self._free_at > now:
            time.sleep(self._free_at - now)

    def _send(self, packet: bytes) -> None:
        frame = slip_encode(packet)
        self._pace(len(frame))
        with contextlib.suppress(OSError):
            os.write(self._master, frame)

    def _reply(self, op: int, value: int = 0, data: bytes = b"", error: int = 0) -> None:
        # The ROM sends four status bytes, the stub two (status, error).
        status = bytes([1 if error else 0, error]) + (b"" if self.in_stub else b"\0\0")
        body = data + status
        self._send(struct.pack("<BBHI", 1, op, len(body), value) + body)

    def _unsupported(self, op: int) -> None:
        self._reply(op, error=STUB_UNIMPLEMENTED if self.in_stub else ROM_INVALID_MESSAGE)

    # --- commands ----------------------------------------------------------------
    def _handle(self, frame: bytes) -> None:
        if len(frame) < 8 or frame[0] != 0:
            return
        _, op, size, chk = struct.unpack_from("<BBHI", frame)
        data = frame[8 : 8 + size]
        self.commands[NAMES.get(op, f"0x{op:02X}")] += 1
        handler = self._handlers().get(op)
        if handler is None:
            self._unsupported(op)
            return
        handler(op, data, chk)

    def _handlers(self) -> dict[int, Callable[[int, bytes, int], None]]:
        table: dict[int, Callable[[int, bytes, int], None]] = {
            SYNC: self._sync,
            READ_REG: self._read_reg,
            WRITE_REG: self._write_reg,
            SPI_ATTACH: self._ack,
            SPI_SET_PARAMS: self._ack,
            CHANGE_BAUDRATE: self._ack,
            MEM_BEGIN: self._ack,
            MEM_DATA: self._mem_data,
            MEM_END: self._mem_end,
            FLASH_BEGIN: self._flash_begin,
            FLASH_DATA: self._flash_data,
            FLASH_END: self._ack,
            FLASH_DEFL_BEGIN: self._flash_begin,
            FLASH_DEFL_DATA: self._flash_data,
            FLASH_DEFL_END: self._ack,
            SPI_FLASH_MD5: self._md5,
        }
        if self.chip.magic is None:
            table[GET_SECURITY_INFO] = self._security_info
        if self.in_stub:
            table[ERASE_FLASH] = self._erase_flash
            table[ERASE_REGION] = self._erase_region
        else:
            table[READ_FLASH_SLOW] = self._read_flash_slow
        return table

    def _ack(self, op: int, data: bytes, chk: int) -> None:
        self._reply(op)

    def _sync(self, op: int, data: bytes, chk: int) -> None:
        if data != SYNC_PAYLOAD:
            self._reply(op, error=ROM_INVALID_MESSAGE)
            return
        # The ROM answers a SYNC eight times; esptool reads them all.  The
        # stub's value 0 tells esptool it is already running.
        value = 0 if self.in_stub else ROM_SYNC_VALUE
        for _ in range(8):
            self._reply(op, value=value)

    def _read_reg(self, op: int, data: bytes, chk: int) -> None:
        (addr,) = struct.unpack_from("<I", data)
        self._reply(op, value=self.regs.get(addr, 0))

    def _write_reg(self, op: int, data: bytes, chk: int) -> None:
        # One or more (address, value, mask, delay) quadruples.
        for at in range(0, len(data) - 15, 16):
            addr, value, mask, _delay = struct.unpack_from("<IIII", data, at)
            old = self.regs.get(addr, 0)
            self.regs[addr] = (old & ~mask) | (value & mask)
            if addr == self.chip.spi_base and value & SPI_CMD_USR:
                self._spi_command()
        self._reply(op)

    def _spi_command(self) -> None:
        # esptool's run_spiflash_command: command byte in USR2, result in W0.
        command = self.regs.get(self.chip.spi_base + self.chip.spi_usr2, 0) & 0xFF
        result = 0
        if command == 0x9F:  # RDID: Winbond, 0x40 type, 2**id bytes
            result = 0xEF | (0x40 << 8) | (_SIZE_IDS[self.flash_size] << 16)
        elif command == 0x5A:  # SFDP signature
            result = int.from_bytes(b"SFDP", "little")
        self.regs[self.chip.spi_base + self.chip.spi_w0] = result
        self.regs[self.chip.spi_base] = 0  # command done

    def _security_info(self, op: int, data: bytes, chk: int) -> None:
        # flags, flash_crypt_cnt, 7 key purposes, chip id, API version.
        info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.image_id, 0)
        self._reply(op, data=info)

    def _mem_data(self, op: int, data: bytes, chk: int) -> None:
        payload = data[16:]
        self._reply(op, error=0 if _checksum(payload) == chk else ROM_BAD_CHECKSUM)

    def _mem_end(self, op: int, data: bytes, chk: int) -> None:
        self._reply(op)
        no_entry, _entry = struct.unpack_from("<II", data)
        if not no_entry and self.stub_capable and not self.in_stub:
            # The uploaded stub "runs": its only unsolicited packet.
            self.in_stub = True
            self._send(b"OHAI")

    def _flash_begin(self, op: int, data: bytes, chk: int) -> None:
        size, _blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if offset + size > self.flash_size:
            self._reply(op, error=FLASH_OUT_OF_RANGE)
            return
        # The ROM erases the region here; the stub erases as it writes — the
        # result is the same erased sectors under the data.
        first = offset - offset % SECTOR
        last = -(-(offset + size) // SECTOR) * SECTOR
        self.flash[first:last] = b"\xff" * (last - first)
        inflate = zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None
        self._write = _WriteState(offset, block_size, inflate)
        self._reply(op)

    def _flash_data(self, op: int, data: bytes, chk: int) -> None:
        w = self._write
        if w is None or (op == FLASH_DEFL_DATA) != (w.inflate is not None):
            self._reply(op, error=ROM_INVALID_MESSAGE)
            return
        length, seq = struct.unpack_from("<II", data)
        payload = data[16 : 16 + length]
        if len(payload) != length:
            self._reply(op, error=ROM_BAD_DATA_LEN)
            return
        if _checksum(payload) != chk:
            self._reply(op, error=STUB_BAD_CHECKSUM if self.in_stub else ROM_BAD_CHECKSUM)
            return
        if seq != w.seq:
            self._reply(op, error=STUB_BAD_BLOCK if self.in_stub else ROM_INVALID_MESSAGE)
            return
        if w.inflate is not None:
            try:
                payload = w.inflate.decompress(payload)
            except zlib.error:
                self._reply(op, error=ROM_INFLATE_ERROR)
                return
            at = w.written
        else:
            at = w.offset + seq * w.block_size
        end = min(at + len(payload), self.flash_size)
        self._program(at, payload[: end - at])
        w.seq += 1
        w.written = end
        self._reply(op)

    def _program(self, at: int, payload: bytes) -> None:
        # NOR flash: programming clears bits, only an erase sets them.
        old = int.from_bytes(self.flash[at : at + len(payload)], "little")
        new = int.from_bytes(payload, "little")
        self.flash[at : at + len(payload)] = (old & new).to_bytes(len(payload), "little")
        for addr, bits in self.stuck_bits.items():
            if at <= addr < at + len(payload):
                self.flash[addr] |= bits

    def _md5(self, op: int, data: bytes, chk: int) -> None:
        addr, size = struct.unpack_from("<II", data)
        if addr + size > self.flash_size:
            self._reply(op, error=FLASH_OUT_OF_RANGE)
            return
        digest = hashlib.md5(self.flash[addr : addr + size])
        # The ROM answers in hex text, the stub in raw bytes.
        self._reply(op, data=digest.digest() if self.in_stub else digest.hexdigest().encode())

    def _read_flash_slow(self, op: int, data: bytes, chk: int) -> None:
        addr, size = struct.unpack_from("<II", data)
        if size > 64 or addr + size > self.flash_size:
            self._reply(op, error=ROM_BAD_DATA_LEN)
            return
        self._reply(op, data=bytes(self.flash[addr : addr + size]).ljust(64, b"\xff"))

    def _erase_flash(self, op: int, data: bytes, chk: int) -> None:
        self.flash[:] = b"\xff" * self.flash_size
        self._reply(op)

    def _erase_region(self, op: int, data: bytes, chk: int) -> None:
        offset, size = struct.unpack_from("<II", data)
        if offset % SECTOR or size % SECTOR or offset + size > self.flash_size:
            self._reply(op, error=FLASH_OUT_OF_RANGE)
            return
        self.flash[offset : offset + size] = b"\xff" * size
        self._reply(op)


@dataclass
class _WriteState:
    offset: int
    block_size: int
    inflate: zlib._Decompress | None
    seq: int = 0
    written: int = -1

    def __post_init__(self) -> None:
        self.written = self.offset


def _checksum(data: bytes) -> int:
    # XOR of every byte, seeded with 0xEF (the ROM's checksum).
    state = 0xEF
    if data:
        state ^= _xor_all(data)
    return state


def _xor_all(data: bytes) -> int:
    # XOR of the bytes, eight at a time: a 16 KiB block per call stays cheap.
    pad = (-len(data)) % 8
    words = struct.unpack(f"<{(len(data) + pad) // 8}Q", data + b"\0" * pad)
    acc = 0
    for w in words:
        acc ^= w
    acc ^= acc >> 32
    acc ^= acc >> 16
    acc ^= acc >> 8
    return acc & 0xFF


def _mac_bytes(mac: str | bytes) -> bytes:
    if isinstance(mac, bytes):
        raw = mac
    else:
        raw = bytes(int(part, 16) for part in mac.replace("-", ":").split(":"))
    if len(raw) != 6:
        raise DesklineError(f"a MAC has six bytes, not {len(raw)}: {mac!r}")
    return raw


def main(argv: list[str] | None = None) -> int:
    """Runs one simulated chip until SIGTERM/SIGINT; prints its port as JSON."""
    p = argparse.ArgumentParser(prog="python -m deskline.sim.romloader")
    p.add_argument("--chip", default="esp32", choices=sorted(CHIPS))
    p.add_argument("--mac", default="24:0a:c4:00:00:01")
    p.add_argument("--flash-size", type=int, default=4 << 20)
    p.add_argument("--flash-file", help="keeps the flash contents here across runs")
    p.add_argument("--link", help="a stable symlink to the pty")
    p.add_argument("--speed", type=float, default=1.0, help="line rate factor, 0 = unpaced")
    p.add_argument("--no-stub", action="store_true", help="refuse to run a flasher stub")
    p.add_argument("--silent", action="store_true", help="never answer (not in download mode)")
    args = p.parse_args(argv)
    loader = RomLoader(
        chip=args.chip,
        mac=args.mac,
        flash_size=args.flash_size,
        flash_file=Path(args.flash_file) if args.flash_file else None,
        link=Path(args.link) if args.link else None,
        speed=args.speed,
        stub=not args.no_stub,
        silent=args.silent,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    loader.start()
    print(
        json.dumps({"port": loader.port, "link": str(loader.link or ""), "mac": loader.mac_text}),
        flush=True,
    )
    done.wait()
    loader.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
