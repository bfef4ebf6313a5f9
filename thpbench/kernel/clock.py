"""One simulated clock for the daemons of one or more kernels.

Every kernel thread the simulator models on the clock (khugepaged, kswapd, kcompactd,
and later a guest's balloon driver or free page reporting) implements one protocol,
:class:`Daemon`:

``next_wakeup_ns()``
    the simulated time (ns) at which it next has work, or None while it waits for a
    wake-up from someone else (or is paused);
``run_until(t_ns)``
    do the work due at or before ``t_ns`` (the clock calls it with its next wake-up).

A :class:`Clock` is a small heap loop over the daemons of every kernel attached to it:
it pops the earliest wake-up, moves time there, runs that daemon and asks every daemon
again (one daemon's work may wake another: kswapd going to sleep wakes kcompactd).  So
one clock can drive a host kernel and its guests together.  A kernel's own time is the
later of the clock and the time its foreground operations have cost
(:attr:`thpbench.kernel.Kernel.now_ns`).

Ties at the same instant run in the order of each daemon's ``clock_priority`` (lower
first), then in the order the kernels and daemons were attached.
"""
from __future__ import annotations

import heapq
import math
import numbers
from typing import Iterable, Protocol, runtime_checkable

__all__ = ["Clock", "Daemon", "validate_duration_ns"]

#: the most wake-ups one ``run_until`` runs before it gives up (a daemon that never
#: moves its wake-up forward would otherwise spin for ever)
MAX_WAKEUPS_PER_RUN = 50_000_000


@runtime_checkable
class Daemon(Protocol):
    """What the clock needs of a kernel thread."""

    name: str
    clock_priority: int

    def next_wakeup_ns(self) -> float | None: ...

    def run_until(self, t_ns: float) -> None: ...


def validate_duration_ns(ns, what="ns") -> float | int:
    """A finite, non-negative number of nanoseconds, or TypeError/ValueError naming it."""
    if isinstance(ns, bool) or not isinstance(ns, numbers.Real):
        raise TypeError(f"{what} must be a number of nanoseconds (int or float), got {type(ns).__name__} {ns!r}")
    if isinstance(ns, numbers.Integral):
        ns = int(ns)
    else:
        ns = float(ns)
        if not math.isfinite(ns):
            raise ValueError(f"{what} must be finite, got {ns!r}")
    if ns < 0:
        raise ValueError(f"{what} must be >= 0, got {ns!r}")
    return ns


class Clock:
    """Simulated time (ns) and the daemons of the kernels attached to it.

    A member is anything with a ``daemons()`` method returning its :class:`Daemon`
    objects (a :class:`thpbench.kernel.Kernel`).  ``run_until(t)`` runs every due
    wake-up in time order and leaves :attr:`now_ns` at ``t``.
    """

    def __init__(self):
        self.now_ns: float | int = 0
        self._members: list = []
        self._running = False

    def __repr__(self):
        return f"Clock(now_ns={self.now_ns}, members={len(self._members)})"

    def attach(self, member) -> None:
        """Let this clock drive ``member``'s daemons (idempotent)."""
        if not callable(getattr(member, "daemons", None)):
            raise TypeError(f"a clock member needs a daemons() method, got {type(member).__name__}")
        if not any(m is member for m in self._members):
            self._members.append(member)

    def detach(self, member) -> None:
        self._members = [m for m in self._members if m is not member]

    @property
    def members(self) -> tuple:
        return tuple(self._members)

    def daemons(self) -> list:
        """Every daemon of every member, in attach order."""
        return [d for m in self._members for d in m.daemons()]

    def next_wakeup_ns(self):
        """The earliest wake-up of any daemon (None: all wait)."""
        ts = [t for t in (d.next_wakeup_ns() for d in self.daemons()) if t is not None]
        return min(ts) if ts else None

    def run_until(self, t_ns, *, extra: Iterable = ()) -> int:
        """Run every wake-up due at or before ``t_ns`` in time order, then set the
        clock to ``t_ns`` (never backwards).  ``extra`` daemons (a sampler) take part
        in this run only.  Returns the number of wake-ups run."""
        t_ns = validate_duration_ns(t_ns, "t_ns")
        if self._running:
            raise RuntimeError("Clock.run_until called from inside a daemon")
        self._running = True
        try:
            n = self._loop(t_ns, [*self.daemons(), *extra], move_clock=True)
        finally:
            self._running = False
        self.now_ns = max(self.now_ns, t_ns)
        return n

    @staticmethod
    def run_due(daemons, t_ns) -> int:
        """Run the wake-ups of ``daemons`` due at or before ``t_ns`` without moving any
        clock (a kernel's foreground time passed them).  Returns wake-ups run."""
        return Clock._loop_static(None, t_ns, list(daemons))

    def _loop(self, t_ns, daemons, move_clock):
        return Clock._loop_static(self if move_clock else None, t_ns, daemons)

    @staticmethod
    def _loop_static(clock, t_ns, daemons) -> int:
        order = {id(d): i for i, d in enumerate(daemons)}
        heap = []

        def push(d):
            t = d.next_wakeup_ns()
            if t is not None and t <= t_ns:
                heapq.heappush(heap, (t, d.clock_priority, order[id(d)], d))

        for d in daemons:
            push(d)
        n = 0
        while heap:
            t, _, _, d = heapq.heappop(heap)
            if d.next_wakeup_ns() != t:
                continue                      # stale: re-pushed below when it changed
            if clock is not None and t > clock.now_ns:
                clock.now_ns = t
            d.run_until(t)
            n += 1
            if n > MAX_WAKEUPS_PER_RUN:
                raise RuntimeError(f"{n} wake-ups before t_ns={t_ns}: daemon {d.name} does not move "
                                   "its next wake-up forward")
            # a daemon's work can wake another (or itself again): ask everyone afresh
            heap = []
            for x in daemons:
                push(x)
        return n
