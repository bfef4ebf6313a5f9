"""khugepaged: the daemon that collapses 4 KiB pages into THPs (``mm/khugepaged.c``).

:class:`Khugepaged` keeps the mm_slot round robin (``khugepaged_scan``), scans
``pages_to_scan`` pages a pass (``khugepaged_do_scan`` -> ``khugepaged_scan_mm_slot``
-> ``hpage_collapse_scan_pmd`` and ``collapse_huge_page``, both in the core), sleeps
``scan_sleep_millisecs`` between passes and ``alloc_sleep_millisecs`` after a failed
huge page allocation, and runs MADV_COLLAPSE (``madvise_collapse``).  It is a daemon
of the clock protocol (:mod:`thpbench.kernel.clock`): ``next_wakeup_ns()`` and
``run_until(t_ns)``; ``pause()``/``resume()``; ``passes`` counts finished passes.

It sees its kernel only through a narrow context (:class:`KhugepagedContext`): the
core, the THP sysfs values, the time, a process's VMAs by pid, and ``pass_done()``
(account the pass's work on khugepaged's CPU and record a sample).

Simplified (the model, not the kernel):

* with ``scan_sleep_millisecs = 0`` the kernel loops back to the next pass at once
  (``khugepaged_wait_work`` returns, ``cond_resched()`` yields); here a pass is
  followed by at least :data:`KHUGEPAGED_MIN_PASS_NS` (1 ms) of simulated time, so a
  run of simulated time holds a bounded number of passes (and samples);
* khugepaged's work runs on its own CPU: its cost does not move the clock.
"""
from __future__ import annotations

import errno as _errno
from collections import deque
from typing import Protocol

from thpbench._core import SCAN_RESULT_NAMES
from thpbench.units import HPAGE_PMD_NR, HPAGE_PMD_SIZE, PAGE_SHIFT, PROT_READ

__all__ = ["Khugepaged", "KhugepagedContext", "KHUGEPAGED_MIN_PASS_NS", "SCAN_SUCCEED", "SCAN_PMD_MAPPED",
           "SCAN_ALLOC_HUGE_PAGE_FAIL", "SCAN_EXCEED_NONE_PTE"]

SCAN_SUCCEED = SCAN_RESULT_NAMES.index("SCAN_SUCCEED")
SCAN_PMD_MAPPED = SCAN_RESULT_NAMES.index("SCAN_PMD_MAPPED")
SCAN_ALLOC_HUGE_PAGE_FAIL = SCAN_RESULT_NAMES.index("SCAN_ALLOC_HUGE_PAGE_FAIL")
SCAN_EXCEED_NONE_PTE = SCAN_RESULT_NAMES.index("SCAN_EXCEED_NONE_PTE")

# madvise_collapse(): results after which the remaining PMDs are still tried
_MADV_COLLAPSE_CONTINUE = {SCAN_RESULT_NAMES.index(n) for n in
                           ("SCAN_PMD_NULL", "SCAN_PAGE_RO", "SCAN_LACK_REFERENCED_PAGE")}

#: the least simulated time between two passes (see the module's simplifications)
KHUGEPAGED_MIN_PASS_NS = 1_000_000


class KhugepagedContext(Protocol):
    """What khugepaged may read and call of its kernel."""

    core: object                      # the MMCore: collapse()

    def now_ns(self) -> float: ...

    def thp(self) -> dict: ...        # ThpSysfs.values()

    def vmas(self, pid: int) -> list: ...

    def pass_done(self) -> None: ...


def _hpage_bounds(start, end):
    return -(-start // HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE, end // HPAGE_PMD_SIZE * HPAGE_PMD_SIZE


class Khugepaged:
    """khugepaged of one kernel (see the module doc)."""

    name = "khugepaged"
    clock_priority = 0          # at the same instant: khugepaged, a sample, kcompactd, kswapd

    def __init__(self, ctx: KhugepagedContext):
        self._ctx = ctx
        self.pages_collapsed = 0
        self.full_scans = 0
        self.passes = 0
        self._paused = False
        # mm/khugepaged.c: khugepaged_scan, the mm_slot list
        self._mm_slots: deque[int] = deque()
        self._scan_slot: int | None = None
        self._scan_address = 0
        self._next_ns: float | None = None
        self._last_result = None
        self._pass_pages_left = None

    def __repr__(self):
        return (f"Khugepaged(mm_slots={len(self._mm_slots)}, passes={self.passes}, "
                f"next_wakeup_ns={self.next_wakeup_ns()}, paused={self._paused})")

    # -- the daemon protocol ----------------------------------------------------------------
    def next_wakeup_ns(self):
        """When the next pass is due (None: waiting for an mm to scan, or paused)."""
        return None if self._paused else self._next_ns

    def run_until(self, t_ns) -> None:
        """Run the passes due at or before ``t_ns`` (each at the kernel's time then)."""
        while not self._paused and self._next_ns is not None and self._next_ns <= t_ns:
            self.wake()

    def pause(self) -> None:
        """Stop running passes (kthread_park): the clock skips khugepaged until resume()."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def nr_mm_slots(self) -> int:
        return len(self._mm_slots)

    def registered(self, pid) -> bool:
        """Is the mm of ``pid`` on khugepaged's list?"""
        return pid in self._mm_slots

    # -- mm_slots ---------------------------------------------------------------------------
    def vma_ok(self, v) -> bool:
        """thp_vma_allowable_order(..., TVA_KHUGEPAGED, PMD_ORDER)."""
        en = self._ctx.thp()["enabled"]
        if v.hugepage < 0 or not (v.prot & PROT_READ):
            return False
        return en == "always" or (en == "madvise" and v.hugepage > 0)

    def enter(self, pid, vmas) -> None:
        """khugepaged_enter_vma(): register the mm on its first eligible VMA."""
        if pid in self._mm_slots or self._ctx.thp()["enabled"] == "never":
            return
        if any(self.vma_ok(v) and _hpage_bounds(v.start, v.end)[0] + HPAGE_PMD_SIZE <= v.end for v in vmas):
            self._mm_slots.append(pid)
            if self._next_ns is None:
                self._next_ns = self._ctx.now_ns()        # wake_up_interruptible(&khugepaged_wait)

    def fork(self, parent_pid, child_pid) -> None:
        """khugepaged_fork(): a child of a registered mm is registered."""
        if parent_pid in self._mm_slots:
            self._mm_slots.append(child_pid)

    def exit(self, pid) -> None:
        """khugepaged_exit(): drop the mm's slot (the scan moves on if it was scanning it)."""
        if pid in self._mm_slots:
            if self._scan_slot == pid:
                self._advance_slot()
            self._mm_slots.remove(pid)

    def policy_changed(self) -> None:
        """start_stop_khugepaged(): re-enabling THP wakes khugepaged if it has mms to scan."""
        if self._ctx.thp()["enabled"] != "never" and self._mm_slots and self._next_ns is None:
            self._next_ns = self._ctx.now_ns()

    def _advance_slot(self):
        i = self._mm_slots.index(self._scan_slot)
        if i + 1 < len(self._mm_slots):
            self._scan_slot = self._mm_slots[i + 1]
        else:
            self._scan_slot = None
            self.full_scans += 1
        self._scan_address = 0

    # -- a pass -------------------------------------------------------------------------------
    def wake(self) -> None:
        """One khugepaged_do_scan() pass (or the rest of one after its alloc sleep), then
        the sleep."""
        ctx = self._ctx
        v = ctx.thp()
        start_ns = ctx.now_ns()
        if self._pass_pages_left is None:
            pages, wait = v["khugepaged/pages_to_scan"], True
        else:
            pages, wait = self._pass_pages_left, False
        status, progress = self._do_scan(pages, wait)
        ctx.pass_done()
        if status == "alloc_sleep":
            # the first SCAN_ALLOC_HUGE_PAGE_FAIL of a pass: khugepaged_alloc_sleep(),
            # then the same pass goes on (a second failure ends it)
            self._pass_pages_left = max(pages - progress, 1)
            self._next_ns = start_ns + v["khugepaged/alloc_sleep_millisecs"] * 1_000_000
            return
        self._pass_pages_left = None
        self.passes += 1
        if not self._mm_slots or v["enabled"] == "never":
            self._next_ns = None                      # wait for work
        else:
            # khugepaged_wait_work(); with scan_sleep_millisecs 0 the kernel loops back at
            # once: the model takes KHUGEPAGED_MIN_PASS_NS (module doc)
            self._next_ns = start_ns + max(v["khugepaged/scan_sleep_millisecs"] * 1_000_000, KHUGEPAGED_MIN_PASS_NS)

    def _do_scan(self, pages, wait):
        # khugepaged_do_scan(): returns ("done" | "alloc_sleep", progress)
        progress = 0
        pass_through_head = 0
        while True:
            if self._scan_slot is None:
                pass_through_head += 1
            if self._mm_slots and pass_through_head < 2 and self._ctx.thp()["enabled"] != "never":
                progress += self._scan_mm_slot(pages - progress)
            else:
                progress = pages
            if progress >= pages:
                return "done", progress
            if self._last_result == SCAN_ALLOC_HUGE_PAGE_FAIL:
                if not wait:
                    return "done", progress
                return "alloc_sleep", progress

    def _scan_mm_slot(self, pages):
        # khugepaged_scan_mm_slot()
        self._last_result = None
        if self._scan_slot is None:
            self._scan_slot = self._mm_slots[0]
            self._scan_address = 0
        pid = self._scan_slot
        core = self._ctx.core
        progress = 1
        finished = True
        for v in sorted(self._ctx.vmas(pid), key=lambda v: v.start):
            if v.end <= self._scan_address:
                continue
            if not self.vma_ok(v):
                progress += 1
                continue
            hstart, hend = _hpage_bounds(v.start, v.end)
            if self._scan_address > hend:
                progress += 1
                continue
            self._scan_address = max(self._scan_address, hstart)
            while self._scan_address < hend:
                r = core.collapse(pid, self._scan_address >> PAGE_SHIFT, v.vm_flags, True)
                self._last_result = r
                if r == SCAN_SUCCEED:
                    self.pages_collapsed += 1
                self._scan_address += HPAGE_PMD_SIZE
                progress += HPAGE_PMD_NR
                if progress >= pages or r == SCAN_ALLOC_HUGE_PAGE_FAIL:
                    finished = False
                    break
            if not finished:
                break
        if finished:
            self._advance_slot()
        return progress

    # -- MADV_COLLAPSE ------------------------------------------------------------------------
    def madvise_collapse(self, pid, vmas, start, end) -> int:
        """mm/khugepaged.c: madvise_collapse(); ignores "enabled" and the max_ptes_* limits.
        Returns 0 or a negative errno (madvise_collapse_errno())."""
        hstart, hend = _hpage_bounds(start, end)
        core = self._ctx.core
        last = SCAN_SUCCEED
        thps = 0
        nr = max(0, (hend - hstart) // HPAGE_PMD_SIZE)
        for addr in range(hstart, hend, HPAGE_PMD_SIZE):
            v = next((x for x in vmas if x.start <= addr < x.end), None)
            if v is None or v.hugepage < 0 or not (v.start <= addr and addr + HPAGE_PMD_SIZE <= v.end):
                return -_errno.EINVAL
            r = core.collapse(pid, addr >> PAGE_SHIFT, v.vm_flags, False)
            if r in (SCAN_SUCCEED, SCAN_PMD_MAPPED):
                thps += 1
            elif r in _MADV_COLLAPSE_CONTINUE:
                last = r
            else:
                last = r          # "Other error, exit": the remaining PMDs are not tried
                break
        if thps == nr:
            return 0
        if last in (SCAN_ALLOC_HUGE_PAGE_FAIL, SCAN_EXCEED_NONE_PTE):
            return -_errno.ENOMEM
        return -_errno.EINVAL

    # -- read-outs -------------------------------------------------------------------------------
    def stats(self) -> dict:
        return {"pages_collapsed": self.pages_collapsed, "full_scans": self.full_scans,
                "mm_slots": len(self._mm_slots), "passes": self.passes,
                "next_wakeup_ns": self.next_wakeup_ns()}

    def check(self, live_pids) -> None:
        """Every mm on the list belongs to a live process (InvariantError otherwise)."""
        from thpbench._core import InvariantError
        slots = set(self._mm_slots)
        if not slots <= set(live_pids):
            raise InvariantError(f"khugepaged mm_slots {slots - set(live_pids)} belong to no process")
