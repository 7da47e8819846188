# Agent state machine under the unix port: calls, the five wrap-up modes,
# escalations and help requests, with a fake journal and clock.
import json

import agent as A
import config as C
import wire as W

PRESS = 1
SHORT = 2
LONG = 3
STAR = 10
HASH = 11
ESC = 12

CODES = [[1, "Billing query", True], [12, "Meter read", False], [99, "ACW timeout", False]]


class Rec:
    def __init__(self):
        self.events = []
        self.seq = 100
        self.refusals = []
        self.confirms = []
        self.full = False

    def emit(self, kind, a, b, c, ref, text):
        if self.full:
            return 0
        self.seq += 1
        self.events.append((self.seq, kind, a, b, c, ref, text))
        return self.seq

    def refuse(self, msg):
        self.refusals.append(msg)

    def confirm(self, msg):
        self.confirms.append(msg)

    def kinds(self, skip=(W.EV_PRESS, W.EV_STATE)):
        return [e[1] for e in self.events if e[1] not in skip]

    def last(self, kind):
        for e in reversed(self.events):
            if e[1] == kind:
                return e
        return None


def make(mode, acw_s=30, fallback=99, **kw):
    obj = {"version": 1, "mode": mode, "acw_s": acw_s, "fallback": fallback, "codes": CODES}
    obj.update(kw)
    cfg, err = C.parse(json.dumps(obj).encode())
    assert err is None, err
    r = Rec()
    return A.Agent(cfg, r.emit, r), r


def typed(ag, digits, now):
    for d in digits:
        ag.key(PRESS, int(d), 0, now)


def call(ag, t0=0, t1=5000):
    ag.hook(True, t0)
    ag.hook(False, t1)


def test_call_cycle_with_code():
    ag, r = make("mandatory")
    call(ag)
    assert ag.state == A.WRAP_UP
    typed(ag, "12", 6000)
    ag.key(PRESS, HASH, 0, 7000)
    assert ag.state == A.READY
    wr = r.last(W.EV_WRAPUP)
    start = r.last(W.EV_CALL_START)
    assert wr[2] == 12 and wr[4] == W.HOW_CODE and wr[5] == start[0] and wr[3] == 2
    assert r.kinds() == [W.EV_CALL_START, W.EV_CALL_END, W.EV_WRAPUP]


def test_invalid_code_refused_never_sent():
    ag, r = make("mandatory")
    call(ag)
    typed(ag, "57", 6000)
    ag.key(PRESS, HASH, 0, 6100)
    assert ag.state == A.WRAP_UP
    assert r.refusals == ["Code 57 invalid"]
    assert r.last(W.EV_WRAPUP) is None
    assert r.last(W.EV_CODE_REFUSED)[2] == 57


def test_mandatory_has_no_timeout_but_goes_overdue():
    ag, r = make("mandatory")
    call(ag)
    ag.tick(5000 + 31000)
    assert ag.state == A.WRAP_UP and ag.wrap_overdue(5000 + 31000)
    ag.key(PRESS, HASH, 0, 40000)
    assert r.refusals == ["Enter a code #"]


def test_optional_skip_and_timeout():
    ag, r = make("optional", fallback=0)
    call(ag)
    ag.key(PRESS, HASH, 0, 6000)
    assert ag.state == A.READY and r.last(W.EV_WRAPUP)[4] == W.HOW_SKIPPED
    call(ag, 10000, 20000)
    ag.tick(20000 + 30000)
    assert ag.state == A.READY
    assert r.last(W.EV_WRAPUP)[4] == W.HOW_SKIPPED and r.last(W.EV_WRAPUP)[2] == 0


def test_mandatory_timeout_records_fallback_but_waits_for_typing():
    ag, r = make("mandatory_timeout")
    call(ag)
    ag.tick(5000 + 29999)
    assert ag.state == A.WRAP_UP
    ag.tick(5000 + 30000)
    wr = r.last(W.EV_WRAPUP)
    assert ag.state == A.READY and wr[2] == 99 and wr[4] == W.HOW_TIMEOUT and wr[3] == 30
    # Typing at the deadline: the agent gets to finish the code.
    call(ag, 40000, 45000)
    typed(ag, "1", 74000)
    ag.tick(45000 + 31000)
    assert ag.state == A.WRAP_UP
    ag.key(PRESS, HASH, 0, 45000 + 32000)
    assert r.last(W.EV_WRAPUP)[2] == 1 and r.last(W.EV_WRAPUP)[4] == W.HOW_CODE


def test_forced_timeout_ends_even_while_typing():
    ag, r = make("forced_timeout")
    call(ag)
    typed(ag, "1", 30000)
    ag.tick(5000 + 30000)
    wr = r.last(W.EV_WRAPUP)
    assert ag.state == A.READY and wr[2] == 99 and wr[4] == W.HOW_FORCED


def test_forced_timeout_keeps_the_agent_until_the_end():
    ag, r = make("forced_timeout")
    call(ag)
    typed(ag, "12", 6000)
    ag.key(PRESS, HASH, 0, 6500)
    assert ag.state == A.WRAP_UP and r.last(W.EV_WRAPUP) is None
    ag.tick(5000 + 30000)
    wr = r.last(W.EV_WRAPUP)
    assert ag.state == A.READY and wr[2] == 12 and wr[4] == W.HOW_CODE and wr[3] == 30


def test_agent_requested_only_when_asked():
    ag, r = make("agent_requested")
    call(ag)
    assert ag.state == A.READY and r.last(W.EV_WRAPUP) is None
    ag.hook(True, 10000)
    ag.key(PRESS, HASH, 0, 11000)
    assert r.last(W.EV_WRAP_REQUEST) is not None
    ag.hook(False, 12000)
    assert ag.state == A.WRAP_UP
    typed(ag, "1", 13000)
    ag.key(PRESS, HASH, 0, 13100)
    assert ag.state == A.READY and r.last(W.EV_WRAPUP)[2] == 1


def test_host_and_hook_report_one_call():
    ag, r = make("mandatory")
    ag.host_call(W.CALL_START, "1700.5", 0)
    ag.hook(True, 100)
    starts = [e for e in r.events if e[1] == W.EV_CALL_START]
    assert len(starts) == 2 and starts[1][5] == starts[0][0] and starts[0][6] == "1700.5"
    ag.hook(False, 5000)
    ag.host_call(W.CALL_END, "1700.5", 5100)
    assert len([e for e in r.events if e[1] == W.EV_CALL_END]) == 1


def test_a_late_acd_start_links_the_call_just_ended():
    ag, r = make("mandatory")
    ag.hook(True, 0)
    ag.hook(False, 3000)
    assert ag.state == A.WRAP_UP
    call_seq = ag.call
    ag.host_call(W.CALL_START, "1700.7", 3400)  # the ACD's CONNECT, read late
    assert ag.state == A.WRAP_UP and ag.call == call_seq
    start = r.last(W.EV_CALL_START)
    assert start[2] == 2 and start[5] == call_seq and start[6] == "1700.7"
    ag.host_call(W.CALL_START, "1700.7", 3500)  # a repeat of it: nothing new
    assert len([e for e in r.events if e[1] == W.EV_CALL_START]) == 2
    ag.host_call(W.CALL_END, "1700.7", 3600)
    assert ag.state == A.WRAP_UP and r.last(W.EV_WRAPUP) is None


def test_a_stale_acd_end_does_not_end_the_next_call():
    ag, r = make("mandatory")
    ag.host_call(W.CALL_START, "1700.1", 0)
    ag.hook(False, 2000)
    typed(ag, "1", 2500)
    ag.key(PRESS, HASH, 0, 2600)
    assert ag.state == A.READY
    ag.host_call(W.CALL_START, "1700.2", 3000)
    ag.host_call(W.CALL_END, "1700.1", 3100)  # the first call's end, late
    assert ag.state == A.ON_CALL
    ag.host_call(W.CALL_END, "1700.2", 5000)
    assert ag.state == A.WRAP_UP


def test_a_new_acd_call_long_after_the_last_one_starts_a_call():
    ag, r = make("mandatory")
    ag.hook(True, 0)
    ag.hook(False, 3000)
    ag.host_call(W.CALL_START, "1700.3", 3000 + 6000)
    assert ag.state == A.ON_CALL and ag.acd_id == "1700.3"
    assert r.last(W.EV_WRAPUP)[4] == W.HOW_INTERRUPTED


def test_escalate_on_call_with_severity_and_cancel():
    ag, r = make("mandatory")
    ag.host_call(W.CALL_START, "1700.9", 0)
    typed(ag, "1", 1000)
    ag.key(SHORT, ESC, 200, 1100)
    esc = r.last(W.EV_ESC_RAISE)
    assert esc[2] == 1 and esc[4] == 0 and esc[6] == "1700.9"
    assert ag.escalations[0][0] == esc[0]
    assert ag.esc_status(esc[0], 0, W.ESC_ACKED, 600, "INC1", 2000)
    worst, _ = ag.esc_summary()
    assert worst[3] == W.ESC_ACKED and ag.esc_left_ms(worst, 2000) == 600000
    ag.key(LONG, ESC, 1500, 3000)
    assert r.last(W.EV_ESC_CANCEL)[5] == esc[0] and not ag.escalations


def test_escalate_refused_when_ready_and_bad_severity():
    ag, r = make("mandatory")
    ag.key(SHORT, ESC, 100, 0)
    assert r.refusals == ["No call to escalate"] and r.last(W.EV_ESC_RAISE) is None
    ag.hook(True, 0)
    typed(ag, "7", 10)
    ag.key(SHORT, ESC, 100, 20)
    assert r.refusals[-1] == "Severity 1-4"


def test_escalate_in_wrap_up_uses_default_severity():
    ag, r = make("mandatory", severity=3)
    call(ag)
    ag.key(SHORT, ESC, 100, 6000)
    assert r.last(W.EV_ESC_RAISE)[2] == 3


def test_help_request_long_star_toggles():
    ag, r = make("mandatory")
    ag.key(LONG, STAR, 1500, 0)
    h = r.last(W.EV_ESC_RAISE)
    assert h[4] == 1
    _, help_open = ag.esc_summary()
    assert help_open
    ag.key(LONG, STAR, 1500, 100)
    assert r.last(W.EV_ESC_CANCEL)[4] == 1 and not ag.escalations


def test_resolved_escalation_leaves_the_table():
    ag, r = make("mandatory")
    ag.hook(True, 0)
    ag.key(SHORT, ESC, 100, 10)
    eid = r.last(W.EV_ESC_RAISE)[0]
    ag.esc_status(eid, 0, W.ESC_BREACHED, -5, "", 20)
    assert ag.esc_summary()[0][3] == W.ESC_BREACHED
    ag.esc_status(eid, 0, W.ESC_RESOLVED, 0, "", 30)
    assert ag.esc_summary() == (None, False)


def test_unknown_escalation_after_reboot_is_adopted():
    ag, r = make("mandatory")
    assert ag.esc_status(4242, 0, W.ESC_ACKED, 100, "INC9", 0)
    assert ag.esc_summary()[0][0] == 4242
    assert not ag.esc_status(4243, 0, W.ESC_RESOLVED, 0, "", 0)


def test_star_clears_typed_code():
    ag, r = make("mandatory")
    call(ag)
    typed(ag, "5", 6000)
    ag.key(SHORT, STAR, 100, 6100)
    assert ag.typed == -1


def test_journal_full_keeps_state():
    ag, r = make("mandatory")
    call(ag)
    r.full = True
    typed(ag, "12", 6000)
    ag.key(PRESS, HASH, 0, 6100)
    assert ag.state == A.WRAP_UP
    r.full = False
    typed(ag, "12", 7000)
    ag.key(PRESS, HASH, 0, 7100)
    assert ag.state == A.READY


def test_new_call_during_wrap_up_records_fallback():
    ag, r = make("mandatory_timeout")
    call(ag)
    ag.hook(True, 7000)
    wr = r.last(W.EV_WRAPUP)
    assert wr[2] == 99 and wr[4] == W.HOW_INTERRUPTED and ag.state == A.ON_CALL
