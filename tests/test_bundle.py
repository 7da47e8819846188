"""App bundles: compiled, versioned, hashed per file, signed; and the Ed25519
check the consoles run (firmware/ed25519.py) against `cryptography`."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from deskline import bundle as B
from deskline.cli import main
from deskline.errors import DesklineError
from deskline.firmware import ed25519
from deskline.sim import ota
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def built(key: Ed25519PrivateKey) -> B.Bundle:
    return B.build_bundle(key, "xtensawin", "1.4.0")


def test_manifest_lists_every_file_with_its_hash(built: B.Bundle) -> None:
    head, entries = B.parse_manifest(built.manifest)
    assert head["version"] == "1.4.0" and head["arch"] == "xtensawin"
    assert re.fullmatch(r"\d+\.\d+", head["mpy"])
    names = {e.name for e in entries}
    assert {"boot.py", "main.py", "bootslot.mpy", "app.mpy", "wire.mpy", "ed25519.mpy"} <= names
    assert "manifest.mpy" not in names and "__init__.mpy" not in names
    for e in entries:
        assert hashlib.sha256(built.files[e.name]).hexdigest() == e.sha256
        assert len(built.files[e.name]) == e.size
    assert {e.name for e in built.loader_entries} == B.LOADER_FILES
    assert b"1.4.0" in built.files["app.mpy"]  # the version the console's hello reports


def test_signature_is_the_fleet_keys(built: B.Bundle, key: Ed25519PrivateKey) -> None:
    built.verify(B.public_bytes(key))
    other = Ed25519PrivateKey.generate()
    with pytest.raises(DesklineError, match="not signed by the fleet key"):
        built.verify(B.public_bytes(other))
    # The console's own check agrees.
    digest = hashlib.sha256(built.manifest).digest()
    assert ed25519.verify(B.public_bytes(key), digest, built.signature)
    assert not ed25519.verify(B.public_bytes(other), digest, built.signature)


def test_write_read_round_trip_and_damage(tmp_path: Path, built: B.Bundle) -> None:
    path = tmp_path / "app.dlb"
    B.write_bundle(built, path)
    again = B.read_bundle(path)
    assert again.manifest == built.manifest and again.files == built.files
    # A file changed after signing: the bundle no longer matches its manifest.
    bad = tmp_path / "bad.dlb"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "files/app.mpy":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(item, data)
    with pytest.raises(DesklineError, match="does not match its manifest"):
        B.read_bundle(bad)
    unsigned = tmp_path / "unsigned.dlb"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(unsigned, "w") as dst:
        for item in src.infolist():
            if item.filename != "MANIFEST.sig":
                dst.writestr(item, src.read(item))
    with pytest.raises(DesklineError, match="not signed"):
        B.read_bundle(unsigned)
    with pytest.raises(DesklineError, match="no bundle"):
        B.read_bundle(tmp_path / "missing.dlb")


def test_firmware_image_rides_along_signed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    image = tmp_path / "micropython.bin"
    image.write_bytes(ota.fake_image("1.30.0", size=4096))
    files = {"app.mpy": b"x"}
    signed = B.sign_bundle(
        key,
        "2.0.0",
        "x64",
        "6.3",
        {**files, image.name: image.read_bytes()},
        frozenset({image.name}),
    )
    entry = signed.firmware_entry()
    assert entry.kind == "firmware" and entry.size == 4096
    assert [e.name for e in signed.app_entries] == ["app.mpy"]
    assert "micropython.bin" not in B.flash_layout(signed)
    with pytest.raises(DesklineError, match="signs no firmware"):
        signed.firmware_entry("other.bin")
    merged = tmp_path / "firmware.bin"
    merged.write_bytes(b"\x00" * 64)
    with pytest.raises(DesklineError, match="not an ESP32 app image"):
        B.build_bundle(key, "x64", "2.0.0", firmware=merged)


def test_arch_table_matches_the_firmware() -> None:
    from deskline import FIRMWARE_DIR

    text = (FIRMWARE_DIR / "appupdate.py").read_text()
    table = text[text.index("_ARCHES = (") : text.index(")", text.index("_ARCHES = ("))]
    assert tuple(re.findall(r'"([a-z0-9]+)"', table)) == B.ARCHES


def test_bad_names_and_versions_are_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(DesklineError, match="version"):
        B.sign_bundle(key, "1.0 beta", "x64", "6.3", {"a.mpy": b""})
    with pytest.raises(DesklineError, match="cannot go onto a console"):
        B.sign_bundle(key, "1.0", "x64", "6.3", {"../evil.mpy": b""})
    with pytest.raises(DesklineError, match="unknown target"):
        B.resolve_arch("z80")
    assert B.resolve_arch("esp32s3") == "xtensawin"


def test_keygen_and_bundle_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["keygen", "--state", str(state), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert (state / "fleet.key").stat().st_mode & 0o777 == 0o600
    assert main(["keygen", "--state", str(state)]) == 1  # never overwritten by accident
    assert "already exists" in capsys.readouterr().err
    out = tmp_path / "b.dlb"
    code = main(
        [
            "bundle",
            "--state",
            str(state),
            "--target",
            "sim",
            "--version",
            "3.1.4",
            "-o",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == "3.1.4" and report["key_id"] == made["key_id"]
    bundle = B.read_bundle(out)
    bundle.verify(B.load_public_key(state / "fleet.pub"))
    assert bundle.arch == B.native_arch()


@settings(max_examples=15, deadline=None)
@given(msg=st.binary(max_size=300), flip=st.integers(0, 64 * 8 - 1))
def test_console_check_agrees_with_cryptography(msg: bytes, flip: int) -> None:
    k = Ed25519PrivateKey.generate()
    pub = B.public_bytes(k)
    sig = k.sign(msg)
    assert ed25519.verify(pub, msg, sig)
    bad = bytearray(sig)
    bad[flip // 8] ^= 1 << (flip % 8)
    assert not ed25519.verify(pub, msg, bytes(bad))
    assert not ed25519.verify(pub, msg + b"!", sig)


def test_pure_sha512_matches_hashlib(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "hashlib", types.ModuleType("hashlib"))
    for n in (0, 1, 111, 112, 127, 128, 129, 300):
        data = bytes(range(256)) * 2
        assert ed25519.sha512(data[:n]) == hashlib.new("sha512", data[:n]).digest()


def test_app_keeps_the_update_codes_it_copies() -> None:
    # app.py folds the update codes in as private constants (so updcodes.py
    # need not load); they must stay the ones the host reads.
    from deskline import FIRMWARE_DIR
    from deskline.firmware import updcodes

    text = (FIRMWARE_DIR / "app.py").read_text()
    copies = dict(re.findall(r"^_((?:HELLO|REBOOT)_[A-Z_]+) = const\((\w+)\)", text, re.M))
    assert copies and all(int(v, 0) == getattr(updcodes, k) for k, v in copies.items())
