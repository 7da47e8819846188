"""Erlang C staffing: the agents an interval needs to meet a service-level target.

The model (docs/metrics.md): calls arrive at random (Poisson), handle times
are exponential, callers never give up, N agents serve one queue.  Traffic
A = calls x AHT / interval, in Erlangs; a queue is stable only with N > A.

    P(wait)  = C(N, A) = N B / (N - A (1 - B)),  B = Erlang B(N, A)
    SL(T)    = 1 - P(wait) exp(-(N - A) T / AHT)
    ASA      = P(wait) AHT / (N - A)
    occupancy = A / N;  scheduled = ceil(N / (1 - shrinkage))

Erlang B comes from its recursion B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1)),
which stays within [0, 1] for any traffic: no factorials, no powers of A.
Because callers in fact abandon, the model asks for slightly more agents
than a real floor needs; it is a floor for planning, not a forecast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Occupancy above this burns agents out and the model's answers get fragile.
HIGH_OCCUPANCY_PCT = 85.0


def traffic(calls: float, interval_min: float, aht_s: float) -> float:
    """Offered traffic in Erlangs: the agents busy on average."""
    return calls * aht_s / (interval_min * 60.0)


def erlang_b(agents: int, erlangs: float) -> float:
    """Blocking probability of `agents` servers offered `erlangs` (Erlang B)."""
    b = 1.0
    for n in range(1, agents + 1):
        b = erlangs * b / (n + erlangs * b)
    return b


def _erlang_c_from_b(agents: int, erlangs: float, b: float) -> float:
    if agents <= erlangs:
        return 1.0
    return agents * b / (agents - erlangs * (1.0 - b))


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability that a caller waits at all (Erlang C); 1 when agents <= traffic."""
    return _erlang_c_from_b(agents, erlangs, erlang_b(agents, erlangs))


def service_level(agents: int, erlangs: float, aht_s: float, target_s: float) -> float:
    """Fraction of calls answered within target_s (0 when agents <= traffic)."""
    if erlangs <= 0:
        return 1.0
    if agents <= erlangs:
        return 0.0
    c = erlang_c(agents, erlangs)
    return 1.0 - c * math.exp(-(agents - erlangs) * target_s / aht_s)


def asa(agents: int, erlangs: float, aht_s: float) -> float:
    """Average speed of answer in seconds (infinite when agents <= traffic)."""
    if erlangs <= 0:
        return 0.0
    if agents <= erlangs:
        return math.inf
    return erlang_c(agents, erlangs) * aht_s / (agents - erlangs)


@dataclass(frozen=True)
class Prediction:
    """What N agents give in one interval."""

    agents: int
    p_wait_pct: float
    sl_pct: float
    asa_s: float
    occupancy_pct: float


@dataclass(frozen=True)
class Staffing:
    """The smallest number of agents meeting the target, and what it gives."""

    calls: float
    interval_min: float
    aht_s: float
    target_pct: float
    target_s: float
    shrinkage: float
    traffic_erlangs: float
    agents: int  # on the phones
    scheduled: int  # rostered, after shrinkage (breaks, training, absence)
    p_wait_pct: float
    sl_pct: float
    asa_s: float
    occupancy_pct: float

    @property
    def high_occupancy(self) -> bool:
        return self.occupancy_pct > HIGH_OCCUPANCY_PCT

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = asdict(self)
        d["high_occupancy"] = self.high_occupancy
        return d


def predict(agents: int, erlangs: float, aht_s: float, target_s: float) -> Prediction:
    """P(wait), SL, ASA and occupancy for `agents` on `erlangs` of traffic."""
    if erlangs <= 0:
        return Prediction(agents, 0.0, 100.0, 0.0, 0.0)
    return Prediction(
        agents=agents,
        p_wait_pct=100.0 * erlang_c(agents, erlangs),
        sl_pct=100.0 * service_level(agents, erlangs, aht_s, target_s),
        asa_s=asa(agents, erlangs, aht_s),
        occupancy_pct=100.0 * min(1.0, erlangs / agents) if agents else 100.0,
    )


def staffing(
    calls: float,
    interval_min: float,
    aht_s: float,
    target_pct: float,
    target_s: float,
    shrinkage: float = 0.0,
    max_agents: int = 100_000,
) -> Staffing:
    """Agents needed so that target_pct of calls wait at most target_s (Erlang C)."""
    _check(calls, interval_min, aht_s, target_pct, target_s, shrinkage)
    a = traffic(calls, interval_min, aht_s)
    given = {
        "calls": calls,
        "interval_min": interval_min,
        "aht_s": aht_s,
        "target_pct": target_pct,
        "target_s": target_s,
        "shrinkage": shrinkage,
    }
    if a == 0:  # no calls: nobody needed, nobody waits
        return Staffing(
            **given,
            traffic_erlangs=0.0,
            agents=0,
            scheduled=0,
            p_wait_pct=0.0,
            sl_pct=100.0,
            asa_s=0.0,
            occupancy_pct=0.0,
        )
    # Walk Erlang B up to the first stable N, then one agent at a time.
    n = math.floor(a) + 1
    b = erlang_b(n, a)
    goal = target_pct / 100.0
    while True:
        c = _erlang_c_from_b(n, a, b)
        sl = 1.0 - c * math.exp(-(n - a) * target_s / aht_s)
        if sl >= goal:
            break
        if n >= max_agents:
            raise ValueError(
                f"{target_pct:g}% within {target_s:g} s needs more than {max_agents} agents"
            )
        n += 1
        b = a * b / (n + a * b)
    scheduled = math.ceil(round(n / (1.0 - shrinkage), 9))
    return Staffing(
        **given,
        traffic_erlangs=a,
        agents=n,
        scheduled=scheduled,
        p_wait_pct=100.0 * c,
        sl_pct=100.0 * sl,
        asa_s=c * aht_s / (n - a),
        occupancy_pct=100.0 * a / n,
    )


def _check(
    calls: float,
    interval_min: float,
    aht_s: float,
    target_pct: float,
    target_s: float,
    shrinkage: float,
) -> None:
    if not calls >= 0:
        raise ValueError(f"calls must be 0 or more, not {calls}")
    if not interval_min > 0:
        raise ValueError(f"the interval must be over 0 minutes, not {interval_min}")
    if not aht_s > 0:
        raise ValueError(f"the average handle time must be over 0 s, not {aht_s}")
    if not 0 < target_pct < 100:
        raise ValueError(f"the target must be over 0% and under 100%, not {target_pct}%")
    if not target_s >= 0:
        raise ValueError(f"the target time must be 0 s or more, not {target_s}")
    if not 0 <= shrinkage < 1:
        raise ValueError(f"shrinkage is a fraction from 0 up to (not including) 1, not {shrinkage}")


def parse_target(text: str) -> tuple[float, float]:
    """'80/20' -> (80.0, 20.0): percent of calls within seconds."""
    pct, sep, secs = text.strip().rstrip("s").partition("/")
    try:
        if not sep:
            raise ValueError
        p, s = float(pct.strip().rstrip("%")), float(secs.strip())
    except ValueError:
        raise ValueError(
            f"target {text!r} is not PERCENT/SECONDS, e.g. 80/20 for 80% within 20 s"
        ) from None
    if not (0 < p < 100 and s >= 0 and math.isfinite(s)):
        raise ValueError(f"target {text!r}: the percent must be over 0 and under 100, seconds >= 0")
    return p, s
