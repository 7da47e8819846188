# Agent state machine: READY -> ON_CALL -> WRAP_UP -> READY, wrap-up modes,
# escalations and help requests.  Pure logic: time and outputs are injected.
from time import ticks_add, ticks_diff

import config as C
import wire as W
from micropython import const

READY = const(0)
ON_CALL = const(1)
WRAP_UP = const(2)
STATE_NAMES = ("READY", "ON CALL", "WRAP-UP")

# Key codes and key event kinds, as keys.py reports them.
_STAR = const(10)
_HASH = const(11)
_ESC = const(12)
_K_PRESS = const(1)
_K_SHORT = const(2)
_K_LONG = const(3)

_SRC_HOOK = const(1)
_SRC_HOST = const(2)

# How long mandatory-timeout waits for a code the agent is still typing.
_TYPING_GRACE_MS = const(15000)
_MAX_ESC = const(4)
# A host call start this soon after the handset ended a call the ACD had not
# named is that call's, late.
_TRAILING_MS = const(5000)

# An escalation entry: [id, kind, severity, status, deadline ticks or None, ticket].
_E_ID = const(0)
_E_KIND = const(1)
_E_STATUS = const(3)
_E_DEADLINE = const(4)
_E_TICKET = const(5)

_OPEN = (W.ESC_RAISED, W.ESC_DELIVERED, W.ESC_ACKED, W.ESC_BREACHED)


class Agent:
    # emit(kind, a, b, c, ref, text) journals an event and returns its seq
    # (0 when the journal refused it); ui has refuse(msg), confirm(msg).
    def __init__(self, cfg, emit, ui):
        self.cfg = cfg
        self.emit = emit
        self.ui = ui
        self.state = READY
        self.call = 0  # seq of the CALL_START event of the current/last call
        self.call_sources = 0  # bit per source that reported the call
        self.call_t0 = 0
        self.acd_id = ""
        self.acw_t0 = 0
        self.requested = False  # agent-requested mode: ACW asked for on this call
        self.typed = -1  # -1 nothing typed, else 0..99
        self.chosen = 0  # forced-timeout: the code entered, recorded at the end
        self.escalations = []

    # --- inputs -----------------------------------------------------------
    def key(self, kind, key, held_ms, now):
        if kind == _K_PRESS:
            self.emit(W.EV_PRESS, key, min(held_ms, 0xFFFF), 0, self.call, "")
            if key < 10:
                self._digit(key)
            elif key == _HASH:
                self._enter(now)
        elif kind == _K_SHORT:
            if key == _ESC:
                self._escalate(now)
            elif key == _STAR:
                self.typed = -1
        elif kind == _K_LONG:
            if key == _ESC:
                self._cancel(0)
            elif key == _STAR:
                self.typed = -1
                if not self._cancel(1):
                    self._raise(1, self.cfg.severity, now)

    def hook(self, on, now):
        if on:
            self._call_start(_SRC_HOOK, "", now)
        else:
            self._call_end(_SRC_HOOK, now)

    def host_call(self, op, call_id, now):
        # The ACD's word can trail the handset: a start for the call the
        # agent just hung up links its id to that call instead of cutting the
        # wrap-up short, and an end naming another call is stale.
        if op == W.CALL_START:
            if call_id and self.state == WRAP_UP and call_id == self.acd_id:
                return  # a repeat for the call being wrapped up
            if call_id and self.state == WRAP_UP and self._trailing(now):
                self.acd_id = call_id
                self.call_sources |= _SRC_HOST
                self.emit(W.EV_CALL_START, _SRC_HOST, 0, 0, self.call, call_id)
                return
            self._call_start(_SRC_HOST, call_id, now)
        elif not call_id or not self.acd_id or call_id == self.acd_id:
            self._call_end(_SRC_HOST, now)

    def _trailing(self, now):
        return (
            not self.acd_id
            and not self.call_sources & _SRC_HOST
            and ticks_diff(now, self.acw_t0) < _TRAILING_MS
        )

    def tick(self, now):
        # Ends after-call work on the timeout modes.
        if self.state != WRAP_UP:
            return
        mode = self.cfg.mode
        over = ticks_diff(now, self.acw_t0) >= self.cfg.acw_ms
        if not over or self.cfg.acw_ms == 0:
            return
        if mode == C.M_OPTIONAL:
            self._wrap(0, W.HOW_SKIPPED, now)
        elif mode == C.M_FORCED_TIMEOUT:
            if self.chosen:
                self._wrap(self.chosen, W.HOW_CODE, now)
            else:
                how = W.HOW_FORCED if self.typed >= 0 else W.HOW_TIMEOUT
                self._wrap(self.cfg.fallback, how, now)
        elif mode in (C.M_MANDATORY_TIMEOUT, C.M_AGENT_REQUESTED):
            grace = ticks_diff(now, self.acw_t0) >= self.cfg.acw_ms + _TYPING_GRACE_MS
            if self.typed < 0 or grace:
                self._wrap(self.cfg.fallback, W.HOW_TIMEOUT, now)

    def esc_status(self, esc_id, kind, status, deadline_s, ticket, now):
        # The host reports the client's progress on an escalation.
        e = self._find(esc_id)
        if e is None:
            if status not in _OPEN or len(self.escalations) >= _MAX_ESC:
                return False
            # Known to the host but not to us (we rebooted): show it again.
            e = [esc_id, kind, 0, status, None, ""]
            self.escalations.append(e)
        if status in _OPEN:
            e[_E_STATUS] = status
            e[_E_TICKET] = ticket
            if deadline_s == 0x7FFFFFFF:
                e[_E_DEADLINE] = None
            else:
                e[_E_DEADLINE] = ticks_add(now, deadline_s * 1000)
        else:
            self.escalations.remove(e)
            self.ui.confirm("E%d %s" % (esc_id % 10000, _STATUS_WORD[status]))
        return True

    # --- views for the LEDs and display ----------------------------------
    def acw_left_ms(self, now):
        return self.cfg.acw_ms - ticks_diff(now, self.acw_t0)

    def wrap_overdue(self, now):
        return self.state == WRAP_UP and self.cfg.acw_ms and self.acw_left_ms(now) < 0

    def talk_ms(self, now):
        return ticks_diff(now, self.call_t0)

    def esc_summary(self):
        # (worst open client escalation entry or None, help open?)
        worst = None
        rank = -1
        help_open = False
        for e in self.escalations:
            if e[_E_KIND] == 1:
                help_open = True
                continue
            r = _RANK[e[_E_STATUS]]
            if r > rank:
                worst, rank = e, r
        return worst, help_open

    def esc_left_ms(self, e, now):
        if e[_E_DEADLINE] is None:
            return None
        return ticks_diff(e[_E_DEADLINE], now)

    # --- internals ----------------------------------------------------------
    def _digit(self, d):
        if self.typed < 0 or self.typed >= 10:
            self.typed = d
        else:
            self.typed = self.typed * 10 + d

    def _enter(self, now):
        typed = self.typed
        self.typed = -1
        if self.state == ON_CALL:
            if self.cfg.mode == C.M_AGENT_REQUESTED and typed < 0:
                self.requested = True
                self.emit(W.EV_WRAP_REQUEST, 0, 0, 0, self.call, "")
                self.ui.confirm("Wrap-up requested")
            return
        if self.state != WRAP_UP:
            if typed >= 0:
                self.ui.refuse("No call to code")
            return
        if typed < 0:
            if self.cfg.mode == C.M_OPTIONAL:
                self._wrap(0, W.HOW_SKIPPED, now)
            else:
                self.ui.refuse("Enter a code #")
            return
        label = self.cfg.label(typed)
        if label is None:
            self.emit(W.EV_CODE_REFUSED, typed, 0, 0, self.call, "")
            self.ui.refuse("Code %d invalid" % typed)
            return
        if self.cfg.mode == C.M_FORCED_TIMEOUT:
            self.chosen = typed
            self.ui.confirm("%d %s" % (typed, label))
            return
        self._wrap(typed, W.HOW_CODE, now)

    def _wrap(self, code, how, now):
        acw_s = ticks_diff(now, self.acw_t0) // 1000
        if self.emit(W.EV_WRAPUP, code, min(acw_s, 0xFFFF), how, self.call, ""):
            self.typed = -1
            self.chosen = 0
            self._set(READY)
            if code:
                label = self.cfg.label(code) or ""
                self.ui.confirm("%d %s" % (code, label))

    def _call_start(self, src, call_id, now):
        if self.state == ON_CALL:
            if not self.call_sources & src:
                # The other source confirms the call: link its ACD id.
                self.call_sources |= src
                if call_id:
                    self.acd_id = call_id
                self.emit(W.EV_CALL_START, src, 0, 0, self.call, call_id)
            return
        if self.state == WRAP_UP:
            fb = self.chosen or self.cfg.fallback
            self._wrap(fb, W.HOW_CODE if self.chosen else W.HOW_INTERRUPTED, now)
        seq = self.emit(W.EV_CALL_START, src, 0, 0, 0, call_id)
        if seq:
            self.call = seq
            self.call_sources = src
            self.call_t0 = now
            self.acd_id = call_id
            self.requested = False
            self.typed = -1
            self._set(ON_CALL)

    def _call_end(self, src, now):
        if self.state != ON_CALL:
            return
        talk = ticks_diff(now, self.call_t0) // 1000
        if not self.emit(W.EV_CALL_END, src, min(talk, 0xFFFF), 0, self.call, ""):
            return
        self.typed = -1
        if self.cfg.mode == C.M_AGENT_REQUESTED and not self.requested:
            self._set(READY)
            return
        self.acw_t0 = now
        self.chosen = 0
        self._set(WRAP_UP)

    def _escalate(self, now):
        typed = self.typed
        self.typed = -1
        if self.state == READY:
            self.ui.refuse("No call to escalate")
            return
        sev = self.cfg.severity
        if typed >= 0:
            if not 1 <= typed <= 4:
                self.ui.refuse("Severity 1-4")
                return
            sev = typed
        self._raise(0, sev, now)

    def _raise(self, kind, sev, now):
        if len(self.escalations) >= _MAX_ESC:
            self.ui.refuse("Too many open")
            return
        seq = self.emit(W.EV_ESC_RAISE, sev, 0, kind, self.call, self.acd_id)
        if seq:
            self.escalations.append([seq, kind, sev, W.ESC_RAISED, None, ""])
            self.ui.confirm(("HELP %d sent" if kind else "ESC %d sent") % (seq % 10000))

    def _cancel(self, kind):
        # Cancels the newest open request of this kind; False when none.
        for i in range(len(self.escalations) - 1, -1, -1):
            e = self.escalations[i]
            if e[_E_KIND] == kind:
                if self.emit(W.EV_ESC_CANCEL, 0, 0, kind, e[_E_ID], ""):
                    self.escalations.pop(i)
                    self.ui.confirm(
                        ("HELP %d cancel" if kind else "ESC %d cancel") % (e[_E_ID] % 10000)
                    )
                return True
        return False

    def _find(self, esc_id):
        for e in self.escalations:
            if e[_E_ID] == esc_id:
                return e
        return None

    def _set(self, state):
        if state != self.state:
            self.emit(W.EV_STATE, state, self.state, 0, self.call, "")
            self.state = state


_RANK = {W.ESC_ACKED: 0, W.ESC_RAISED: 1, W.ESC_DELIVERED: 1, W.ESC_BREACHED: 2}
_STATUS_WORD = {
    W.ESC_RESOLVED: "resolved",
    W.ESC_CANCELLED: "cancelled",
    W.ESC_FAILED: "failed",
}
