"""A simulated Linux kernel with transparent huge pages.

``Kernel`` owns one zone of physical memory (a :class:`thpbench.BuddyAllocator`
with watermarks), the THP configuration under its sysfs names, a simulated clock in
nanoseconds, khugepaged as a daemon on that clock, and processes whose page tables,
reverse map and per-page content live in the Cython core (``_mm.pxi``).

Follows Linux 6.18: ``mm/memory.c`` (the fault path), ``mm/huge_memory.c``
(do_huge_pmd_anonymous_page, split_huge_pmd, the deferred split queue and its
shrinker), ``mm/khugepaged.c`` (the mm_slot round robin, hpage_collapse_scan_pmd,
collapse_huge_page, MADV_COLLAPSE) and ``mm/mmap.c`` / ``mm/mprotect.c`` /
``mm/madvise.c`` / ``mm/mremap.c`` for the VMA operations.

Example::

    k = Kernel(1 << 30, thp={"enabled": "always"})
    p = k.spawn()
    a = p.mmap(64 << 20)
    p.touch_range(a, 64 << 20)              # first touch, one write per 4 KiB page
    k.vmstat()["thp_fault_alloc"]           # 32
    p.madvise(a, 4096, "MADV_DONTNEED")     # split_huge_pmd, deferred split queue
    k.advance(10_000_000_000)               # 10 s: khugepaged runs on the clock
    k.check()                               # every invariant, or InvariantError

Simplifications (the model is a model):

* anonymous private memory only; folios at fault are order 0 or PMD order (no mTHP);
* no swap cache: a swapped-in page is private; pins (``Process.pin_pages``) are a
  per-page count that blocks migration and splitting, and does not outlive the folio;
* "shared" PTEs for ``max_ptes_shared`` are pages mapped more than once
  (``page_mapcount() > 1``, the rule before 6.15's folio_maybe_mapped_shared);
* reclaim (``lru_reclaim=True``, the default; :mod:`thpbench.kernel.reclaim`): LRU lists,
  the page cache, slab caches, kswapd between the low and high watermarks, and direct
  reclaim: an order-0 allocation that fails runs LRU direct reclaim after the core
  returns and is retried (a CoW fault holds its source page meanwhile); a huge-page
  allocation whose gfp allows direct reclaim reclaims inside the slow path until
  compaction is ready (``Kernel._direct_reclaim``).  With nothing reclaimable an
  order-0 fault is an OOM (raised as :class:`OutOfMemory`);
* compaction (``compaction=True``, the default): direct compaction in the allocator's
  slow path as ``vma_thp_gfp_mask()`` allows, kcompactd on the clock (its own CPU),
  woken when kswapd goes to sleep, and ``compact_memory()``; see :class:`Kernel` and
  ``thpbench.kernel.compaction`` for what is simplified there;
* ``munmap`` of a range where nothing is mapped raises (Linux returns 0), and
  ``madvise``/``mprotect`` over a hole raise (Linux: -ENOMEM) instead of applying to
  the mapped parts;
* mremap refuses pages shared with another mm after fork (the rmap walk assumes a
  page sits at the same address in every mm of its fork family);
* costs come from :class:`CostModel`; khugepaged runs on its own CPU (its work does
  not advance the clock of the faulting task, it is accumulated in ``khugepaged_cpu_ns``).
"""
from __future__ import annotations

import errno as _errno
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from thpbench.costs import CostModel
from thpbench._core import (BuddyAllocator, MMCore, MM_EVENT_NAMES, SCAN_RESULT_NAMES,
                            InvariantError)
from thpbench._core import (COMPACT_RESULT_NAMES, _mm_attach_compaction, _mm_set_reclaim_hook, _mm_take_hook_exc,
                            _mm_take_kswapd_wake, _mm_drain_thp_fault_log, _mm_shrink_for, _mm_check_compaction)
from thpbench.kernel import compaction as _compaction
from thpbench.units import (PAGE_SHIFT, PAGE_SIZE, HPAGE_PMD_ORDER, HPAGE_PMD_NR, HPAGE_PMD_SIZE, PROT_READ)
from thpbench.kernel.errors import OutOfMemory
from thpbench.kernel.tunables import DEFRAG_MODES, ENABLED_MODES, ThpSysfs, VmSysctl
from thpbench.kernel.process import Process, Vma
from thpbench._validate import as_int as _as_int

SCAN_SUCCEED = SCAN_RESULT_NAMES.index("SCAN_SUCCEED")
SCAN_PMD_MAPPED = SCAN_RESULT_NAMES.index("SCAN_PMD_MAPPED")
SCAN_ALLOC_HUGE_PAGE_FAIL = SCAN_RESULT_NAMES.index("SCAN_ALLOC_HUGE_PAGE_FAIL")
SCAN_EXCEED_NONE_PTE = SCAN_RESULT_NAMES.index("SCAN_EXCEED_NONE_PTE")

# madvise_collapse(): results after which the remaining PMDs are still tried
_MADV_COLLAPSE_CONTINUE = {SCAN_RESULT_NAMES.index(n) for n in
                           ("SCAN_PMD_NULL", "SCAN_PAGE_RO", "SCAN_LACK_REFERENCED_PAGE")}


def _charge(costs: CostModel, d: dict) -> float:
    """Foreground time for a dict of counter deltas."""
    return (d.get("x_fault_pages", 0) * costs.fault_4k_ns + d.get("thp_fault_alloc", 0) * costs.fault_2m_ns
            + d.get("x_cow_copies", 0) * (costs.fault_4k_ns + costs.copy_page_ns)
            + d.get("pswpin", 0) * costs.swap_in_page_ns + d.get("pswpout", 0) * costs.swap_out_page_ns
            + d.get("thp_split_pmd", 0) * costs.split_pmd_ns + d.get("thp_split_page", 0) * costs.split_thp_ns
            + _charge_direct_compaction(costs, d))


def _charge_direct_compaction(costs: CostModel, d: dict) -> float:
    """Direct compaction's stall (compaction_cost_ns's terms): every pfn a scanner looked
    at, every page migrated (copy + unmap/remap/flush), every page that failed to move."""
    return (d.get("x_direct_compact_scanned", 0) * costs.scan_pfn_ns
            + d.get("x_direct_compact_migrated", 0) * (costs.copy_page_ns + costs.migrate_overhead_ns)
            + d.get("x_direct_compact_failed", 0) * costs.migrate_overhead_ns)


def _charge_khugepaged(costs: CostModel, d: dict) -> float:
    """khugepaged's CPU time for a dict of counter deltas (its own CPU, not the clock)."""
    return (d.get("x_ptes_scanned", 0) * costs.scan_pte_ns + d.get("x_collapse_copied", 0) * costs.copy_page_ns
            + d.get("pswpin", 0) * costs.swap_in_page_ns + _charge_direct_compaction(costs, d))

class Kernel:
    """A simulated Linux kernel: one zone, THP, khugepaged, processes (see module doc).

    Parameters
    ----------
    mem_bytes : physical memory (default 1 GiB), in 4 KiB frames.
    swap_bytes : swap space (default: half of memory).
    virtual_bytes : the size of each process's virtual window (default 128 GiB).
    thp : dict of sysfs overrides, e.g. ``{"enabled": "always", "khugepaged/max_ptes_none": 64}``.
    costs : a :class:`thpbench.costs.CostModel`; default ``CostModel.default()``, the
        calibration of data/calibration/ (measured by benchmarks/calibrate.py), else
        the published figures.
    min_free_kbytes : default as the kernel computes it (then raised by khugepaged's
        set_recommended_min_free_kbytes while THP is enabled).
    vm : dict of ``/proc/sys/vm`` overrides (:class:`VmSysctl`), e.g.
        ``{"compaction_proactiveness": 0, "extfrag_threshold": 500}``.
    compaction : CONFIG_COMPACTION (default True): direct compaction in the allocator's
        slow path, kcompactd (woken where kswapd would wake it, and proactive every
        500 ms of the clock) and :meth:`compact_memory`.  False: none of them, as a
        kernel built without it (the 2010 baseline of Gorman's series).
    lru_reclaim : attach LRU reclaim, kswapd, the page cache and slab caches
        (thpbench.kernel.reclaim; default True).  False gives the model where the deferred-split
        shrinker is the only reclaim.

    Compaction (``mm/compaction.c`` via :mod:`thpbench.kernel.compaction`, the kernel's mover
    in ``_mm_compaction.pxi``): anonymous folios migrate with every mapping rewritten
    through the reverse map; page tables, the huge zero page and pinned pages never
    move.  A THP fault's allocation follows ``vma_thp_gfp_mask()`` (sysfs ``defrag``):
    direct reclaim/compaction where the mask allows (async compaction first; with
    ``__GFP_NORETRY`` it gives up on COMPACT_SKIPPED/DEFERRED), a kswapd wakeup where
    it only allows ``__GFP_KSWAPD_RECLAIM`` (defer modes).  Its stall is charged to the
    clock (``scan_pfn_ns``, ``copy_page_ns``, ``migrate_overhead_ns``) and shows in
    :meth:`thp_fault_latencies`.  kcompactd is woken when kswapd goes to sleep
    (:meth:`_wake_kswapd`), runs on its own CPU (``kcompactd_cpu_ns``), not the faulting
    task's clock.  Inside the slow path :meth:`_direct_reclaim` runs the deferred-split
    shrinker and, for a huge page, LRU reclaim until compaction is ready; an order-0
    allocation is reclaimed for after the operation, which is then retried.
    """

    def __init__(self, mem_bytes=1 << 30, *, swap_bytes=None, virtual_bytes=128 << 30, thp=None,
                 costs: CostModel | None = None, min_free_kbytes=None, max_processes=256,
                 max_order=10, pageblock_order=9, grouping=True, vm=None, compaction=True,
                 lru_reclaim=True):
        mem_bytes = _as_int(mem_bytes, "mem_bytes")
        virtual_bytes = _as_int(virtual_bytes, "virtual_bytes")
        if mem_bytes < 16 * HPAGE_PMD_SIZE:
            raise ValueError(f"mem_bytes {mem_bytes} too small (at least {16 * HPAGE_PMD_SIZE})")
        if virtual_bytes % HPAGE_PMD_SIZE or not 4 * HPAGE_PMD_SIZE <= virtual_bytes <= 1 << 40:
            raise ValueError(f"virtual_bytes {virtual_bytes} must be a multiple of 2 MiB in [8 MiB, 1 TiB]")
        swap_bytes = mem_bytes // 2 if swap_bytes is None else _as_int(swap_bytes, "swap_bytes")
        if swap_bytes < 0:
            raise ValueError(f"swap_bytes {swap_bytes} must be >= 0")
        self.nr_pages = mem_bytes // PAGE_SIZE
        self.virtual_bytes = virtual_bytes
        self.buddy = BuddyAllocator(self.nr_pages, max_order=max_order, pageblock_order=pageblock_order,
                                    grouping=grouping)
        self.max_processes = _as_int(max_processes, "max_processes")
        self.core = MMCore(self.buddy, self.max_processes, virtual_bytes // HPAGE_PMD_SIZE, swap_bytes // PAGE_SIZE)
        self.swap_pages = swap_bytes // PAGE_SIZE
        self.costs = CostModel.default() if costs is None else costs
        self._min_free_kbytes_user = min_free_kbytes
        self.now_ns = 0
        self.khugepaged_cpu_ns = 0.0
        self.pages_collapsed = 0
        self.full_scans = 0
        self.processes: dict[int, Process] = {}
        self._free_pids = list(range(self.max_processes - 1, -1, -1))
        self._next_family = 0
        # khugepaged state (mm/khugepaged.c: khugepaged_scan, mm_slot list)
        self._mm_slots: deque[int] = deque()
        self._scan_slot: int | None = None
        self._scan_address = 0
        self._khugepaged_next_ns: float | None = None
        self._last_result = None
        self._pass_pages_left = None
        self.tlb_flush_hooks: list[Callable[[int, int, int, str], None]] = []
        self._events: list[tuple] = []
        self._samples: list[dict] = []
        self._last_stats = self.core.stats()
        # -- compaction (mm/compaction.c): the zone's state, kcompactd, direct compaction
        if not isinstance(compaction, bool):
            raise TypeError(f"compaction must be a bool, got {type(compaction).__name__}")
        self.compaction = compaction
        self.compaction_state = _compaction.CompactionState(self.buddy)
        self.kcompactd = _compaction.Kcompactd(self.buddy, state=self.compaction_state, book=self.core)
        self.kcompactd_cpu_ns = 0.0
        self._thp_faults: list[np.ndarray] = []
        _mm_set_reclaim_hook(self.core, self._direct_reclaim)
        self.vm_sysctl = VmSysctl(self, vm)

        self.reclaim = None
        self._in_reclaim = False
        self.sysfs = ThpSysfs(self, thp)
        self._apply_policy()
        # reclaim, kswapd, the page cache and slab caches (thpbench/reclaim.py)
        # (lru_reclaim=False: the pre-reclaim model, where the deferred-split shrinker is
        # the only reclaim; no page cache, no kswapd)
        if lru_reclaim:
            from thpbench.kernel.reclaim import attach
            attach(self)
            # kswapd_try_to_sleep(): after balancing, kswapd resets compaction's skip bits
            # and wakes kcompactd (wakeup_kcompactd) for the order it was woken for
            self.kswapd.after_balance_hooks.append(self._kswapd_try_to_sleep)

    def __repr__(self):
        return (f"Kernel(mem={self.nr_pages * 4 // 1024} MiB, free={self.buddy.nr_free_pages} pages, "
                f"processes={len(self.processes)}, now_ns={self.now_ns})")

    # -- configuration ------------------------------------------------------------
    @property
    def min_free_kbytes(self) -> int:
        """/proc/sys/vm/min_free_kbytes of an x86-64 machine of this size (Linux 6.18).

        The machine has the zones of :func:`thpbench.kernel.watermarks.x86_64_zones`
        (DMA: the first 16 MiB, DMA32: the RAM below the 3 GiB MMIO gap, Normal: the rest).
        At boot ``calculate_min_free_kbytes()`` (``clamp(sqrt(16 * lowmem_kB), 128,
        262144)``); while THP is enabled khugepaged's ``set_recommended_min_free_kbytes()``
        raises it to ``pageblock_nr_pages * nr_zones * 11`` pages (``nr_zones``: the
        populated zones up to Normal), at most 5% of ``nr_free_buffer_pages()``.  The
        ``min_free_kbytes`` argument of :class:`Kernel` sets it as a write to the sysctl
        would (user_min_free_kbytes).
        """
        return self._zone_layout_cached()["min_free_kbytes"]

    @property
    def watermarks(self) -> dict:
        """The watermarks (pages: ``min``, ``low``, ``high``, ``promo``) of the one zone the
        simulator keeps.

        The simulated allocator pools all the machine's pages in one zone, where the
        kernel has DMA, DMA32 and Normal (:attr:`min_free_kbytes`).  Each real zone gets
        its share of ``min_free_kbytes / 4`` in proportion to its managed pages, plus
        ``max(min / 4, managed * watermark_scale_factor / 10000)`` per step
        (``__setup_per_zone_wmarks``), and the lower zones keep ``lowmem_reserve``
        pages away from user allocations (``setup_per_zone_lowmem_reserve``).  A user
        allocation fails a mark only when every zone fails it, so the pool's mark is the
        sum over the zones of mark + lowmem_reserve[ZONE_MOVABLE], each capped at the
        zone's size (:func:`thpbench.kernel.watermarks.pooled_watermarks`).  The per-zone
        numbers, as /proc/zoneinfo would print them, are in
        ``thpbench.kernel.watermarks.zone_watermarks(x86_64_zones(k.nr_pages))``.
        Simplified: kswapd's "one balanced zone is enough" and the order in which the
        zones are tried are not modelled, only the totals.
        """
        return dict(self._zone_layout_cached()["pooled"])

    def _zone_layout_cached(self) -> dict:
        # the layout depends on the size, pageblock_order, THP on/off and a user value:
        # computed once per combination (watermarks are read on hot paths)
        from thpbench.kernel.watermarks import pooled_watermarks, x86_64_zones, zone_watermarks
        thp_on = self.sysfs.values()["enabled"] != "never"
        user = self._min_free_kbytes_user
        key = (thp_on, user if user is None or isinstance(user, int) else repr(user))
        cache = self.__dict__.setdefault("_zone_layout_cache", {})
        if key not in cache:
            if user is not None and (isinstance(user, bool) or not isinstance(user, int)
                                     or not 0 <= user <= 2**31 - 1):
                # mm/page_alloc.c: min_free_kbytes_sysctl_handler: proc_dointvec_minmax, 0..INT_MAX
                raise ValueError(f"min_free_kbytes {user!r} must be an int in 0..{2**31 - 1}")
            layout = zone_watermarks(x86_64_zones(self.nr_pages), thp_enabled=thp_on,
                                     pageblock_order=self.buddy.pageblock_order, min_free_kbytes=user)
            layout["pooled"] = pooled_watermarks(layout)
            cache[key] = layout
        return cache[key]

    def _apply_policy(self):
        v = self.sysfs.values()
        # start_stop_khugepaged(): re-enabling THP wakes khugepaged if it has mms to scan
        if (v["enabled"] != "never" and self._mm_slots and self._khugepaged_next_ns is None
                and getattr(self, "processes", None) is not None):
            self._khugepaged_next_ns = self.now_ns
        self.core.set_policy(ENABLED_MODES.index(v["enabled"]), DEFRAG_MODES.index(v["defrag"]),
                             v["use_zero_page"], v["shrink_underused"], v["khugepaged/max_ptes_none"],
                             v["khugepaged/max_ptes_swap"], v["khugepaged/max_ptes_shared"],
                             v["khugepaged/defrag"], self.watermarks["min"])
        self._apply_compaction_policy()
        if getattr(self, "reclaim", None) is not None:
            self.reclaim.apply_policy()          # reclaim: watermarks follow min_free_kbytes

    # -- compaction: policy, kswapd/reclaim hooks, kcompactd -------------------------------
    def _apply_compaction_policy(self):
        vm = self.vm_sysctl.values()
        wm = self.watermarks
        _mm_attach_compaction(self.core, self.compaction_state, self.compaction, vm["extfrag_threshold"], wm["low"])
        kc = self.kcompactd
        kc.compaction_proactiveness = vm["compaction_proactiveness"] if self.compaction else 0
        kc.extfrag_threshold = vm["extfrag_threshold"]
        kc.wmark_min_pages, kc.wmark_low_pages = wm["min"], wm["low"]

    def _wake_kswapd(self, order) -> None:
        """wakeup_kswapd(order) from the allocator slow path (any allocation that misses
        the low watermark and may wake kswapd).  Unless the zone is balanced for the order
        (:meth:`_zone_balanced`), kswapd reclaims (``balance_pgdat``, thpbench.kernel.reclaim;
        for a costly order compact_gap beyond the high watermark) and then, going to
        sleep, wakes kcompactd; on a balanced zone it only hands the order to kcompactd."""
        if self.reclaim is not None and not self._zone_balanced(order):
            if self._in_reclaim:               # kswapd (or direct reclaim) is running already
                return
            self._in_reclaim = True
            try:
                self.kswapd.wakeup(order)      # its after-balance hook: _kswapd_try_to_sleep
            finally:
                self._in_reclaim = False
        else:
            self._kswapd_try_to_sleep(order)

    def _zone_balanced(self, order) -> bool:
        """pgdat_balanced() for one zone: free pages above the high watermark and, for
        order > 0, a free block of at least that order (zone_watermark_ok_safe)."""
        if self.buddy.nr_free_pages < self.watermarks["high"]:
            return False
        return order == 0 or bool(self.buddy.buddyinfo()[order:].sum())

    def _kswapd_try_to_sleep(self, order, reclaimed=0) -> None:
        """What kswapd does when it goes to sleep (``kswapd_try_to_sleep`` in
        ``mm/vmscan.c``): clear compaction's pageblock skip bits if a compaction's
        scanners met since (``reset_isolation_suitable``) and wake kcompactd for ``order``."""
        if not self.compaction:
            return
        # "When kswapd is going to sleep, it is reasonable to assume that pages and
        # compaction may succeed so reset the cache", then "now we should compact it to
        # make allocation of the requested order possible"
        self.compaction_state.reset_isolation_suitable(self.buddy)
        if order > 0:
            self.kcompactd.wakeup(order, max(self.now_ns, self.kcompactd.now_ns))

    def _direct_reclaim(self, order) -> int:
        """__perform_reclaim() of the allocator slow path (called from the core, for an
        allocation of ``order`` that failed the min watermark).  First the deferred-split
        shrinker until the request would fit; then, for a huge page (order >
        PAGE_ALLOC_COSTLY_ORDER: a THP fault or collapse whose gfp allows direct reclaim),
        LRU reclaim (try_to_free_pages) until compaction is ready, as
        ``should_continue_reclaim()`` keeps a costly order's reclaim going.  Order-0
        allocations are not reclaimed for here: the core asks its caller to reclaim after
        the operation and retry (a CoW fault holds its source page meanwhile).  Returns
        the pages freed.

        It runs INSIDE the core's fault loop (called back with the GIL from nogil code,
        mm/page_alloc.c's __perform_reclaim): it may reclaim through the core, but must
        not call ``_after_op``, run daemons or compaction, or raise for control flow (an
        exception is re-raised after the operation and the allocation fails).  The
        faulting page of a CoW fault is held by the core across this call (the kernel
        holds a reference): reclaim must not unmap or free pages it cannot see are busy."""
        freed = _mm_shrink_for(self.core, order)
        if self.reclaim is not None and order > 3 and not self._in_reclaim:
            # THP allocations do not hold a page across the allocation (collapse re-reads
            # its PTEs after allocating), so LRU reclaim may run here
            self._in_reclaim = True
            try:
                freed += self.reclaim.do_try_to_free_pages(2 << order, order=order)
            finally:
                self._in_reclaim = False
        return freed

    def _run_kcompactd(self, t) -> None:
        """Let kcompactd run up to time t (its wakeups and proactive checks); its CPU
        time (compaction_cost_ns of each piece of work) goes to kcompactd_cpu_ns."""
        t = max(int(t), self.kcompactd.now_ns)
        for row in self.kcompactd.run(t):
            self.kcompactd_cpu_ns += _compaction.compaction_cost_ns(row, self.costs)
        self._after_op(kcompactd=True)

    def _kcompactd_next_ns(self):
        kc = self.kcompactd
        nxt = []
        if kc._woken:
            nxt.append(kc._wake_ns)
        if kc.compaction_proactiveness:
            nxt.append(kc.next_check_ns)
        return min(nxt) if nxt else None

    def compact_memory(self) -> dict:
        """``echo 1 > /proc/sys/vm/compact_memory``: sync compaction of the whole zone by
        the writing task (its time goes to the clock).  Returns the compaction's dict
        (:func:`thpbench.kernel.compaction.compact_zone`).  No-op without CONFIG_COMPACTION."""
        if not self.compaction:
            return {"result": "COMPACT_SKIPPED"}
        wm = self.watermarks
        out = _compaction.compact_zone(self.buddy, -1, "sync", self.core, state=self.compaction_state, direct=False,
                                       whole_zone=True, ignore_skip_hint=True, wmark_min_pages=wm["min"],
                                       wmark_low_pages=wm["low"],
                                       extfrag_threshold=self.vm_sysctl.values()["extfrag_threshold"])
        self.now_ns += _compaction.compaction_cost_ns(out, self.costs)
        self._after_op()
        return out

    def thp_fault_latencies(self) -> pd.DataFrame:
        """One row per THP allocation attempted at fault: t_ns (the clock after the
        operation that faulted), pid, address, thp (True: thp_fault_alloc, False:
        thp_fault_fallback), compact_stall (direct compactions waited for),
        compact_result (the last one's, or None), pages_scanned, pages_migrated,
        pages_failed, and latency_ns = the fault (fault_2m_ns, or fault_4k_ns for the
        fallback page) + the direct compaction stall (compaction_cost_ns's terms).
        Direct reclaim's own time is charged to the clock but not included here."""
        cols = ["t_ns", "pid", "address", "thp", "compact_stall", "compact_result", "pages_scanned",
                "pages_migrated", "pages_failed", "latency_ns"]
        if not self._thp_faults:
            return pd.DataFrame(columns=cols)
        a = np.concatenate(self._thp_faults)
        c = self.costs
        ok = a[:, 3].astype(bool)
        stall = (a[:, 5] * c.scan_pfn_ns + a[:, 6] * (c.copy_page_ns + c.migrate_overhead_ns)
                 + a[:, 7] * c.migrate_overhead_ns)
        df = pd.DataFrame({"t_ns": a[:, 0], "pid": a[:, 1], "address": a[:, 2] << PAGE_SHIFT, "thp": ok,
                           "compact_stall": a[:, 4],
                           "compact_result": [COMPACT_RESULT_NAMES[r] if r >= 0 else None for r in a[:, 8].tolist()],
                           "pages_scanned": a[:, 5], "pages_migrated": a[:, 6], "pages_failed": a[:, 7]})
        df["latency_ns"] = np.where(ok, c.fault_2m_ns, c.fault_4k_ns) + stall
        return df[cols]

    # -- processes ------------------------------------------------------------------
    def spawn(self) -> Process:
        """A new process with an empty address space."""
        p = self._new_process(self._next_family)
        self._next_family += 1
        return p

    def _new_process(self, family):
        if not self._free_pids:
            raise RuntimeError(f"too many processes (max_processes={self.max_processes})")
        pid = self._free_pids.pop()
        self.core.mm_create(pid, family)
        p = Process(self, pid, family)
        self.core.set_vmas(pid, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint32))
        self.processes[pid] = p
        return p

    def _fork(self, parent: Process) -> Process:
        child = self._new_process(parent.family)
        child.vmas = [Vma(v.start, v.end, v.prot, v.hugepage) for v in parent.vmas]
        child._push_vmas()
        ok = self.core.fork(parent.pid, child.pid)
        if not ok:
            self._exit(child)
            self._after_op()
            raise OutOfMemory(parent.pid, 0)
        if parent.pid in self._mm_slots:
            self._mm_slots.append(child.pid)           # khugepaged_fork()
        self._after_op()
        return child

    def _exit(self, p: Process):
        self.core.mm_destroy(p.pid)
        p.alive = False
        p.vmas = []
        del self.processes[p.pid]
        if p.pid in self._mm_slots:
            if self._scan_slot == p.pid:
                self._advance_slot()
            self._mm_slots.remove(p.pid)
        self._free_pids.append(p.pid)
        self._after_op()

    # -- events, clock ------------------------------------------------------------------
    def _after_op(self, khugepaged=False, kcompactd=False):
        """Charge the time of what the core just did, drain its event log into the
        TLB hooks, act on kswapd wakeups, and let khugepaged and kcompactd run if the
        clock passed their wake-up times."""
        st = self.core.stats()
        d = {k: st[k] - self._last_stats[k] for k in st}
        self._last_stats = st
        if khugepaged:
            self.khugepaged_cpu_ns += _charge_khugepaged(self.costs, d)
        elif not kcompactd:         # kcompactd's time is charged from its own rows
            self.now_ns += _charge(self.costs, d)
        fl = _mm_drain_thp_fault_log(self.core)
        if len(fl):
            self._thp_faults.append(np.column_stack([np.full(len(fl), int(self.now_ns), np.int64), fl]))
        exc = _mm_take_hook_exc(self.core)
        wake = _mm_take_kswapd_wake(self.core)
        if wake >= 0:
            self._wake_kswapd(wake)
        ev = self.core.drain_events()
        if len(ev):
            t = self.now_ns
            for kind, mmid, vpn, nr in ev.tolist():
                self._events.append((t, MM_EVENT_NAMES[kind], mmid, vpn << PAGE_SHIFT, nr << PAGE_SHIFT))
                # every event, a THP fault too (it installs a PMD: nothing to flush, but a
                # TLB model must see the new mapping)
                for hook in self.tlb_flush_hooks:
                    hook(mmid, vpn << PAGE_SHIFT, nr << PAGE_SHIFT, MM_EVENT_NAMES[kind])
        if exc is not None:
            raise exc
        if not khugepaged and not kcompactd:
            self._maybe_run_khugepaged()
            nxt = self._kcompactd_next_ns()
            if nxt is not None and nxt <= self.now_ns:
                self._run_kcompactd(self.now_ns)

        if self.reclaim is not None and not self._in_reclaim:
            # reclaim: an allocation below the low watermark woke kswapd (or the flusher)
            self._in_reclaim = True
            try:
                self.reclaim.after_op()
            finally:
                self._in_reclaim = False

    def _after_op_settle(self):
        """Account the operations so far without waking kswapd (reclaim.py)."""
        guard, self._in_reclaim = self._in_reclaim, True
        try:
            self._after_op()
        finally:
            self._in_reclaim = guard

    def _retry_after_reclaim(self) -> bool:
        """reclaim: after a fault failed for memory, run direct reclaim if the core asked
        for it; True = retry the fault, False = a real OOM (counted as oom_kill)."""
        if self.reclaim is None:
            return False
        need = self.reclaim.consume_need()
        if need and self.reclaim.direct_reclaim():
            return True
        if need:
            self.core.count_oom()
        return False

    # -- reclaim (thpbench/reclaim.py) -------------------------------------------------
    def shrink_node(self, nr_to_reclaim, *, may_swap=True, may_writepage=True, order=0) -> int:
        """Reclaim nr_to_reclaim pages (mm/vmscan.c shrink_node / do_try_to_free_pages);
        returns pages reclaimed.  See thpbench.kernel.reclaim."""
        from thpbench.kernel.reclaim import shrink_node
        return shrink_node(self, nr_to_reclaim, may_swap=may_swap, may_writepage=may_writepage, order=order)

    def shrink_all_memory(self, nr_pages) -> int:
        """The hibernation path (mm/vmscan.c shrink_all_memory); returns pages freed."""
        from thpbench.kernel.reclaim import shrink_all_memory
        return shrink_all_memory(self, nr_pages)

    def drop_caches(self, mode) -> dict:
        """echo mode > /proc/sys/vm/drop_caches (1, 2 or 3)."""
        from thpbench.kernel.reclaim import drop_caches
        return drop_caches(self, mode)

    def events(self) -> pd.DataFrame:
        """The mm event log: t_ns, kind (collapse, split_pmd, zap, mprotect, migrate, cow,
        swapout, thp_fault), pid, start, nbytes."""
        return pd.DataFrame(self._events, columns=["t_ns", "kind", "pid", "start", "nbytes"])

    def advance(self, ns, sample_every_ns=None) -> None:
        """Let ``ns`` nanoseconds of simulated time pass; khugepaged runs at its wake-up
        times meanwhile (each pass records a sample).  With ``sample_every_ns`` the
        counters are also sampled at that interval, for a Result with a regular grid."""
        if ns < 0:
            raise ValueError(f"cannot advance time by {ns} ns")
        if sample_every_ns is not None and sample_every_ns <= 0:
            raise ValueError(f"sample_every_ns must be > 0, got {sample_every_ns}")
        target = self.now_ns + ns
        next_sample = None if sample_every_ns is None else self.now_ns + sample_every_ns
        while True:
            kh = self._khugepaged_next_ns if (self._khugepaged_next_ns is not None
                                               and self._khugepaged_next_ns <= target) else None
            sm = next_sample if (next_sample is not None and next_sample <= target) else None
            kc = self._kcompactd_next_ns()
            kc = kc if (kc is not None and kc <= target) else None
            if kh is None and sm is None and kc is None:
                break
            if kc is not None and (kh is None or kc < kh) and (sm is None or kc < sm):
                # kcompactd (a wakeup or a proactive check) comes first
                self.now_ns = max(self.now_ns, kc)
                self._run_kcompactd(kc)
            elif sm is not None and (kh is None or sm < kh):
                self.now_ns = max(self.now_ns, sm)
                self.sample()
                next_sample += sample_every_ns
            else:
                self.now_ns = max(self.now_ns, kh)
                self._khugepaged_wake()
        self.now_ns = target

    def _maybe_run_khugepaged(self):
        # not from inside a khugepaged pass (kswapd, woken by the pass's own allocation,
        # settles the clock through _after_op before the pass has set its next wake-up)
        if getattr(self, "_in_khugepaged", False):
            return
        self._in_khugepaged = True
        try:
            while self._khugepaged_next_ns is not None and self._khugepaged_next_ns <= self.now_ns:
                self._khugepaged_wake()
        finally:
            self._in_khugepaged = False

    # -- khugepaged -----------------------------------------------------------------------
    def _vma_khugepaged_ok(self, v: Vma) -> bool:
        # thp_vma_allowable_order(..., TVA_KHUGEPAGED, PMD_ORDER)
        en = self.sysfs.values()["enabled"]
        if v.hugepage < 0 or not (v.prot & PROT_READ):
            return False
        return en == "always" or (en == "madvise" and v.hugepage > 0)

    def _khugepaged_enter(self, p: Process):
        # khugepaged_enter_vma(): register the mm on its first eligible VMA
        if p.pid in self._mm_slots or self.sysfs.values()["enabled"] == "never":
            return
        if any(self._vma_khugepaged_ok(v) and (-(-v.start // HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE + HPAGE_PMD_SIZE
                                                <= v.end) for v in p.vmas):
            self._mm_slots.append(p.pid)
            if self._khugepaged_next_ns is None:
                self._khugepaged_next_ns = self.now_ns        # wake_up_interruptible(&khugepaged_wait)

    def _advance_slot(self):
        i = self._mm_slots.index(self._scan_slot)
        if i + 1 < len(self._mm_slots):
            self._scan_slot = self._mm_slots[i + 1]
        else:
            self._scan_slot = None
            self.full_scans += 1
        self._scan_address = 0

    def _khugepaged_wake(self):
        """One khugepaged_do_scan() pass (or the rest of one after its alloc sleep),
        then the sleep."""
        v = self.sysfs.values()
        start_ns = self.now_ns
        if self._pass_pages_left is None:
            pages, wait = v["khugepaged/pages_to_scan"], True
        else:
            pages, wait = self._pass_pages_left, False
        status, progress = self._khugepaged_do_scan(pages, wait)
        self._after_op(khugepaged=True)
        self.sample()
        if status == "alloc_sleep":
            # the first SCAN_ALLOC_HUGE_PAGE_FAIL of a pass: khugepaged_alloc_sleep(),
            # then the same pass goes on (a second failure ends it)
            self._pass_pages_left = max(pages - progress, 1)
            self._khugepaged_next_ns = start_ns + v["khugepaged/alloc_sleep_millisecs"] * 1_000_000
            return
        self._pass_pages_left = None
        if not self._mm_slots or v["enabled"] == "never":
            self._khugepaged_next_ns = None                      # wait for work
        else:
            self._khugepaged_next_ns = start_ns + max(v["khugepaged/scan_sleep_millisecs"] * 1_000_000, 1)

    def _khugepaged_do_scan(self, pages, wait):
        # khugepaged_do_scan(): returns ("done" | "alloc_sleep", progress)
        progress = 0
        pass_through_head = 0
        while True:
            if self._scan_slot is None:
                pass_through_head += 1
            if self._mm_slots and pass_through_head < 2 and self.sysfs.values()["enabled"] != "never":
                progress += self._khugepaged_scan_mm_slot(pages - progress)
            else:
                progress = pages
            if progress >= pages:
                return "done", progress
            if self._last_result == SCAN_ALLOC_HUGE_PAGE_FAIL:
                if not wait:
                    return "done", progress
                return "alloc_sleep", progress

    def _khugepaged_scan_mm_slot(self, pages):
        # khugepaged_scan_mm_slot()
        self._last_result = None
        if self._scan_slot is None:
            self._scan_slot = self._mm_slots[0]
            self._scan_address = 0
        p = self.processes[self._scan_slot]
        progress = 1
        finished = True
        for v in sorted(p.vmas, key=lambda v: v.start):
            if v.end <= self._scan_address:
                continue
            if not self._vma_khugepaged_ok(v):
                progress += 1
                continue
            hstart = -(-v.start // HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE
            hend = v.end // HPAGE_PMD_SIZE * HPAGE_PMD_SIZE
            if self._scan_address > hend:
                progress += 1
                continue
            self._scan_address = max(self._scan_address, hstart)
            while self._scan_address < hend:
                r = self.core.collapse(p.pid, self._scan_address >> PAGE_SHIFT, v.vm_flags, True)
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

    def khugepaged_scan_now(self) -> None:
        """Run one khugepaged pass at the current time (ignoring the sleep)."""
        self._khugepaged_wake()

    def _madvise_collapse(self, p: Process, start, end) -> int:
        # mm/khugepaged.c: madvise_collapse(); ignores "enabled" and the max_ptes_* limits
        hstart = -(-start // HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE
        hend = end // HPAGE_PMD_SIZE * HPAGE_PMD_SIZE
        last = SCAN_SUCCEED
        thps = 0
        nr = max(0, (hend - hstart) // HPAGE_PMD_SIZE)
        for addr in range(hstart, hend, HPAGE_PMD_SIZE):
            v = p.find_vma(addr)
            if v is None or v.hugepage < 0 or not (v.start <= addr and addr + HPAGE_PMD_SIZE <= v.end):
                return -_errno.EINVAL
            r = self.core.collapse(p.pid, addr >> PAGE_SHIFT, v.vm_flags, False)
            if r in (SCAN_SUCCEED, SCAN_PMD_MAPPED):
                thps += 1
            elif r in _MADV_COLLAPSE_CONTINUE:
                last = r
            else:
                last = r          # "Other error, exit": the remaining PMDs are not tried
                break
        if thps == nr:
            return 0
        # madvise_collapse_errno()
        if last in (SCAN_ALLOC_HUGE_PAGE_FAIL, SCAN_EXCEED_NONE_PTE):
            return -_errno.ENOMEM
        return -_errno.EINVAL

    # -- other kernel entry points ---------------------------------------------------------
    def shrink(self, nr_to_scan=None) -> int:
        """Run the deferred-split shrinker (deferred_split_scan) as memory pressure would;
        returns the number of folios split."""
        n = self.core.deferred_split_queue_len if nr_to_scan is None else _as_int(nr_to_scan, "nr_to_scan")
        r = self.core.deferred_split_scan(n)
        self._after_op()
        return r

    def migrate_folio(self, pfn, target_pfn=None) -> int:
        """Migrate the anonymous folio holding ``pfn`` (migrate_pages() of one folio):
        its content and every mapping move to a new block of the same order, which is
        ``target_pfn`` if given (it must be free: it is taken off the free lists, as
        compaction's free scanner isolates it) or else any movable block.  The old block
        is freed.  Returns the new head pfn; TLB hooks see a "migrate" event per mapping.
        Raises ValueError if pfn is not in an anonymous folio or the target is unusable.
        """
        pfn = _as_int(pfn, "pfn")
        if not 0 <= pfn < self.nr_pages:
            raise ValueError(f"pfn {pfn} out of range 0..{self.nr_pages - 1}")
        info = self.core.frame_owner(pfn)
        if info is None:
            raise ValueError(f"pfn {pfn} is not in an anonymous folio")
        head, order = info
        if target_pfn is None:
            dst = self.buddy.alloc(order, "movable")
            if dst is None:
                raise OutOfMemory(-1, 0)
        else:
            dst = _as_int(target_pfn, "target_pfn")
            if not self.core.take_free_block(dst, order):
                raise ValueError(f"target pfn {dst} is not the start of a free block of order >= {order}")
        r = self.core.migrate_folio(head, dst)
        if r < 0:
            self.buddy.free(dst, order)
            raise ValueError(f"cannot migrate the folio at pfn {head} to {dst}")
        self._after_op()
        return r

    def split_huge_pages(self, pid, start, end, new_order=0) -> int:
        """debugfs ``split_huge_pages``: write ``"<pid>,0x<start>,0x<end>,<order>"``."""
        p = self.processes.get(_as_int(pid, "pid"))
        if p is None:
            raise ValueError(f"no process with pid {pid}")
        new_order = _as_int(new_order, "new_order")
        if not 0 <= new_order < HPAGE_PMD_ORDER:
            raise ValueError(f"new_order {new_order} out of range 0..{HPAGE_PMD_ORDER - 1}")
        s, e = p._range(start, end - start)
        n = self.core.split_range(p.pid, s >> PAGE_SHIFT, e >> PAGE_SHIFT, new_order)
        self._after_op()
        return n

    def write_debugfs_split(self, text: str) -> int:
        """Parse the debugfs split_huge_pages text format and split."""
        parts = text.strip().split(",")
        if len(parts) != 4:
            raise ValueError(f"expected '<pid>,0x<start>,0x<end>,<order>', got {text!r}")
        return self.split_huge_pages(int(parts[0]), int(parts[1], 16), int(parts[2], 16), int(parts[3]))

    # -- read-outs --------------------------------------------------------------------------
    def vmstat(self) -> dict:
        """/proc/vmstat lines the model maintains, spelled as the kernel spells them."""
        st = self.core.stats()
        out = {k: v for k, v in st.items() if not k.startswith("x_")}
        # compaction's events (mm/vmstat.c names); pgmigrate_* also count Kernel.migrate_folio
        cs = self.compaction_state.counters()
        out["pgmigrate_success"] = st["pgmigrate_success"] + cs["pgmigrate_success"]
        out["pgmigrate_fail"] = cs["pgmigrate_fail"]
        for k in ("compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "compact_stall",
                  "compact_fail", "compact_success", "compact_daemon_wake", "compact_daemon_migrate_scanned",
                  "compact_daemon_free_scanned"):
            out[k] = cs[k]
        out["nr_free_pages"] = self.buddy.nr_free_pages
        out["nr_anon_pages"] = st["nr_anon_pages"]
        if self.reclaim is not None:
            out.update(self.reclaim.stats())
        return out

    def meminfo(self) -> dict:
        """/proc/meminfo (kB)."""
        st = self.core.stats()
        return {"MemTotal": self.nr_pages * 4, "MemFree": self.buddy.nr_free_pages * 4,
                "AnonPages": st["nr_anon_pages"] * 4,
                "AnonHugePages": st["nr_anon_transparent_hugepages"] * HPAGE_PMD_SIZE // 1024,
                "PageTables": st["nr_page_table_pages"] * 4,
                "SwapTotal": self.swap_pages * 4, "SwapFree": self.core.nr_swap_free * 4,
                **self._reclaim_meminfo()}

    def _reclaim_meminfo(self) -> dict:
        if self.reclaim is None:
            return {}
        r = self.reclaim.core
        lru = r.lru_sizes()
        return {"Cached": r.nr_file_pages * 4, "Dirty": r.nr_dirty * 4, "Mapped": r.nr_mapped * 4,
                "Active(anon)": lru["nr_active_anon"] * 4, "Inactive(anon)": lru["nr_inactive_anon"] * 4,
                "Active(file)": lru["nr_active_file"] * 4, "Inactive(file)": lru["nr_inactive_file"] * 4,
                "SReclaimable": self.slab.nr_pages(True) * 4, "SUnreclaim": self.slab.nr_pages(False) * 4}

    def vmstat_text(self) -> str:
        """/proc/vmstat's format: one "name value" line per counter."""
        return "".join(f"{k} {v}\n" for k, v in self.vmstat().items())

    def meminfo_text(self) -> str:
        """/proc/meminfo's format (show_val_kb(): the name padded to 16, the value to 8)."""
        return "".join(f"{k + ':':<16}{v:>8} kB\n" for k, v in self.meminfo().items())

    def khugepaged_stats(self) -> dict:
        return {"pages_collapsed": self.pages_collapsed, "full_scans": self.full_scans,
                "khugepaged_cpu_ns": self.khugepaged_cpu_ns, "mm_slots": len(self._mm_slots),
                "kcompactd_cpu_ns": self.kcompactd_cpu_ns}

    def sample(self) -> dict:
        """Record the counters now (one row of the Result)."""
        row = {"t_ns": self.now_ns, **self.vmstat(), **self.meminfo(), **self.khugepaged_stats(),
               "min_free_kbytes": self.min_free_kbytes}
        self._samples.append(row)
        return row

    def result(self) -> "Result":
        return Result(pd.DataFrame(self._samples), self.events())

    def check(self) -> bool:
        """Every invariant: buddy lists, page tables vs mapcounts and rmap, RSS, swap,
        page conservation, the deferred split queue, VMAs vs the core."""
        self.core.check()
        _mm_check_compaction(self.core)

        if self.reclaim is not None:
            self.reclaim.check()
        for pid, p in self.processes.items():
            vs = sorted(p.vmas, key=lambda v: v.start)
            for a, b in zip(vs, vs[1:]):
                if a.end > b.start:
                    raise InvariantError(f"pid {pid}: VMAs [{a.start:#x},{a.end:#x}) and [{b.start:#x},{b.end:#x}) overlap")
        slots = set(self._mm_slots)
        if not slots <= set(self.processes):
            raise InvariantError(f"khugepaged mm_slots {slots - set(self.processes)} belong to no process")
        return True


@dataclass
class Result:
    """Counters over simulated time (``df``: one row per sample, columns t_ns and the
    vmstat / meminfo / khugepaged names) and the event log (``events``)."""
    df: pd.DataFrame
    events: pd.DataFrame

    def timeseries(self) -> pd.DataFrame:
        """The samples in long form: t_ns, metric, value."""
        return self.df.melt(id_vars="t_ns", var_name="metric", value_name="value")
