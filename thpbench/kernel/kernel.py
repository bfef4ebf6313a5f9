"""A simulated Linux kernel with transparent huge pages.

``Kernel`` owns one zone of physical memory (a :class:`thpbench.BuddyAllocator`
with watermarks), the THP configuration under its sysfs names, and processes whose
page tables, reverse map and per-page content live in the Cython core.  It builds its
subsystems, each with a narrow context of what it may read and call:
:class:`~thpbench.kernel.khugepaged.Khugepaged`, compaction's
:class:`~thpbench.kernel.compaction.Kcompactd`, and
:class:`~thpbench.kernel.reclaim.Reclaim` (kswapd, the page cache, slab caches).
The daemons share one protocol (``next_wakeup_ns()``, ``run_until(t_ns)``) and run
on a :class:`~thpbench.kernel.clock.Clock` in simulated nanoseconds, which may drive
several kernels (a host and its guests).

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

import math
import numbers
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from thpbench.costs import CostModel
from thpbench._core import BuddyAllocator, MMCore, MM_EVENT_NAMES, SCAN_RESULT_NAMES, InvariantError
from thpbench._core import (COMPACT_RESULT_NAMES, _mm_attach_compaction, _mm_set_reclaim_hook, _mm_take_hook_exc,
                            _mm_take_kswapd_wake, _mm_drain_thp_fault_log, _mm_shrink_for, _mm_check_compaction)
from thpbench.kernel import compaction as _compaction
from thpbench.kernel.clock import Clock, validate_duration_ns
from thpbench.kernel.khugepaged import (Khugepaged, SCAN_SUCCEED, SCAN_PMD_MAPPED, SCAN_ALLOC_HUGE_PAGE_FAIL,
                                        SCAN_EXCEED_NONE_PTE)
from thpbench.kernel.reclaim import Reclaim
from thpbench.units import (PAGE_SHIFT, PAGE_SIZE, HPAGE_PMD_ORDER, HPAGE_PMD_NR, HPAGE_PMD_SIZE)
from thpbench.kernel.errors import OutOfMemory
from thpbench.kernel.tunables import DEFRAG_MODES, ENABLED_MODES, ThpSysfs, VmSysctl
from thpbench.kernel.process import PmdKind, Process, ProcessContext, Vma
from thpbench._validate import as_int as _as_int

__all__ = ["Kernel", "Result", "DEFAULT_LOG_LIMIT", "SCAN_RESULT_NAMES", "SCAN_SUCCEED", "SCAN_PMD_MAPPED",
           "SCAN_ALLOC_HUGE_PAGE_FAIL", "SCAN_EXCEED_NONE_PTE"]

#: entries each log keeps by default (events, THP fault latencies, samples, kcompactd's rows)
DEFAULT_LOG_LIMIT = 100_000
#: PID_MAX_DEFAULT (include/linux/threads.h): the most processes a Kernel may hold
PID_MAX_DEFAULT = 32768
#: the most samples one advance(ns, sample_every_ns) may record
MAX_SAMPLES_PER_ADVANCE = 1_000_000


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

class _KhugepagedOps:
    """khugepaged's narrow view of its kernel (khugepaged.KhugepagedContext)."""

    __slots__ = ("_k", "core")

    def __init__(self, k: "Kernel"):
        self._k = k
        self.core = k.core

    def now_ns(self):
        return self._k.now_ns

    def thp(self) -> dict:
        return self._k.sysfs.values()

    def vmas(self, pid) -> list:
        return self._k.processes[pid].vmas

    def pass_done(self) -> None:
        self._k._after_op(khugepaged=True)
        self._k.sample()


class _ReclaimOps:
    """Reclaim's narrow view of its kernel (reclaim.ReclaimContext)."""

    __slots__ = ("_k", "core", "buddy")

    def __init__(self, k: "Kernel"):
        self._k = k
        self.core = k.core
        self.buddy = k.buddy

    @property
    def costs(self):
        return self._k.costs

    def now_ns(self):
        return self._k.now_ns

    def watermarks(self) -> dict:
        return self._k.watermarks

    def zone_balanced(self, order) -> bool:
        return self._k._zone_balanced(order)

    def charge_ns(self, ns) -> None:
        self._k._charge_ns(ns)

    def settle(self) -> None:
        self._k._after_op_settle()

    def after_op(self) -> None:
        self._k._after_op()

    def discard_charges(self) -> None:
        self._k._discard_charges()

    def kswapd_sleeping(self, order) -> None:
        self._k._kswapd_try_to_sleep(order)


class _ProcessOps:
    """A process's narrow view of its kernel (process.ProcessContext)."""

    __slots__ = ("_k", "core")

    def __init__(self, k: "Kernel"):
        self._k = k
        self.core = k.core

    @property
    def virtual_bytes(self) -> int:
        return self._k.virtual_bytes

    def owns(self, pid, proc) -> bool:
        return self._k.processes.get(pid) is proc

    def after_op(self) -> None:
        self._k._after_op()

    def khugepaged_enter(self, pid, vmas) -> None:
        self._k.khugepaged.enter(pid, vmas)

    def madvise_collapse(self, pid, vmas, start, end) -> int:
        return self._k.khugepaged.madvise_collapse(pid, vmas, start, end)

    def new_process(self, family) -> Process:
        return self._k._new_process(family)

    def forked(self, parent_pid, child_pid) -> None:
        self._k.khugepaged.fork(parent_pid, child_pid)

    def release(self, pid) -> None:
        self._k._release(pid)

    def retry_after_reclaim(self) -> bool:
        return self._k._retry_after_reclaim()


class _Sampler:
    """advance()'s regular samples, as a daemon on the clock for that one run."""

    name = "sampler"
    clock_priority = 1

    def __init__(self, kernel: "Kernel", first_ns, every_ns, last_ns):
        self._k, self._next, self._every, self._last = kernel, first_ns, every_ns, last_ns

    def next_wakeup_ns(self):
        return self._next if self._next <= self._last else None

    def run_until(self, t_ns) -> None:
        self._k.sample()
        self._next += self._every


def _bool(value, what):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


class Kernel:
    """A simulated Linux kernel: one zone, THP, khugepaged, processes (see module doc).

    Parameters
    ----------
    mem_bytes : physical memory (default 1 GiB), in 4 KiB frames (at least 32 MiB).
    swap_bytes : swap space (default: half of memory).
    virtual_bytes : the size of each process's virtual window (default 128 GiB).
    thp : dict of sysfs overrides, e.g. ``{"enabled": "always", "khugepaged/max_ptes_none": 64}``.
    costs : a :class:`thpbench.costs.CostModel`; default ``CostModel.default()``, the
        calibration of data/calibration/ (measured by benchmarks/calibrate.py), else
        the published figures.
    min_free_kbytes : default as the kernel computes it (then raised by khugepaged's
        set_recommended_min_free_kbytes while THP is enabled).
    max_processes : how many processes may exist at once (1..32768, PID_MAX_DEFAULT).
    max_order : the buddy allocator's MAX_PAGE_ORDER (default 10); at least
        HPAGE_PMD_ORDER (9), or no THP could ever be allocated.
    pageblock_order : default 9 (HPAGE_PMD_ORDER, as on x86-64); at most max_order.
    grouping : grouping pages by mobility (default True).
    vm : dict of ``/proc/sys/vm`` overrides (:class:`VmSysctl`), e.g.
        ``{"compaction_proactiveness": 0, "extfrag_threshold": 500}``.
    compaction : CONFIG_COMPACTION (default True): direct compaction in the allocator's
        slow path, kcompactd (woken where kswapd would wake it, and proactive every
        500 ms of the clock) and :meth:`compact_memory`.  False: none of them, as a
        kernel built without it (the 2010 baseline of Gorman's series).
    lru_reclaim : LRU reclaim, kswapd, the page cache and slab caches
        (:mod:`thpbench.kernel.reclaim`; default True).  False gives the model where the
        deferred-split shrinker is the only reclaim: ``reclaim`` still exists, and its
        entry points (:meth:`shrink_node`, :meth:`shrink_all_memory`,
        :meth:`drop_caches`, ``page_cache``, ``slab``) raise ValueError.
    log_limit : how many entries each log keeps, the most recent ones (the event log,
        :meth:`thp_fault_latencies`, the samples of :meth:`result`, kcompactd's rows);
        default 100,000; None keeps everything (a long run grows without bound); 0 keeps
        nothing.
    clock : a :class:`~thpbench.kernel.clock.Clock` to run on (shared with other
        kernels, e.g. a host and its guests); default a clock of its own.

    Subsystems (each built here, each with a narrow context of what it may read and
    call): ``khugepaged`` (:mod:`thpbench.kernel.khugepaged`), ``kcompactd`` and the
    zone's ``compaction_state`` (:mod:`thpbench.kernel.compaction`), ``reclaim`` with
    ``kswapd``, ``page_cache`` and ``slab`` (:mod:`thpbench.kernel.reclaim`).  The
    three daemons share one protocol, ``next_wakeup_ns()`` and ``run_until(t_ns)``,
    and run on :attr:`clock` (:meth:`advance`); :meth:`daemons` lists them,
    ``pause()``/``resume()`` park one.

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
                 lru_reclaim=True, log_limit=DEFAULT_LOG_LIMIT, clock: Clock | None = None):
        # -- every setting is checked before anything is built (mm_init / setup_arch order)
        mem_bytes = _as_int(mem_bytes, "mem_bytes")
        virtual_bytes = _as_int(virtual_bytes, "virtual_bytes")
        if mem_bytes < 16 * HPAGE_PMD_SIZE:
            raise ValueError(f"mem_bytes {mem_bytes} too small (at least {16 * HPAGE_PMD_SIZE})")
        if virtual_bytes % HPAGE_PMD_SIZE or not 4 * HPAGE_PMD_SIZE <= virtual_bytes <= 1 << 40:
            raise ValueError(f"virtual_bytes {virtual_bytes} must be a multiple of 2 MiB in [8 MiB, 1 TiB]")
        swap_bytes = mem_bytes // 2 if swap_bytes is None else _as_int(swap_bytes, "swap_bytes")
        if swap_bytes < 0:
            raise ValueError(f"swap_bytes {swap_bytes} must be >= 0")
        max_processes = _as_int(max_processes, "max_processes")
        if not 1 <= max_processes <= PID_MAX_DEFAULT:
            raise ValueError(f"max_processes {max_processes} out of range 1..{PID_MAX_DEFAULT} (PID_MAX_DEFAULT)")
        max_order = _as_int(max_order, "max_order")
        pageblock_order = _as_int(pageblock_order, "pageblock_order")
        if max_order < HPAGE_PMD_ORDER:
            raise ValueError(f"max_order {max_order} is below HPAGE_PMD_ORDER ({HPAGE_PMD_ORDER}): the buddy "
                             f"allocator could never hand out a 2 MiB THP (allowed: {HPAGE_PMD_ORDER}..10)")
        if max_order > 10:
            raise ValueError(f"max_order {max_order} out of range {HPAGE_PMD_ORDER}..10 (MAX_PAGE_ORDER on x86-64)")
        if not 0 <= pageblock_order <= max_order:
            raise ValueError(f"pageblock_order {pageblock_order} out of range 0..max_order ({max_order})")
        grouping = _bool(grouping, "grouping")
        compaction = _bool(compaction, "compaction")
        lru_reclaim = _bool(lru_reclaim, "lru_reclaim")
        if costs is not None and not isinstance(costs, CostModel):
            raise TypeError(f"costs must be a CostModel, got {type(costs).__name__}")
        for name, d in (("thp", thp), ("vm", vm)):
            if d is not None and not isinstance(d, dict):
                raise TypeError(f"{name} must be a dict of overrides, got {type(d).__name__} {d!r}")
        if log_limit is not None:
            log_limit = _as_int(log_limit, "log_limit")
            if log_limit < 0:
                raise ValueError(f"log_limit {log_limit} must be >= 0 (or None: unbounded)")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a thpbench.kernel.clock.Clock, got {type(clock).__name__}")

        self.nr_pages = mem_bytes // PAGE_SIZE
        self.virtual_bytes = virtual_bytes
        self.buddy = BuddyAllocator(self.nr_pages, max_order=max_order, pageblock_order=pageblock_order,
                                    grouping=grouping)
        self.max_processes = max_processes
        self.core = MMCore(self.buddy, self.max_processes, virtual_bytes // HPAGE_PMD_SIZE, swap_bytes // PAGE_SIZE)
        self.swap_pages = swap_bytes // PAGE_SIZE
        self.costs = CostModel.default() if costs is None else costs
        self._min_free_kbytes_user = min_free_kbytes
        self.clock = Clock() if clock is None else clock
        self._now_ns = self.clock.now_ns
        self.log_limit = log_limit
        self.khugepaged_cpu_ns = 0.0
        self.processes: dict[int, Process] = {}
        self._free_pids = list(range(self.max_processes - 1, -1, -1))
        self._next_family = 0
        self._process_ops = _ProcessOps(self)
        self.khugepaged = Khugepaged(_KhugepagedOps(self))
        self.tlb_flush_hooks: list[Callable[[int, int, int, str], None]] = []
        self._events: deque = deque(maxlen=log_limit)
        self._samples: deque = deque(maxlen=log_limit)
        self._thp_faults: deque = deque()
        self._thp_fault_rows = 0
        self._last_stats = self.core.stats()
        self._in_daemons = False
        # -- compaction (mm/compaction.c): the zone's state, kcompactd, direct compaction
        self.compaction = compaction
        self.compaction_state = _compaction.CompactionState(self.buddy)
        self.kcompactd = _compaction.Kcompactd(self.buddy, state=self.compaction_state, book=self.core,
                                               start_ns=self._now_ns, on_work=self._kcompactd_worked,
                                               log_limit=log_limit)
        self.kcompactd_cpu_ns = 0.0
        _mm_set_reclaim_hook(self.core, self._direct_reclaim)
        self.vm_sysctl = VmSysctl(self, vm)
        self._in_reclaim = False
        self.sysfs = ThpSysfs(self, thp)
        # reclaim, kswapd, the page cache and slab caches (thpbench.kernel.reclaim); with
        # lru_reclaim=False the deferred-split shrinker is the only reclaim
        self.reclaim = Reclaim(_ReclaimOps(self), enabled=lru_reclaim)
        self._apply_policy()
        self._daemons = tuple(d for d, on in ((self.khugepaged, True), (self.kcompactd, compaction),
                                              (self.reclaim.kswapd, lru_reclaim)) if on)
        self.clock.attach(self)

    def __repr__(self):
        return (f"Kernel(mem={self.nr_pages * 4 // 1024} MiB, free={self.buddy.nr_free_pages} pages, "
                f"processes={len(self.processes)}, now_ns={self.now_ns})")

    # -- subsystems -----------------------------------------------------------------
    @property
    def kswapd(self):
        """kswapd0 (:class:`thpbench.kernel.reclaim.Kswapd`)."""
        return self.reclaim.kswapd

    @property
    def page_cache(self):
        """The page cache (:class:`thpbench.kernel.reclaim.PageCache`)."""
        return self.reclaim.page_cache

    @property
    def slab(self):
        """The slab caches (:class:`thpbench.kernel.reclaim.SlabCaches`)."""
        return self.reclaim.slab

    @property
    def lru_reclaim(self) -> bool:
        """Was this kernel built with LRU reclaim (kswapd, page cache, slab caches)?"""
        return self.reclaim.enabled

    @property
    def pages_collapsed(self) -> int:
        return self.khugepaged.pages_collapsed

    @property
    def full_scans(self) -> int:
        return self.khugepaged.full_scans

    def daemons(self) -> list:
        """The kernel threads on the clock: khugepaged, kcompactd (with compaction) and
        kswapd (with LRU reclaim); each has ``next_wakeup_ns()``, ``run_until(t_ns)``,
        ``pause()``, ``resume()`` and ``passes``."""
        return list(self._daemons)

    # -- time ---------------------------------------------------------------------------
    @property
    def now_ns(self):
        """This kernel's time: the later of its clock and what its foreground
        operations have cost (each operation's time is charged here)."""
        c = self.clock.now_ns
        return self._now_ns if self._now_ns > c else c

    def _charge_ns(self, ns) -> None:
        """The faulting task's time: ``ns`` more on this kernel's clock."""
        self._now_ns = self.now_ns + ns

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
        self.khugepaged.policy_changed()
        self.core.set_policy(ENABLED_MODES.index(v["enabled"]), DEFRAG_MODES.index(v["defrag"]),
                             v["use_zero_page"], v["shrink_underused"], v["khugepaged/max_ptes_none"],
                             v["khugepaged/max_ptes_swap"], v["khugepaged/max_ptes_shared"],
                             v["khugepaged/defrag"], self.watermarks["min"])
        self._apply_compaction_policy()
        self.reclaim.apply_policy()          # reclaim: watermarks follow min_free_kbytes

    def apply_policy(self) -> None:
        """Push the sysfs and sysctl settings to the subsystems (the tunables call it
        after every write)."""
        self._apply_policy()

    # -- compaction: policy, kswapd/reclaim hooks, kcompactd -------------------------------
    def _apply_compaction_policy(self):
        vm = self.vm_sysctl.values()
        wm = self.watermarks
        _mm_attach_compaction(self.core, self.compaction_state, self.compaction, vm["extfrag_threshold"], wm["low"])
        self.kcompactd.configure(compaction_proactiveness=vm["compaction_proactiveness"] if self.compaction else 0,
                                 extfrag_threshold=vm["extfrag_threshold"], wmark_min_pages=wm["min"],
                                 wmark_low_pages=wm["low"])

    def _wake_kswapd(self, order) -> None:
        """wakeup_kswapd(order) from the allocator slow path (any allocation that misses
        the low watermark and may wake kswapd).  Unless the zone is balanced for the order
        (:meth:`_zone_balanced`), kswapd reclaims (``balance_pgdat``, thpbench.kernel.reclaim;
        for a costly order compact_gap beyond the high watermark) and then, going to
        sleep, wakes kcompactd; on a balanced zone it only hands the order to kcompactd."""
        if self.reclaim.enabled and not self._zone_balanced(order):
            if self._in_reclaim:               # kswapd (or direct reclaim) is running already
                return
            self._in_reclaim = True
            try:
                self.kswapd.wakeup(order)      # then, going to sleep: _kswapd_try_to_sleep
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

    def _kswapd_try_to_sleep(self, order) -> None:
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
        if self.reclaim.enabled and order > 3 and not self._in_reclaim:
            # THP allocations do not hold a page across the allocation (collapse re-reads
            # its PTEs after allocating), so LRU reclaim may run here
            self._in_reclaim = True
            try:
                freed += self.reclaim.do_try_to_free_pages(2 << order, order=order)
            finally:
                self._in_reclaim = False
        return freed

    def _kcompactd_worked(self, rows) -> None:
        """kcompactd's on_work: its CPU time (compaction_cost_ns of each piece of work)
        goes to kcompactd_cpu_ns; then the core's events are drained."""
        for row in rows:
            self.kcompactd_cpu_ns += _compaction.compaction_cost_ns(row, self.costs)
        self._after_op(kcompactd=True)

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
        self._charge_ns(_compaction.compaction_cost_ns(out, self.costs))
        self._after_op()
        return out

    def thp_fault_latencies(self) -> pd.DataFrame:
        """One row per THP allocation attempted at fault: t_ns (the clock after the
        operation that faulted), pid, address, thp (True: thp_fault_alloc, False:
        thp_fault_fallback), compact_stall (direct compactions waited for),
        compact_result (the last one's, or None), pages_scanned, pages_migrated,
        pages_failed, and latency_ns = the fault (fault_2m_ns, or fault_4k_ns for the
        fallback page) + the direct compaction stall (compaction_cost_ns's terms).
        Direct reclaim's own time is charged to the clock but not included here.
        Only the most recent ``log_limit`` rows are kept."""
        cols = ["t_ns", "pid", "address", "thp", "compact_stall", "compact_result", "pages_scanned",
                "pages_migrated", "pages_failed", "latency_ns"]
        if not self._thp_faults:
            return pd.DataFrame(columns=cols)
        a = np.concatenate(list(self._thp_faults))
        if self.log_limit is not None:
            a = a[len(a) - min(len(a), self.log_limit):]
        if not len(a):
            return pd.DataFrame(columns=cols)
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

    def clear_thp_fault_latencies(self) -> None:
        """Forget the THP fault rows recorded so far."""
        self._thp_faults.clear()
        self._thp_fault_rows = 0

    def _log_thp_faults(self, fl) -> None:
        if self.log_limit == 0:
            return
        self._thp_faults.append(np.column_stack([np.full(len(fl), int(self.now_ns), np.int64), fl]))
        self._thp_fault_rows += len(fl)
        if self.log_limit is not None:
            # drop whole old chunks while the rest still holds log_limit rows
            while self._thp_faults and self._thp_fault_rows - len(self._thp_faults[0]) >= self.log_limit:
                self._thp_fault_rows -= len(self._thp_faults.popleft())

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
        p = Process(self, pid, family, self._process_ops)
        self.core.set_vmas(pid, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint32))
        self.processes[pid] = p
        return p

    def _release(self, pid):
        """exit_mmap() and the pid's release (Process.exit has cleared the handle)."""
        self.core.mm_destroy(pid)
        del self.processes[pid]
        self.khugepaged.exit(pid)
        self._free_pids.append(pid)
        self._after_op()

    def process(self, pid) -> Process:
        """The live process with this pid (ValueError if there is none)."""
        p = self.processes.get(_as_int(pid, "pid"))
        if p is None:
            raise ValueError(f"no process with pid {pid}; live pids: {sorted(self.processes)}")
        return p

    # -- events, clock ------------------------------------------------------------------
    def _after_op(self, khugepaged=False, kcompactd=False):
        """Charge the time of what the core just did, drain its event log into the
        TLB hooks, act on kswapd wakeups, and let the daemons run if the clock passed
        their wake-up times."""
        if not (khugepaged or kcompactd):
            self._after_op_body(False, False)
            return
        guard, self._in_daemons = self._in_daemons, True      # no daemon runs inside another's work
        try:
            self._after_op_body(khugepaged, kcompactd)
        finally:
            self._in_daemons = guard

    def _after_op_body(self, khugepaged, kcompactd):
        st = self.core.stats()
        d = {k: st[k] - self._last_stats[k] for k in st}
        self._last_stats = st
        if khugepaged:
            self.khugepaged_cpu_ns += _charge_khugepaged(self.costs, d)
        elif not kcompactd:         # kcompactd's time is charged from its own rows
            self._charge_ns(_charge(self.costs, d))
        fl = _mm_drain_thp_fault_log(self.core)
        if len(fl):
            self._log_thp_faults(fl)
        exc = _mm_take_hook_exc(self.core)
        wake = _mm_take_kswapd_wake(self.core)
        if wake >= 0:
            self._wake_kswapd(wake)
        ev = self.core.drain_events()
        if len(ev):
            t = self.now_ns
            log = self.log_limit != 0
            for kind, mmid, vpn, nr in ev.tolist():
                if log:
                    self._events.append((t, MM_EVENT_NAMES[kind], mmid, vpn << PAGE_SHIFT, nr << PAGE_SHIFT))
                # every event, a THP fault too (it installs a PMD: nothing to flush, but a
                # TLB model must see the new mapping)
                for hook in self.tlb_flush_hooks:
                    hook(mmid, vpn << PAGE_SHIFT, nr << PAGE_SHIFT, MM_EVENT_NAMES[kind])
        if exc is not None:
            raise exc
        if not khugepaged and not kcompactd and not self._in_daemons:
            # the foreground's time passed daemons' wake-ups: they run now (at this time)
            now = self.now_ns
            for d in self._daemons:
                t = d.next_wakeup_ns()
                if t is not None and t <= now:
                    self._in_daemons = True
                    try:
                        Clock.run_due(self._daemons, now)
                    finally:
                        self._in_daemons = False
                    break

        if self.reclaim.enabled and not self._in_reclaim:
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

    def _discard_charges(self):
        """Work done since the last settle is not the faulting task's (kswapd's)."""
        self._last_stats = self.core.stats()

    def _retry_after_reclaim(self) -> bool:
        """reclaim: after a fault failed for memory, run direct reclaim if the core asked
        for it; True = retry the fault, False = a real OOM (counted as oom_kill)."""
        if not self.reclaim.enabled:
            return False
        need = self.reclaim.consume_need()
        if need and self.reclaim.direct_reclaim():
            return True
        if need:
            self.core.count_oom()
        return False

    # -- reclaim (thpbench.kernel.reclaim) -------------------------------------------------
    def shrink_node(self, nr_to_reclaim, *, may_swap=True, may_writepage=True, order=0) -> int:
        """Reclaim nr_to_reclaim pages (mm/vmscan.c shrink_node / do_try_to_free_pages);
        returns pages reclaimed.  ValueError with ``lru_reclaim=False``.
        See :meth:`thpbench.kernel.reclaim.Reclaim.shrink_node`."""
        return self.reclaim.shrink_node(nr_to_reclaim, may_swap=may_swap, may_writepage=may_writepage, order=order)

    def shrink_all_memory(self, nr_pages) -> int:
        """The hibernation path (mm/vmscan.c shrink_all_memory); returns pages freed.
        ValueError with ``lru_reclaim=False``."""
        return self.reclaim.shrink_all_memory(nr_pages)

    def drop_caches(self, mode) -> dict:
        """echo mode > /proc/sys/vm/drop_caches (1, 2 or 3).  ValueError with
        ``lru_reclaim=False``."""
        return self.reclaim.drop_caches(mode)

    def events(self) -> pd.DataFrame:
        """The mm event log: t_ns, kind (collapse, split_pmd, zap, mprotect, migrate, cow,
        swapout, thp_fault), pid, start, nbytes.  Only the most recent ``log_limit``
        events are kept (the TLB hooks see every one)."""
        return pd.DataFrame(list(self._events), columns=["t_ns", "kind", "pid", "start", "nbytes"])

    def advance(self, ns, sample_every_ns=None) -> None:
        """Let ``ns`` nanoseconds of simulated time pass on :attr:`clock`: every daemon
        (khugepaged, kcompactd, kswapd's naps; of every kernel on the clock) runs at its
        wake-up times meanwhile, each khugepaged pass recording a sample.  With
        ``sample_every_ns`` the counters are also sampled at that interval, for a Result
        with a regular grid (at most 1,000,000 samples per call).

        ``ns`` must be a finite number >= 0 and ``sample_every_ns`` a finite number > 0:
        otherwise TypeError/ValueError, and nothing has changed."""
        ns = validate_duration_ns(ns, "ns")
        now = self.now_ns
        target = now + ns
        if not math.isfinite(target):
            raise ValueError(f"ns {ns!r}: now_ns + ns overflows")
        sampler = ()
        if sample_every_ns is not None:
            every = validate_duration_ns(sample_every_ns, "sample_every_ns")
            if every <= 0:
                raise ValueError(f"sample_every_ns must be > 0, got {sample_every_ns!r}")
            if ns / every > MAX_SAMPLES_PER_ADVANCE:
                raise ValueError(f"sample_every_ns {sample_every_ns!r} over ns {ns!r} would record "
                                 f"{ns / every:.0f} samples (at most {MAX_SAMPLES_PER_ADVANCE})")
            sampler = (_Sampler(self, now + every, every, target),)
        if self._in_daemons:
            raise RuntimeError("advance() called from inside a daemon's work")
        self.clock.run_until(target, extra=sampler)

    def khugepaged_scan_now(self) -> None:
        """Run one khugepaged pass at the current time (ignoring the sleep)."""
        self.khugepaged.wake()

    # -- other kernel entry points ---------------------------------------------------------
    def shrink(self, nr_to_scan=None) -> int:
        """Run the deferred-split shrinker (deferred_split_scan) as memory pressure would;
        returns the number of folios split."""
        if nr_to_scan is None:
            n = self.core.deferred_split_queue_len
        else:
            n = _as_int(nr_to_scan, "nr_to_scan")
            if n < 0:
                raise ValueError(f"nr_to_scan {n} must be >= 0")
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
            if not 0 <= dst < self.nr_pages:
                raise ValueError(f"target_pfn {dst} out of range 0..{self.nr_pages - 1}")
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
        p = self.process(pid)
        new_order = _as_int(new_order, "new_order")
        if not 0 <= new_order < HPAGE_PMD_ORDER:
            raise ValueError(f"new_order {new_order} out of range 0..{HPAGE_PMD_ORDER - 1}")
        start, end = _as_int(start, "start"), _as_int(end, "end")
        if start % PAGE_SIZE or end <= start or start < 0 or end > self.virtual_bytes:
            raise ValueError(f"range [{start:#x}, {end:#x}) must be page aligned, non-empty and inside "
                             f"[0, {self.virtual_bytes:#x})")
        e = -(-end // PAGE_SIZE) * PAGE_SIZE
        n = self.core.split_range(p.pid, start >> PAGE_SHIFT, e >> PAGE_SHIFT, new_order)
        self._after_op()
        return n

    def write_debugfs_split(self, text: str) -> int:
        """Parse the debugfs split_huge_pages text format and split."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        parts = text.strip().split(",")
        if len(parts) != 4:
            raise ValueError(f"expected '<pid>,0x<start>,0x<end>,<order>', got {text!r}")
        try:
            pid, start, end, order = int(parts[0]), int(parts[1], 16), int(parts[2], 16), int(parts[3])
        except ValueError:
            raise ValueError(f"expected '<pid>,0x<start>,0x<end>,<order>', got {text!r}") from None
        return self.split_huge_pages(pid, start, end, order)

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
                **self.reclaim.meminfo()}

    def vmstat_text(self) -> str:
        """/proc/vmstat's format: one "name value" line per counter."""
        return "".join(f"{k} {v}\n" for k, v in self.vmstat().items())

    def meminfo_text(self) -> str:
        """/proc/meminfo's format (show_val_kb(): the name padded to 16, the value to 8)."""
        return "".join(f"{k + ':':<16}{v:>8} kB\n" for k, v in self.meminfo().items())

    def khugepaged_stats(self) -> dict:
        """khugepaged's counters (pages_collapsed, full_scans, its CPU time, mm_slots),
        its pass count and next wake-up (None: waiting or paused), and kcompactd's CPU
        time."""
        kh = self.khugepaged.stats()
        return {"pages_collapsed": kh["pages_collapsed"], "full_scans": kh["full_scans"],
                "khugepaged_cpu_ns": self.khugepaged_cpu_ns, "mm_slots": kh["mm_slots"],
                "kcompactd_cpu_ns": self.kcompactd_cpu_ns, "khugepaged_passes": kh["passes"],
                "khugepaged_next_wakeup_ns": kh["next_wakeup_ns"]}

    def huge_zero_page(self) -> dict:
        """The huge zero page's state: ``allocated`` (get_huge_zero_folio has run and it
        was not freed), ``pfn`` (its head frame, or None) and ``mapped_pmds`` (PMDs of
        live processes that map it)."""
        pfn = self.core.huge_zero_pfn
        mapped = 0
        if pfn >= 0:
            for p in self.processes.values():
                for v in p.vmas:
                    mapped += int((p.pmd_kinds(v.start, v.end) == PmdKind.HUGE_ZERO).sum())
        return {"allocated": pfn >= 0, "pfn": int(pfn) if pfn >= 0 else None, "mapped_pmds": mapped}

    def sample(self) -> dict:
        """Record the counters now (one row of the Result; the most recent ``log_limit``
        rows are kept)."""
        kh = self.khugepaged_stats()
        if kh["khugepaged_next_wakeup_ns"] is None:
            kh["khugepaged_next_wakeup_ns"] = math.nan           # a numeric column: NaN while waiting
        row = {"t_ns": self.now_ns, **self.vmstat(), **self.meminfo(), **kh,
               "min_free_kbytes": self.min_free_kbytes}
        if self.log_limit != 0:
            self._samples.append(row)
        return row

    def result(self) -> "Result":
        return Result(pd.DataFrame(list(self._samples)), self.events())

    def check(self) -> bool:
        """Every invariant: buddy lists, page tables vs mapcounts and rmap, RSS, swap,
        page conservation, the deferred split queue, VMAs vs the core, the clock."""
        self.core.check()
        _mm_check_compaction(self.core)
        self.reclaim.check()
        for pid, p in self.processes.items():
            vs = sorted(p.vmas, key=lambda v: v.start)
            for a, b in zip(vs, vs[1:]):
                if a.end > b.start:
                    raise InvariantError(f"pid {pid}: VMAs [{a.start:#x},{a.end:#x}) and [{b.start:#x},{b.end:#x}) overlap")
        self.khugepaged.check(self.processes)
        if not (isinstance(self.now_ns, numbers.Real) and math.isfinite(self.now_ns) and self.now_ns >= 0):
            raise InvariantError(f"the clock reads {self.now_ns!r}")
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
