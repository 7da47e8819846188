"""Escalations through the real daemon: a virtual console running the firmware,
a real HTTP server as the client's system, and a kill -9 in the middle of a
delivery.

The client fails the first two deliveries with 500 and takes the third but
holds its answer past the daemon's timeout; the daemon is killed then.  The
restarted daemon sends it again under the same idempotency key (the client
refuses it as a duplicate), the client's signed acknowledge comes back
through the callback endpoint and the desk shows it; a second, urgent
escalation breaches and a supervisor resolves it from the CLI.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deskline import control
from deskline.cli import main as cli_main
from deskline.errors import DesklineError
from deskline.floorconfig import demo_floor_toml
from deskline.sim.client import Answer, ClientSystem
from deskline.sim.console import VirtualConsole
from deskline.wire import codec

SECRET = "daemon-test-secret"
ENV = "DESKLINE_ESC_TEST_SECRET"


def wait(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
        except (sqlite3.Error, OSError, DesklineError):  # a stale socket, a busy file
            got = None
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_escalations_survive_kill_9_and_reach_the_desk(tmp_path: Path, capsys: Any) -> None:
    client = ClientSystem(SECRET, answer=Answer(ack_after_s=1.0, ticket="INC{n}")).start()
    floor_file = tmp_path / "floor.toml"
    floor_file.write_text(
        demo_floor_toml(1)
        + client.floor_tables(
            ENV,
            ["volt"],
            {"urgent": ("2s", "1h")},
            timeout_s=1.5,
            retry_base_s=0.1,
            retry_cap_s=0.3,
        )
    )
    state = tmp_path / "state"
    sock, db = state / "deskline.sock", state / "deskline.db"
    vc = VirtualConsole(tmp_path / "desk-01", device_id="desk-01")
    vc.start()
    log = open(tmp_path / "daemon.log", "ab")
    env = {**os.environ, ENV: SECRET}
    argv = [sys.executable, "-m", "deskline.cli", "daemon", "--state", str(state)]
    argv += ["--floor", str(floor_file), "--no-usb", "--port", str(vc.port_link)]
    argv += ["--http", f"127.0.0.1:{free_port()}"]  # one port: the links in sent bodies hold

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        try:
            wait(lambda: sock.exists() and ask("ping")["ok"], what="the daemon")
        except BaseException:
            proc.kill()
            proc.wait(10)
            raise
        return proc

    def ask(op: str, **req: Any) -> dict[str, Any]:
        return control.request(sock, {"op": op, **req}, timeout=20)

    def rows(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def daemon_log() -> str:
        return (tmp_path / "daemon.log").read_text(errors="replace")[-4000:]

    daemon = start()
    try:
        assert ask("web")["url"].startswith("http://127.0.0.1:")
        assert vc.wait_display("Volt Energy", 20), daemon_log()
        # 1: two 500s, then taken but answered only after the daemon gave up waiting.
        client.fail_next(2)
        client.hang_next(1, seconds=10.0)
        vc.hook(True)
        vc.press("ESC", ms=150)
        wait(lambda: len(client.deliveries()) == 3, what="two 500s and a held delivery")
        daemon.kill()  # kill -9 while the held delivery is in flight
        daemon.wait(10)
        (esc1,) = rows("SELECT ext_id FROM escalations")[0]
        [outbox] = rows("SELECT idem_key, attempts, delivered FROM outbox")
        assert outbox == (f"{esc1}/trigger", 3, None)

        client.set_answer(Answer(ack_after_s=None))  # the next one is never answered
        daemon = start()
        # The same key again: the client has it already and says so; its
        # acknowledge, retried while the daemon was down, lands now.
        wait(lambda: len(client.deliveries()) == 4, what="the resend after the restart")
        assert [d.answered for d in client.deliveries()] == [500, 500, 202, 409]
        assert client.keys_per_event() == {(esc1, "trigger"): {f"{esc1}/trigger"}}
        assert all(d.signature_ok for d in client.deliveries())
        body = client.accepted()[0].body
        assert body is not None and body["desk"]["name"] == "desk-01"
        assert body["links"]["callback"] == ask("web")["url"] + "/api/v1/callbacks"
        seq1 = int(esc1.rsplit("-", 1)[1])
        assert vc.wait_display(f"E{seq1} ACK", 10), daemon_log()
        wait(lambda: [c.status for c in client.callbacks()] == [200], what="the callback")
        assert rows("SELECT delivered IS NOT NULL, attempts FROM outbox") == [(1, 4)]
        assert rows("SELECT status, ticket FROM escalations") == [(codec.ESC_ACKED, "INC1")]

        # 2: urgent (keypad 1, then ESCALATE), never answered: breached on the desk.
        vc.press("1", ms=150)
        vc.press("ESC", ms=150)
        esc2 = wait(
            lambda: [
                r[0]
                for r in rows(
                    "SELECT ext_id FROM escalations WHERE severity = 1 AND ext_id IS NOT NULL"
                )
            ],
            what="the urgent escalation",
        )[0]
        seq2 = int(esc2.rsplit("-", 1)[1])
        assert vc.wait_display(f"E{seq2} BRCH", 10), daemon_log()
        listed = {e["ext_id"]: e for e in ask("escalations", open=True)["escalations"]}
        assert listed[esc2]["status"] == "breached" and listed[esc2]["breached"] == ["ack"]
        assert listed[esc1]["status"] == "acknowledged"
        # A supervisor resolves it from the command line: the desk follows.
        control_opts = ["--control", str(sock), "--json"]
        assert cli_main(["escalation", "resolve", esc2, "--ticket", "PH-1", *control_opts]) == 0
        reply = json.loads(capsys.readouterr().out)
        assert reply["changed"] and reply["escalation"]["status"] == "resolved"
        assert vc.wait_display(f"E{seq1} ACK", 10), daemon_log()
        assert cli_main(["escalation", "list", "--open", *control_opts]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(e["ext_id"], e["status"]) for e in listed] == [(esc1, "acknowledged")]
        note = rows("SELECT note FROM escalation_history WHERE status = 3")[0][0]
        assert note.startswith("resolved by supervisor") and "(missed: ack)" in note
    finally:
        if daemon.poll() is None:
            daemon.terminate()
        code = daemon.wait(15)
        log.close()
        vc.stop()
        client.stop()
    assert code == 0, daemon_log()
    assert not vc.traceback(), vc.traceback()
