"""The supervisors file and `deskline supervisor`: hashes, not secrets, on
disk; written whole and private; a change seen by a reader at once."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from deskline import cli
from deskline.supervisors import (
    DEFAULT_SCRYPT,
    ScryptParams,
    Supervisors,
    SupervisorsError,
    hash_password,
    token_id,
    verify_password,
)
from hypothesis import given, settings
from hypothesis import strategies as st

FAST = ScryptParams(n=16, r=1, p=1)


def sups(tmp_path: Path) -> Supervisors:
    return Supervisors(tmp_path / "supervisors.json", FAST)


def test_the_default_cost_is_scrypt_n16384_r8_p1() -> None:
    assert DEFAULT_SCRYPT == ScryptParams(n=2**14, r=8, p=1)
    encoded = hash_password("correct horse", DEFAULT_SCRYPT)
    assert encoded.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", encoded)


@settings(max_examples=15, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_a_hash_verifies_its_password_only(password: str, other: str) -> None:
    encoded = hash_password(password, FAST)
    assert verify_password(password, encoded)
    assert verify_password(other, encoded) == (other == password)


def test_each_hash_has_its_own_salt_and_keeps_its_parameters() -> None:
    a, b = hash_password("same password", FAST), hash_password("same password", FAST)
    assert a != b and a.startswith("scrypt$16$1$1$")
    # Stronger parameters later do not break the old hashes.
    assert verify_password("same password", a)
    assert verify_password("x" * 9, hash_password("x" * 9, ScryptParams(n=32, r=2, p=1)))
    cut = a[:-4]  # a shortened digest must not match a shortened computation
    for broken in ("", "scrypt$16$1$1$!!$!!", "bcrypt$x", "scrypt$3$1$1$AAAA$AAAA", cut):
        assert not verify_password("same password", broken)


def test_the_file_is_private_and_holds_no_secret(tmp_path: Path) -> None:
    s = sups(tmp_path)
    s.add("j.smith", "open sesame 1")
    entry, token = s.issue_token("j.smith", "grafana")
    text = s.path.read_text()
    assert "open sesame 1" not in text
    assert token not in text and token.split("_", 2)[2] not in text  # the secret may hold "_"
    assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
    assert token.startswith(f"dlt_{entry.id}_") and token_id(token) == entry.id
    raw = json.loads(text)
    assert raw["version"] == 1 and raw["tokens"][entry.id]["label"] == "grafana"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    s = sups(tmp_path)
    s.add("ann", "password-1")
    before = s.path.stat().st_ino
    s.path.chmod(0o644)  # someone loosened it: the next write makes it private again
    s.add("bob", "password-2")
    after = s.path.stat()
    assert after.st_ino != before  # renamed into place, never rewritten in place
    assert stat.S_IMODE(after.st_mode) == 0o600
    assert set(json.loads(s.path.read_text())["users"]) == {"ann", "bob"}


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sups(tmp_path)
    s.add("ann", "password-1")
    before = s.path.read_bytes()

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(SupervisorsError, match="No space left"):
        s.add("bob", "password-2")
    assert s.path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_reader_sees_a_change_at_once(tmp_path: Path) -> None:
    daemon, cli_side = sups(tmp_path), sups(tmp_path)
    assert daemon.roster().users == {}
    cli_side.add("ann", "password-1")
    assert set(daemon.roster().users) == {"ann"}
    first = daemon.roster()
    assert daemon.roster() is first  # unchanged file: not parsed again
    cli_side.add("bob", "password-2")  # same size as before is no reason to miss it
    assert set(daemon.roster().users) == {"ann", "bob"}
    cli_side.remove("ann")
    assert set(daemon.roster().users) == {"bob"}


def test_passwords_and_tokens_check(tmp_path: Path) -> None:
    s = sups(tmp_path)
    s.add("ann", "password-1")
    assert s.check_password("ann", "password-1") is not None
    assert s.check_password("ann", "password-2") is None
    assert s.check_password("nobody", "password-1") is None
    assert s.check_password("ann", "p" * 5000) is None
    entry, token = s.issue_token("ann")
    found = s.check_token(token)
    assert found is not None and found[0].name == "ann" and found[1].id == entry.id
    assert s.check_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert s.check_token("dlt_00000000_" + "x" * 43) is None
    assert s.check_token("not a token") is None
    s.revoke(entry.id)
    assert s.check_token(token) is None


def test_removing_a_supervisor_revokes_their_tokens(tmp_path: Path) -> None:
    s = sups(tmp_path)
    s.add("ann", "password-1")
    s.add("bob", "password-2")
    _, ann_token = s.issue_token("ann")
    _, bob_token = s.issue_token("bob")
    gone = s.remove("ann")
    assert len(gone) == 1
    assert s.check_token(ann_token) is None and s.check_token(bob_token) is not None


def test_clear_refusals(tmp_path: Path) -> None:
    s = sups(tmp_path)
    with pytest.raises(SupervisorsError, match="at least 8"):
        s.add("ann", "short")
    with pytest.raises(SupervisorsError, match="user name"):
        s.add("annabelle", "Annabelle")
    with pytest.raises(SupervisorsError, match="cannot be a supervisor's name"):
        s.add("ann|x", "password-1")
    s.add("ann", "password-1")
    with pytest.raises(SupervisorsError, match=r"already exists.*passwd ann"):
        s.add("ann", "password-2")
    with pytest.raises(SupervisorsError, match=r"no supervisor 'bob' .supervisors: ann"):
        s.set_password("bob", "password-2")
    with pytest.raises(SupervisorsError, match="no supervisor 'bob'"):
        s.issue_token("bob")
    with pytest.raises(SupervisorsError, match=r"no token 'ffffffff'.*list"):
        s.revoke("ffffffff")
    s.path.write_text("{not json")
    with pytest.raises(SupervisorsError, match=r"cannot read .*supervisor add"):
        sups(tmp_path).roster()


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str]:
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = cli.main(argv)
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, out + err


def test_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = ["--state", str(tmp_path)]
    code, out = run(
        ["supervisor", "add", "ann", "--password-stdin", *state], capsys, "pass-word-1\n"
    )
    assert code == 0 and "ann added" in out
    code, out = run(["supervisor", "add", "ann", "--password-stdin", *state], capsys, "x\n")
    assert code == 1 and "already exists" in out
    code, out = run(["supervisor", "add", "bob", "--password-stdin", *state], capsys, "short\n")
    assert code == 1 and "at least 8" in out
    code, out = run(["supervisor", "add", "bob", *state], capsys)  # no terminal, no stdin flag
    assert code == 1 and "--password-stdin" in out

    code, out = run(["supervisor", "token", "ann", "--label", "grafana", *state], capsys)
    token = out.splitlines()[0]
    assert code == 0 and token_id(token) and "shown only now" in out
    code, out = run(["supervisor", "list", "--json", *state], capsys)
    listing = json.loads(out)
    assert listing["supervisors"][0]["name"] == "ann" and listing["supervisors"][0]["tokens"] == 1
    assert listing["tokens"][0]["label"] == "grafana" and token not in out
    code, out = run(["supervisor", "list", *state], capsys)
    assert code == 0 and "ann" in out and "grafana" in out

    code, out = run(["supervisor", "passwd", "nobody", "--password-stdin", *state], capsys, "")
    assert code == 1 and "no supervisor 'nobody'" in out
    code, out = run(
        ["supervisor", "passwd", "ann", "--password-stdin", "--json", *state], capsys, "pw-two-22\n"
    )
    assert code == 0 and json.loads(out) == {"ok": True, "user": "ann"}
    assert Supervisors(tmp_path / "supervisors.json").check_password("ann", "pw-two-22")

    code, out = run(["supervisor", "revoke", token, "--json", *state], capsys)
    assert code == 0 and json.loads(out)["owner"] == "ann"
    code, out = run(["supervisor", "revoke", token, *state], capsys)
    assert code == 1 and "no token" in out
    code, out = run(["supervisor", "remove", "ann", "--json", *state], capsys)
    assert code == 0 and json.loads(out)["user"] == "ann"
    code, out = run(["supervisor", "list", *state], capsys)
    assert "no supervisors yet" in out
