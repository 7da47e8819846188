"""Webhook bodies, signatures and sends, against the client simulator's real HTTP server."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from deskline import webhook
from deskline.sim.client import Answer, ClientSystem
from hypothesis import given, settings
from hypothesis import strategies as st

SECRET = b"shared-secret"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.binary(min_size=1, max_size=40), st.integers(0, 2**31))
def test_a_signature_verifies_and_any_change_breaks_it(body: bytes, secret: bytes, t: int) -> None:
    header = webhook.sign(secret, body, t)
    assert webhook.verify(secret, header, body, now=t) == t
    with pytest.raises(webhook.SignatureError) as e:
        webhook.verify(secret, header, body + b"x", now=t)
    assert e.value.code == "bad_signature"
    with pytest.raises(webhook.SignatureError):
        webhook.verify(secret + b"x", header, body, now=t)
    bumped = header.replace(f"t={t},", f"t={t + 1},")
    with pytest.raises(webhook.SignatureError):
        webhook.verify(secret, bumped, body, now=t)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"event":"trigger"}'
    mac = hmac.new(SECRET, b"1714557123." + body, hashlib.sha256).hexdigest()
    assert webhook.sign(SECRET, body, 1714557123) == f"t=1714557123,v1={mac}"


def test_verify_names_what_is_wrong() -> None:
    body = b"{}"
    now = 1_700_000_000
    good = webhook.sign(SECRET, body, now)
    for header, code in [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("v1=abc", "malformed_signature"),
        (f"t={now}", "malformed_signature"),
        (webhook.sign(SECRET, body, now - 301), "stale_signature"),
        (webhook.sign(SECRET, body, now + 301), "stale_signature"),
    ]:
        with pytest.raises(webhook.SignatureError) as e:
            webhook.verify(SECRET, header, body, now=now)
        assert e.value.code == code, header
    # Rotation: a header may carry several v1; one matching is enough.
    rotated = f"{good},v1={'0' * 64}"
    assert webhook.verify(SECRET, rotated, body, now=now + 300) == now


def test_the_trigger_body_is_stable_bytes_with_the_case() -> None:
    case = webhook.Case(
        ext_id="DL-desk-03-1-57",
        kind=0,
        severity=1,
        raised=1_700_000_000,
        ack_due=1_700_000_600,
        resolve_due=1_700_007_200,
        clock="24/7",
        account="volt",
        account_name="Volt Energy",
        queue="volt-billing",
        desk="desk-03",
        console="desk-03",
        agent="ag-03",
        acd_call_id="1699999900.12",
        callerid="+447700900123",
        call_started=1_699_999_905,
        time_on_call_s=95,
        repeat_count=2,
        earlier=(
            webhook.Contact(
                "1699000000.1",
                1_699_000_000,
                "volt-billing",
                "completed",
                code=7,
                label="Confusing bill",
                failure_demand=True,
            ),
        ),
    )
    raw = webhook.trigger_body(case)
    assert raw == webhook.trigger_body(case)  # the outbox stores it; retries resend it
    body = json.loads(raw)
    assert body["schema"] == "deskline.escalation/1" and body["event"] == "trigger"
    assert body["severity"] == {"level": 1, "name": "urgent"}
    assert body["raised_at"] == "2023-11-14T22:13:20Z"
    assert body["sla"]["acknowledge_by"] == "2023-11-14T22:23:20Z"
    assert body["caller"]["earlier_contacts"][0]["wrapup"]["label"] == "Confusing bill"
    assert "links" not in body
    cancel = json.loads(webhook.cancel_body("DL-desk-03-1-57", 1_700_000_100))
    assert cancel == {
        "schema": webhook.SCHEMA,
        "event": "cancel",
        "ext_id": "DL-desk-03-1-57",
        "cancelled_at": "2023-11-14T22:15:00Z",
        "reason": "cancelled at the desk",
    }


def test_send_signs_with_a_key_and_reports_500s_timeouts_and_duplicates() -> None:
    body = webhook.canonical({"schema": webhook.SCHEMA, "event": "trigger", "ext_id": "DL-x-1-1"})

    async def main(client: ClientSystem) -> list[webhook.Outcome]:
        async with httpx.AsyncClient() as http:

            async def once(secret: bytes = SECRET, timeout: float = 2.0) -> webhook.Outcome:
                return await webhook.send(
                    http,
                    client.url,
                    body,
                    secret=secret,
                    key="DL-x-1-1/trigger",
                    event="trigger",
                    timeout_s=timeout,
                )

            client.fail_next(1)
            out = [await once()]
            client.hang_next(1, seconds=1.0)
            t0 = time.monotonic()
            out.append(await once(timeout=0.2))
            assert time.monotonic() - t0 < 0.9  # the timeout, not the client, ended it
            out.append(await once())
            out.append(await once(secret=b"not the secret"))
            out.append(
                await webhook.send(
                    http,
                    "http://127.0.0.1:9/none",
                    body,
                    secret=SECRET,
                    key="k",
                    event="trigger",
                    timeout_s=1.0,
                )
            )
            return out

    with ClientSystem(SECRET, answer=Answer(ack_after_s=None)) as client:
        failed, timed_out, dup, forged, refused = asyncio.run(main(client))
        assert (failed.ok, failed.status) == (False, 500) and "told to fail" in failed.error
        assert (timed_out.ok, timed_out.status) == (False, None)
        assert timed_out.error == "no answer within 0.2 s"
        assert dup.ok and dup.duplicate  # the held one was taken: the retry is refused
        assert (forged.ok, forged.status) == (False, 401)
        assert not refused.ok and refused.status is None and refused.error
        seen = client.deliveries()
        assert [d.answered for d in seen] == [500, 202, 409, 401]
        assert all(d.key == "DL-x-1-1/trigger" for d in seen)
        assert [d.signature_ok for d in seen] == [True, True, True, False]
        assert [d.attempt for d in seen] == [1, 1, 1, 1]
