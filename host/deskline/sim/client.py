"""A client's system on a real local HTTP server: takes escalation webhooks, answers later.

What a well-behaved client does, and what a bad day looks like:

- checks every delivery's Deskline-Signature with the shared secret
  (401 when it does not match, recorded);
- refuses a delivery it already has under the same Idempotency-Key with
  409 (recorded as a duplicate);
- can be told to fail the next deliveries with 500, or to hold them past
  the sender's timeout (the delivery counts as received, as it would at a
  client that processed it and then stalled);
- acknowledges and resolves each trigger through the daemon's signed
  callback after the delays of its `Answer` policy, late ones included,
  retrying while the daemon is unreachable.

Used by the tests and by the demo, in-process:

    with ClientSystem(secret, answer=Answer(ack_after_s=20, resolve_after_s=60)) as client:
        floor_toml = f'url = "{client.url}"'
        ...
        client.wait_for(lambda c: len(c.accepted()) == 3, 10)

or on its own: `python -m deskline.sim.client --secret-env NAME --port 8099`.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from deskline import webhook

HOOK_PATH = "/hooks/deskline"


@dataclass
class Answer:
    """When the client answers each trigger, counted from its arrival (None: never)."""

    ack_after_s: float | None = 1.0
    resolve_after_s: float | None = None
    ticket: str = "INC{n:05d}"  # n counts the triggers received
    by: str = "client hotline"


AnswerRule = Callable[[dict[str, Any]], Answer]  # the trigger's body -> how to answer it


@dataclass(frozen=True)
class Delivery:
    """One request the client's system received, and what it answered."""

    at: float
    key: str
    event: str
    ext_id: str
    attempt: int
    body: dict[str, Any] | None
    raw: bytes = field(repr=False)
    signature_ok: bool
    answered: int  # the HTTP status sent back
    note: str = ""

    @property
    def duplicate(self) -> bool:
        return self.answered == 409

    @property
    def accepted(self) -> bool:
        """Taken as new: signature good, not failed on purpose, not a duplicate."""
        return self.answered == 202


@dataclass(frozen=True)
class Callback:
    """One acknowledge or resolve the client sent back, and the daemon's reply."""

    at: float
    ext_id: str
    action: str
    status: int | None
    reply: Any
    late_by_s: float | None = None  # past the deadline the body named (None: in time)


class ClientSystem:
    """The client's system: start(), point the floor's webhook url at `url`, stop()."""

    def __init__(
        self,
        secret: bytes | str,
        *,
        answer: Answer | AnswerRule | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        callback_url: str = "",
        tolerance_s: float = webhook.TOLERANCE_S,
        callback_retry_s: float = 0.5,
        callback_give_up_s: float = 30.0,
    ) -> None:
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.answer = answer or Answer()
        self.callback_url = callback_url.rstrip("/")
        self.tolerance_s = tolerance_s
        self.callback_retry_s = callback_retry_s
        self.callback_give_up_s = callback_give_up_s
        self._cond = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._callbacks: list[Callback] = []
        self._keys: set[str] = set()
        self._fail = 0
        self._hang = 0
        self._hang_s = 0.0
        self._triggers = 0
        self._stop = threading.Event()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._server = _Server((host, port), _Handler)
        self._server.client = self
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._threads: list[threading.Thread] = []
        self._http: httpx.Client | None = None

    @property
    def url(self) -> str:
        """The webhook url to give the account (`url = ...` in the floor file)."""
        return f"http://{self.host}:{self.port}{HOOK_PATH}"

    def floor_tables(
        self,
        secret_env: str,
        accounts: Iterable[str],
        deadlines: Mapping[str, tuple[str, str]] | None = None,
        **keys: Any,
    ) -> str:
        """`[accounts.<key>.escalation]` tables sending each account's escalations
        here, to append to a floor file (the demo's, a test's); keys are more
        policy keys, e.g. timeout_s=2, and deadlines {"urgent": ("30s", "5m")}."""
        out: list[str] = []
        for key in accounts:
            out += [f"[accounts.{key}.escalation]", f'url = "{self.url}"']
            out += [f'secret_env = "{secret_env}"']
            out += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]  # JSON scalars read as TOML
            if deadlines:
                out += [f"[accounts.{key}.escalation.deadlines]"]
                out += [
                    f'{s} = {{ ack = "{a}", resolve = "{r}" }}' for s, (a, r) in deadlines.items()
                ]
            out.append("")
        return "\n".join(out)

    # --- life cycle ----------------------------------------------------------------
    def start(self) -> ClientSystem:
        self._http = httpx.Client(timeout=5.0)
        for target, name in ((self._serve, "http"), (self._timer_loop, "timers")):
            t = threading.Thread(target=target, name=f"client-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()  # joins the request threads (held ones end now)
        for t in self._threads:
            t.join(timeout=5)
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> ClientSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- telling it how to behave -------------------------------------------------------
    def fail_next(self, n: int) -> None:
        """Answer the next n deliveries with 500 (they are not taken)."""
        with self._cond:
            self._fail = n

    def hang_next(self, n: int, seconds: float = 30.0) -> None:
        """Take the next n deliveries but answer only after `seconds`
        (past the sender's timeout: it will send them again)."""
        with self._cond:
            self._hang, self._hang_s = n, seconds

    def set_answer(self, answer: Answer | AnswerRule) -> None:
        """How later triggers are answered: one Answer, or a function of the
        trigger's body (e.g. late for urgent ones only)."""
        with self._cond:
            self.answer = answer

    # --- what it saw ------------------------------------------------------------------
    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    def accepted(self, event: str | None = None) -> list[Delivery]:
        """Deliveries taken as new (one per idempotency key), in arrival order."""
        return [d for d in self.deliveries() if d.accepted and (event is None or d.event == event)]

    def duplicates(self) -> list[Delivery]:
        return [d for d in self.deliveries() if d.duplicate]

    def callbacks(self) -> list[Callback]:
        with self._cond:
            return list(self._callbacks)

    def keys_per_event(self) -> dict[tuple[str, str], set[str]]:
        """(ext_id, event) -> the idempotency keys it came under (one, if all is well)."""
        out: dict[tuple[str, str], set[str]] = {}
        for d in self.deliveries():
            if d.signature_ok:
                out.setdefault((d.ext_id, d.event), set()).add(d.key)
        return out

    def wait_for(self, pred: Callable[[ClientSystem], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    # --- the webhook ----------------------------------------------------------------------
    def _receive(self, headers: Any, raw: bytes) -> tuple[int, dict[str, Any], float]:
        """(status, reply, seconds to hold the reply) for one POST."""
        now = time.time()
        key = headers.get(webhook.IDEMPOTENCY_HEADER, "")
        attempt = int(headers.get(webhook.ATTEMPT_HEADER, "0") or 0)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                body = None
        except ValueError:
            body = None
        event = str((body or {}).get("event", headers.get(webhook.EVENT_HEADER, "")))
        ext_id = str((body or {}).get("ext_id", ""))
        try:
            webhook.verify(
                self.secret, headers.get(webhook.SIGNATURE_HEADER), raw, now, self.tolerance_s
            )
            sig_ok, sig_error = True, ""
        except webhook.SignatureError as e:
            sig_ok, sig_error = False, str(e)
        hold = 0.0
        reply: dict[str, Any]
        with self._cond:
            if not sig_ok:
                status, reply, note = 401, {"error": sig_error}, sig_error
            elif not key:
                status, reply, note = 400, {"error": "no Idempotency-Key"}, "no key"
            elif self._fail > 0:
                self._fail -= 1
                status, reply, note = 500, {"error": "told to fail"}, "failed on purpose"
            elif key in self._keys:
                status, reply, note = 409, {"error": "duplicate", "idempotency_key": key}, ""
            else:
                self._keys.add(key)
                status, reply, note = 202, {"ok": True}, ""
                if self._hang > 0:
                    self._hang -= 1
                    hold = self._hang_s
                if event == "trigger" and body is not None:
                    self._triggers += 1
                    reply["ticket"] = self._schedule(body, now)
            self._deliveries.append(
                Delivery(now, key, event, ext_id, attempt, body, raw, sig_ok, status, note)
            )
            self._cond.notify_all()
        return status, reply, hold

    def _schedule(self, body: dict[str, Any], now: float) -> str:
        answer = self.answer if isinstance(self.answer, Answer) else self.answer(body)
        ticket = answer.ticket.format(n=self._triggers)
        for action, after in (
            ("acknowledge", answer.ack_after_s),
            ("resolve", answer.resolve_after_s),
        ):
            if after is not None:
                self._seq += 1
                due = now + after

                def fire(b: dict[str, Any] = body, a: str = action, t: str = ticket) -> None:
                    self._call_back(b, a, t, answer.by)

                heapq.heappush(self._timers, (due, self._seq, fire))
        self._cond.notify_all()
        return ticket

    # --- answering back -----------------------------------------------------------------
    def _timer_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._timers or self._timers[0][0] > time.time():
                    wait = self._timers[0][0] - time.time() if self._timers else 0.5
                    self._cond.wait(max(0.01, min(wait, 0.5)))
                    continue
                _, _, fire = heapq.heappop(self._timers)
            fire()

    def _call_back(self, body: dict[str, Any], action: str, ticket: str, by: str) -> None:
        ext_id = str(body.get("ext_id", ""))
        links = body.get("links") or {}
        url = links.get("callback") or f"{self.callback_url}/api/v1/callbacks"
        sla = body.get("sla") or {}
        due = sla.get("acknowledge_by" if action == "acknowledge" else "resolve_by")
        late = None
        if isinstance(due, str):
            past = time.time() - _epoch(due)
            late = round(past, 1) if past > 0 else None
        payload = webhook.canonical(
            {"ext_id": ext_id, "action": action, "ticket": ticket, "by": by}
        )
        end = time.monotonic() + self.callback_give_up_s
        status: int | None = None
        reply: Any = None
        while not self._stop.is_set():
            hdrs = {
                "Content-Type": "application/json",
                webhook.SIGNATURE_HEADER: webhook.sign(self.secret, payload, int(time.time())),
            }
            try:
                assert self._http is not None
                r = self._http.post(url, content=payload, headers=hdrs)
                status = r.status_code
                try:
                    reply = r.json()
                except ValueError:
                    reply = r.text
                if status < 500:
                    break
            except httpx.HTTPError as e:
                status, reply = None, f"{type(e).__name__}: {e}"
            if time.monotonic() > end:
                break
            self._stop.wait(self.callback_retry_s)
        with self._cond:
            self._callbacks.append(Callback(time.time(), ext_id, action, status, reply, late))
            self._cond.notify_all()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for them: nothing outlives stop()
    block_on_close = True
    client: ClientSystem


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        if self.path != HOOK_PATH:
            self._reply(404, {"error": f"no {self.path} here; deliveries go to {HOOK_PATH}"})
            return
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        client = self.server.client
        status, reply, hold = client._receive(self.headers, raw)
        if hold:
            client._stop.wait(hold)
        self._reply(status, reply)

    def _reply(self, status: int, reply: dict[str, Any]) -> None:
        data = json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the sender gave up waiting (a held delivery)
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="a client's system taking Deskline escalations")
    p.add_argument("--secret-env", required=True, help="environment variable with the secret")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ack-after", type=float, default=1.0, help="seconds; negative: never")
    p.add_argument("--resolve-after", type=float, default=-1.0, help="seconds; negative: never")
    p.add_argument("--fail-next", type=int, default=0, help="answer this many with 500")
    p.add_argument("--callback-url", default="", help="the daemon's --http address")
    args = p.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        print(f"the environment variable {args.secret_env} is not set", file=sys.stderr)
        return 1
    answer = Answer(
        ack_after_s=args.ack_after if args.ack_after >= 0 else None,
        resolve_after_s=args.resolve_after if args.resolve_after >= 0 else None,
    )
    client = ClientSystem(
        secret, answer=answer, host=args.host, port=args.port, callback_url=args.callback_url
    )
    client.fail_next(args.fail_next)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with client:
        print(json.dumps({"url": client.url}), flush=True)
        seen = 0
        try:
            while not stop.wait(0.2):
                for d in client.deliveries()[seen:]:
                    print(
                        json.dumps(
                            {
                                "event": d.event,
                                "ext_id": d.ext_id,
                                "key": d.key,
                                "answered": d.answered,
                                "signature_ok": d.signature_ok,
                            }
                        ),
                        flush=True,
                    )
                seen = len(client.deliveries())
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
