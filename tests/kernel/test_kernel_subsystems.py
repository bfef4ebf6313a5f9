"""The kernel as subsystems on one clock: the daemon protocol, the Clock, pause/resume,
bounded advance(), reclaim that always exists, and the public read-outs and constants."""
import math
import subprocess
import sys

import numpy as np
import pytest

import thpbench
from thpbench.kernel import Clock, Kernel, PageKind, PmdKind
from thpbench.kernel.clock import Daemon
from thpbench.kernel.khugepaged import KHUGEPAGED_MIN_PASS_NS
from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE

MiB = 1 << 20
SEC = 1_000_000_000


def _kernel_with_work(clock=None, **kw):
    """A kernel whose khugepaged has an mm to scan (a 4 MiB madvised range, half touched)."""
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/scan_sleep_millisecs": 100, **kw},
               clock=clock)
    p = k.spawn()
    a = p.mmap(4 * MiB)
    p.touch_range(a, 4 * MiB, stride=8 * PAGE_SIZE)      # 4 KiB pages (not madvised yet)
    p.madvise(a, 4 * MiB, "MADV_HUGEPAGE")               # khugepaged_enter_vma
    return k, p, a


# -- the protocol ------------------------------------------------------------------------------

def test_every_daemon_implements_the_protocol():
    k = Kernel(64 * MiB)
    names = [d.name for d in k.daemons()]
    assert names == ["khugepaged", "kcompactd", "kswapd"]
    for d in k.daemons():
        assert isinstance(d, Daemon)
        for m in ("next_wakeup_ns", "run_until", "pause", "resume"):
            assert callable(getattr(d, m))
        assert d.passes == 0
    # without compaction or LRU reclaim those daemons do not exist
    assert [d.name for d in Kernel(64 * MiB, compaction=False, lru_reclaim=False).daemons()] == ["khugepaged"]


def test_khugepaged_stats_give_passes_and_next_wakeup():
    k, p, a = _kernel_with_work()
    st = k.khugepaged_stats()
    # woken by MADV_HUGEPAGE: the first pass ran at once (the end of the madvise call)
    assert st["khugepaged_passes"] == 1
    assert st["khugepaged_next_wakeup_ns"] == k.khugepaged.next_wakeup_ns() == k.now_ns + 100_000_000
    k.advance(SEC)
    st = k.khugepaged_stats()
    assert st["khugepaged_passes"] >= 10         # one pass per 100 ms
    assert k.now_ns < st["khugepaged_next_wakeup_ns"] <= k.now_ns + 100_000_000
    assert st["pages_collapsed"] == 2
    assert (p.pmd_kinds(a, a + 4 * MiB) == PmdKind.THP).all()


def test_pause_and_resume_khugepaged():
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/scan_sleep_millisecs": 100})
    k.khugepaged.pause()
    p = k.spawn()
    a = p.mmap(4 * MiB)
    p.touch_range(a, 4 * MiB, stride=8 * PAGE_SIZE)
    p.madvise(a, 4 * MiB, "MADV_HUGEPAGE")
    assert k.khugepaged.next_wakeup_ns() is None and k.khugepaged_stats()["khugepaged_next_wakeup_ns"] is None
    k.advance(5 * SEC)
    assert k.khugepaged.passes == 0 and k.pages_collapsed == 0
    assert (p.pmd_kinds(a, a + 4 * MiB) == PmdKind.TABLE).all()
    k.khugepaged.resume()
    k.advance(SEC)
    assert k.khugepaged.passes > 0 and k.pages_collapsed == 2
    assert (p.pmd_kinds(a, a + 4 * MiB) == PmdKind.THP).all()


def test_pause_kcompactd_stops_proactive_compaction():
    k = Kernel(64 * MiB, vm={"compaction_proactiveness": 100})
    k.kcompactd.pause()
    k.advance(5 * SEC)
    assert k.kcompactd.passes == 0 and k.vmstat()["compact_daemon_wake"] == 0
    k.kcompactd.resume()
    assert k.kcompactd.next_wakeup_ns() is not None


def test_one_clock_drives_two_kernels():
    clock = Clock()
    host, hp, ha = _kernel_with_work(clock=clock)
    guest, gp, ga = _kernel_with_work(clock=clock)
    assert clock.members == (host, guest)
    t0 = host.now_ns
    host.advance(2 * SEC)                     # the guest's daemons run too
    assert clock.now_ns == t0 + 2 * SEC and guest.now_ns >= t0 + 2 * SEC
    assert host.pages_collapsed == 2 and guest.pages_collapsed == 2
    assert host.khugepaged.passes > 0 and guest.khugepaged.passes > 0
    host.check()
    guest.check()


class _Fake:
    """A daemon that wakes at given times and may wake another one."""

    def __init__(self, name, times, log, prio=0, wakes=None):
        self.name, self.clock_priority, self.times, self.log, self.wakes = name, prio, list(times), log, wakes
        self.passes = 0

    def next_wakeup_ns(self):
        return self.times[0] if self.times else None

    def run_until(self, t):
        while self.times and self.times[0] <= t:
            self.log.append((self.name, self.times.pop(0)))
            self.passes += 1
            if self.wakes is not None:
                self.wakes.times.insert(0, t + 1)


class _Member:
    def __init__(self, *ds):
        self.ds = list(ds)

    def daemons(self):
        return self.ds


def test_clock_runs_wakeups_in_time_order_and_sees_new_ones():
    log = []
    b = _Fake("b", [50], log, prio=1)
    a = _Fake("a", [10, 30], log, prio=0, wakes=b)      # a's work wakes b one ns later
    c = _Fake("c", [30], log, prio=2)
    clock = Clock()
    clock.attach(_Member(a, b))
    clock.attach(_Member(c))
    n = clock.run_until(40)
    assert log == [("a", 10), ("b", 11), ("a", 30), ("c", 30), ("b", 31)]
    assert n == 5 and clock.now_ns == 40 and b.times == [50]


def test_clock_refuses_a_daemon_that_never_moves_on(monkeypatch):
    class Stuck:
        name, clock_priority = "stuck", 0

        def next_wakeup_ns(self):
            return 5

        def run_until(self, t):
            pass

    monkeypatch.setattr("thpbench.kernel.clock.MAX_WAKEUPS_PER_RUN", 100)
    clock = Clock()
    clock.attach(_Member(Stuck()))
    with pytest.raises(RuntimeError, match="stuck"):
        clock.run_until(10)


def test_clock_rejects_bad_members_and_times():
    clock = Clock()
    with pytest.raises(TypeError, match="daemons"):
        clock.attach(object())
    for bad in (float("nan"), float("inf"), -1, "10", None, True):
        with pytest.raises((TypeError, ValueError)):
            clock.run_until(bad)
    assert clock.now_ns == 0
    with pytest.raises(TypeError, match="clock"):
        Kernel(64 * MiB, clock="shared")


def test_advance_rejects_bad_sample_intervals():
    k = Kernel(64 * MiB)
    for bad in (0, -1, float("nan"), float("inf"), "1"):
        with pytest.raises((TypeError, ValueError), match="sample_every_ns"):
            k.advance(SEC, sample_every_ns=bad)
    with pytest.raises(ValueError, match="samples"):
        k.advance(10 ** 12, sample_every_ns=1)           # 10^12 samples: refused up front
    assert k.now_ns == 0 and len(k.result().df) == 0
    k.advance(SEC, sample_every_ns=100_000_000)
    assert len(k.result().df) >= 10


def test_numpy_times_are_accepted():
    k = Kernel(64 * MiB)
    k.advance(np.int64(1000))
    k.advance(np.float64(500.0))
    assert k.now_ns == 1500


# -- public constants and read-outs (item 8) ------------------------------------------------------

def test_pmd_and_page_kinds_are_named():
    k = Kernel(64 * MiB, thp={"enabled": "always"})
    p = k.spawn()
    a = p.mmap(8 * MiB)
    p.touch(a)                                     # a THP
    p.touch(a + HPAGE_PMD_SIZE, write=False)       # the huge zero page
    p.madvise(a + 2 * HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, "MADV_NOHUGEPAGE")
    p.touch(a + 2 * HPAGE_PMD_SIZE)                # a PTE table
    kinds = p.pmd_kinds(a, a + 8 * MiB)
    assert list(kinds) == [PmdKind.THP, PmdKind.HUGE_ZERO, PmdKind.TABLE, PmdKind.NONE]
    _, pk = p.peek([a, a + HPAGE_PMD_SIZE, a + 2 * HPAGE_PMD_SIZE, a + 2 * HPAGE_PMD_SIZE + PAGE_SIZE,
                    a + 3 * HPAGE_PMD_SIZE])
    assert list(pk) == [PageKind.IN_THP, PageKind.HUGE_ZERO, PageKind.PAGE, PageKind.NONE, PageKind.NONE]
    assert thpbench.PmdKind is PmdKind and thpbench.PageKind is PageKind


def test_huge_zero_page_query():
    k = Kernel(64 * MiB, thp={"enabled": "always"})
    assert k.huge_zero_page() == {"allocated": False, "pfn": None, "mapped_pmds": 0}
    p = k.spawn()
    a = p.mmap(8 * MiB)
    p.touch(a, write=False)
    p.touch(a + HPAGE_PMD_SIZE, write=False)
    hz = k.huge_zero_page()
    assert hz["allocated"] and 0 <= hz["pfn"] < k.nr_pages and hz["mapped_pmds"] == 2
    p.touch(a)                                     # a write replaces it with a THP
    assert k.huge_zero_page()["mapped_pmds"] == 1
    c = p.fork()
    assert k.huge_zero_page()["mapped_pmds"] == 2
    c.exit()
    assert k.huge_zero_page()["mapped_pmds"] == 1


def test_subpackages_are_reachable_after_import_thpbench():
    code = ("import sys, thpbench\n"
            "assert 'thpbench.tlb' not in sys.modules\n"
            "assert thpbench.tlb.__name__ == 'thpbench.tlb'\n"
            "assert thpbench.experiments.__name__.startswith('thpbench.experiments')\n"
            "assert thpbench.widgets.__name__ == 'thpbench.widgets'\n"
            "assert 'tlb' in dir(thpbench)\n"
            "try:\n    thpbench.nonexistent\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def test_process_lookup_and_kcompactd_log_limit():
    k = Kernel(64 * MiB, vm={"compaction_proactiveness": 100}, log_limit=1)
    p = k.spawn()
    assert k.process(p.pid) is p
    with pytest.raises(ValueError, match="no process with pid 7"):
        k.process(7)
    with pytest.raises(TypeError, match="pid"):
        k.process("0")
    # a fragmented zone: proactive compaction leaves a row per check, only the last kept
    a = p.mmap(32 * MiB)
    p.touch_range(a, 32 * MiB)
    for off in range(0, 32 * MiB, 2 * PAGE_SIZE):
        p.madvise(a + off, PAGE_SIZE, "MADV_DONTNEED")
    k.advance(10 * SEC)
    assert k.kcompactd.passes >= 2 and len(k.kcompactd.events) == 1
    assert len(k.kcompactd.history) == 1
    k.check()
