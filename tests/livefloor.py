"""A small live floor for the web tests: the real daemon in its own process,
serving HTTP, with virtual consoles running the real firmware and a real
client system taking the escalation webhooks (and never answering them, so
a supervisor's answer is the one that counts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from deskline import control
from deskline.floorconfig import demo_floor_toml
from deskline.sim.client import Answer, ClientSystem
from deskline.sim.console import VirtualConsole

SECRET = "live-floor-secret"
SECRET_ENV = "DESKLINE_LIVEFLOOR_SECRET"
SUPERVISOR, PASSWORD = "sam", "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(
    pred: Callable[[], Any], timeout: float = 20.0, what: str = "", every: float = 0.05
) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
        except (OSError, httpx.HTTPError):
            got = None
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def deskline(*args: str, stdin: str | None = None, state: Path) -> str:
    """Runs the CLI in its own process (as a technician would) and returns stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "deskline.cli", *args, "--state", str(state)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


class LiveFloor:
    """Start with `with LiveFloor(tmp, consoles=2) as lf:`; lf.url, lf.vcs, lf.token."""

    def __init__(self, work: Path, consoles: int = 2, public: bool = True) -> None:
        self.work = work
        self.state = work / "state"
        self.consoles = consoles
        self.public = public
        self.url = ""
        self.token = ""
        self.vcs: list[VirtualConsole] = []
        self.client: ClientSystem | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __enter__(self) -> LiveFloor:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.client = ClientSystem(SECRET, answer=Answer(ack_after_s=None)).start()
        floor = self.work / "floor.toml"
        floor.write_text(
            demo_floor_toml(self.consoles)
            + self.client.floor_tables(SECRET_ENV, ["volt", "northwind", "harbour"])
        )
        if self.consoles:
            self.vcs = [
                VirtualConsole(self.work / f"desk-{i:02d}", device_id=f"desk-{i:02d}")
                for i in range(1, self.consoles + 1)
            ]
            for vc in self.vcs:
                vc.start()
        deskline(
            "supervisor", "add", SUPERVISOR, "--password-stdin", stdin=PASSWORD, state=self.state
        )
        self.token = deskline(
            "supervisor", "token", SUPERVISOR, "--label", "tests", "--json", state=self.state
        )
        self.token = _token_of(self.token)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "deskline.cli", "daemon", "--state", str(self.state)]
        argv += ["--floor", str(floor), "--no-usb", "--http", f"127.0.0.1:{port}"]
        if self.public:
            argv.append("--web-public")
        for vc in self.vcs:
            argv += ["--port", str(vc.port_link)]
        self._log = open(self.work / "daemon.log", "ab")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=self._log, env={**os.environ, SECRET_ENV: SECRET}
        )
        wait(lambda: httpx.get(self.url + "/api/v1/health").status_code == 200, what="the daemon")
        for vc in self.vcs:
            assert vc.wait_display("READY", 20), self.log()

    def ask(self, op: str, **req: Any) -> dict[str, Any]:
        return control.request(self.state / "deskline.sock", {"op": op, **req}, timeout=20)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return (self.work / "daemon.log").read_text(errors="replace")[-4000:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                code = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(5)
            self.proc = None
            assert code == 0 or exc[:1] != (None,), f"the daemon exited {code}: {self.log()}"
        if self._log is not None:
            self._log.close()
            self._log = None
        for vc in self.vcs:
            vc.stop()
        if self.client is not None:
            self.client.stop()
            self.client = None


def _token_of(text: str) -> str:
    import json

    reply = json.loads(text)
    token = reply.get("token")
    assert isinstance(token, str) and token, reply
    return token
