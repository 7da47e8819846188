"""The supervisors file: who may act on the floor from the daemon's web side.

`<state>/supervisors.json` holds each supervisor's password as an scrypt
hash (its parameters kept beside it, so new hashes can be made stronger
without breaking old ones) and each API token as the SHA-256 of the token
alone: the file leaks no password and no usable token.

`deskline supervisor ...` writes it, under a lock, atomically (a temporary
file, fsync, rename) and 0600.  The daemon reads it on every request but
parses it again only when it changed (inode, mtime, size), so a supervisor
added or removed counts on a running daemon at once.

    {"version": 1,
     "users":  {"j.smith": {"password": "scrypt$16384$8$1$<salt>$<hash>",
                            "created": 1795400000.0, "changed": 1795400000.0}},
     "tokens": {"3fa9c2d1": {"sha256": "<hex>", "owner": "j.smith",
                             "label": "grafana", "created": 1795400000.0}}}

A token reads `dlt_<id>_<secret>`: the id finds its entry, the secret proves it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from deskline.errors import DesklineError

log = logging.getLogger("deskline.web")

FILE_NAME = "supervisors.json"
VERSION = 1
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt reads all of it: bound the work one login costs
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
TOKEN_PREFIX = "dlt_"
_TOKEN_RE = re.compile(r"dlt_([0-9a-f]{8})_([A-Za-z0-9_-]{20,})")
_MAX_SCRYPT_BYTES = 256 * 1024 * 1024  # an edited file must not make a login eat the RAM

T = TypeVar("T")


class SupervisorsError(DesklineError):
    """A change to the supervisors that cannot be made; the message says why."""


@dataclass(frozen=True)
class ScryptParams:
    """Cost of new password hashes; raise them as machines get faster."""

    n: int = 2**14
    r: int = 8
    p: int = 1


DEFAULT_SCRYPT = ScryptParams()


@dataclass(frozen=True)
class User:
    name: str
    password: str  # "scrypt$n$r$p$<salt b64>$<hash b64>"
    created: float
    changed: float

    @property
    def stamp(self) -> str:
        """Changes whenever the password does (new salt), and so when a user is
        removed and added again: a session signed with the old stamp ends."""
        return hashlib.sha256(b"deskline-session\0" + self.password.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Token:
    id: str
    sha256: str
    owner: str
    label: str
    created: float


@dataclass(frozen=True)
class Roster:
    """The file's content, as read at one moment."""

    users: Mapping[str, User]
    tokens: Mapping[str, Token]


EMPTY = Roster({}, {})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, params: ScryptParams, dklen: int) -> bytes:
    need = 128 * params.r * (params.n + params.p + 2)
    if (
        params.n < 2
        or params.n & (params.n - 1)
        or params.r < 1
        or params.p < 1
        or need * params.p > _MAX_SCRYPT_BYTES
    ):
        raise ValueError(f"scrypt parameters out of range: {params}")
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        dklen=dklen,
        maxmem=need + 1024 * 1024,
    )


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    """A fresh salted scrypt hash, its parameters written beside it."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, params, 32)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded`, compared in constant time; a
    malformed hash matches nothing."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        want, salt_bytes = _unb64(digest), _unb64(salt)
        if len(want) != 32 or len(salt_bytes) < 16:  # a cut hash would match too much
            return False
        got = _scrypt(password, salt_bytes, ScryptParams(int(n), int(r), int(p)), 32)
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(text: str) -> str | None:
    """The id in a `dlt_<id>_<secret>` token, None when it is not one."""
    m = _TOKEN_RE.fullmatch(text)
    return m.group(1) if m else None


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise SupervisorsError(
            f"{name!r} cannot be a supervisor's name: use 1-64 letters, digits, '.', '_', "
            "'@' or '-', starting with a letter or digit"
        )
    return name


def check_new_password(name: str, password: str) -> str:
    """A password good enough to guard floor actions, or why not."""
    if len(password) < MIN_PASSWORD:
        raise SupervisorsError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise SupervisorsError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.lower():
        raise SupervisorsError("the password must not be the user name")
    return password


def path_in(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


class Supervisors:
    """The supervisors file at `path`: read cached, changed under a lock."""

    def __init__(self, path: Path, scrypt: ScryptParams = DEFAULT_SCRYPT) -> None:
        self.path = path
        self.scrypt = scrypt
        self._key: tuple[int, int, int] | None = None
        self._roster = EMPTY
        self._dummy: str | None = None

    # -- reading -----------------------------------------------------------

    def roster(self) -> Roster:
        """The file as it is now; parsed again only when it changed on disk.
        No file: no supervisors.  SupervisorsError when it cannot be read."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._key, self._roster = None, EMPTY
            return EMPTY
        except OSError as e:
            raise SupervisorsError(f"cannot read {self.path}: {e.strerror or e}") from e
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            if st.st_mode & 0o077:
                log.warning(
                    "%s is readable by others (mode %o): chmod 600 it",
                    self.path,
                    st.st_mode & 0o777,
                )
            self._roster = self._read()
            self._key = key
        return self._roster

    def _read(self) -> Roster:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return EMPTY
        except (OSError, ValueError) as e:
            raise SupervisorsError(
                f"cannot read {self.path}: {e}; fix it, or remove it and add the "
                "supervisors again with `deskline supervisor add NAME`"
            ) from e
        try:
            return _parse(raw)
        except (KeyError, TypeError, ValueError) as e:
            raise SupervisorsError(
                f"{self.path} is not a supervisors file ({e!r}); fix it, or remove it and "
                "add the supervisors again with `deskline supervisor add NAME`"
            ) from e

    def user(self, name: str) -> User:
        """The supervisor `name`; SupervisorsError naming those there are if none."""
        return _known(self.roster(), name)

    def check_password(self, name: str, password: str) -> User | None:
        """The user when the password is theirs.  An unknown name costs the
        same scrypt work, so timing does not tell which names exist."""
        user = self.roster().users.get(name)
        if user is None or len(password) > MAX_PASSWORD:
            if self._dummy is None:
                self._dummy = hash_password(secrets.token_hex(16), self.scrypt)
            verify_password(password[:MAX_PASSWORD], self._dummy)
            return None
        return user if verify_password(password, user.password) else None

    def check_token(self, token: str) -> tuple[User, Token] | None:
        """The owner and the entry of a valid token; None when unknown,
        revoked, or its owner was removed."""
        tid = token_id(token)
        roster = self.roster()
        entry = roster.tokens.get(tid) if tid else None
        if entry is None or not hmac.compare_digest(entry.sha256, token_digest(token)):
            return None
        owner = roster.users.get(entry.owner)
        return (owner, entry) if owner else None

    # -- changing ----------------------------------------------------------

    def add(self, name: str, password: str) -> User:
        check_name(name)
        check_new_password(name, password)
        encoded = hash_password(password, self.scrypt)

        def change(r: Roster) -> tuple[Roster, User]:
            if name in r.users:
                raise SupervisorsError(
                    f"supervisor {name!r} already exists: change the password with "
                    f"`deskline supervisor passwd {name}`"
                )
            now = time.time()
            user = User(name, encoded, now, now)
            return Roster({**r.users, name: user}, r.tokens), user

        return self._change(change)

    def set_password(self, name: str, password: str) -> User:
        """A new password; the user's browser sessions end, tokens stay."""
        check_new_password(name, password)
        encoded = hash_password(password, self.scrypt)

        def change(r: Roster) -> tuple[Roster, User]:
            user = replace(_known(r, name), password=encoded, changed=time.time())
            return Roster({**r.users, name: user}, r.tokens), user

        return self._change(change)

    def remove(self, name: str) -> list[Token]:
        """Removes a supervisor and revokes their tokens (returned)."""

        def change(r: Roster) -> tuple[Roster, list[Token]]:
            _known(r, name)
            users = {k: u for k, u in r.users.items() if k != name}
            gone = [t for t in r.tokens.values() if t.owner == name]
            tokens = {k: t for k, t in r.tokens.items() if t.owner != name}
            return Roster(users, tokens), gone

        return self._change(change)

    def issue_token(self, owner: str, label: str = "") -> tuple[Token, str]:
        """A new API token for `owner`: (its entry, the token itself, which is
        kept nowhere: show it once)."""

        def change(r: Roster) -> tuple[Roster, tuple[Token, str]]:
            _known(r, owner)
            tid = secrets.token_hex(4)
            while tid in r.tokens:
                tid = secrets.token_hex(4)
            token = f"{TOKEN_PREFIX}{tid}_{secrets.token_urlsafe(32)}"
            entry = Token(tid, token_digest(token), owner, label.strip()[:200], time.time())
            return Roster(r.users, {**r.tokens, tid: entry}), (entry, token)

        return self._change(change)

    def revoke(self, tid: str) -> Token:
        """Revokes a token by its id (or given whole)."""
        tid = token_id(tid) or tid

        def change(r: Roster) -> tuple[Roster, Token]:
            entry = r.tokens.get(tid)
            if entry is None:
                raise SupervisorsError(
                    f"no token {tid!r}: `deskline supervisor list` shows the token ids"
                )
            return Roster(r.users, {k: t for k, t in r.tokens.items() if k != tid}), entry

        return self._change(change)

    def _change(self, change: Callable[[Roster], tuple[Roster, T]]) -> T:
        with self._locked():
            roster, result = change(self._read())
            self._write(roster)
        return result

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: two `supervisor add`s must not lose one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        except OSError as e:
            raise SupervisorsError(f"cannot write {self.path}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, roster: Roster) -> None:
        """All or nothing: a reader sees the old file or the new one, never half."""
        data = json.dumps(_dump(roster), indent=2, sort_keys=True).encode() + b"\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover file
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise SupervisorsError(f"cannot write {self.path}: {e.strerror or e}") from e


def _known(r: Roster, name: str) -> User:
    user = r.users.get(name)
    if user is None:
        known = ", ".join(sorted(r.users)) or "none yet"
        raise SupervisorsError(f"no supervisor {name!r} (supervisors: {known})")
    return user


def _parse(raw: Any) -> Roster:
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise ValueError(f"expected a JSON object with version {VERSION}")
    users = {
        name: User(name, str(u["password"]), float(u["created"]), float(u["changed"]))
        for name, u in dict(raw.get("users", {})).items()
    }
    tokens = {
        tid: Token(tid, str(t["sha256"]), str(t["owner"]), str(t["label"]), float(t["created"]))
        for tid, t in dict(raw.get("tokens", {})).items()
    }
    return Roster(users, tokens)


def _dump(r: Roster) -> dict[str, Any]:
    return {
        "version": VERSION,
        "users": {
            u.name: {"password": u.password, "created": u.created, "changed": u.changed}
            for u in r.users.values()
        },
        "tokens": {
            t.id: {"sha256": t.sha256, "owner": t.owner, "label": t.label, "created": t.created}
            for t in r.tokens.values()
        },
    }
