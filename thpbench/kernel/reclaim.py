"""Reclaim, kswapd, the page cache and slab caches of the simulated kernel.

Follows Linux 6.18 ``mm/vmscan.c`` (shrink_node, shrink_lruvec, shrink_list,
shrink_active_list, shrink_folio_list, folio_check_references, balance_pgdat,
kswapd_try_to_sleep, do_try_to_free_pages, shrink_all_memory, do_shrink_slab,
drop_slab), ``mm/workingset.c`` (shadow entries, refault distance), ``mm/swap.c``
(folio_mark_accessed) and ``mm/filemap.c`` (page-cache reads and writes).

Entry points (every Kernel builds its :class:`Reclaim`, which builds kswapd, the page
cache and the slab caches; they see the kernel only through a :class:`ReclaimContext`)
-------------------------------------------------------------------------------------

``kernel.shrink_node(nr_to_reclaim, *, may_swap=True, may_writepage=True, order=0) -> int``
    Reclaim from the LRU lists and the slab shrinkers at falling priority (12 .. 0)
    until ``nr_to_reclaim`` pages were freed (do_try_to_free_pages over our one
    node).  Returns pages reclaimed.  Counted as direct reclaim (pgscan_direct /
    pgsteal_direct) unless called by kswapd.  The slow path of the allocator (direct
    compaction's helper) may call it; it must not be called from inside the core.
``kernel.kswapd``: :class:`Kswapd`.  ``wakeup(order=0)`` wakes it when free pages are
    below the low watermark; it then runs balance_pgdat() at once (on its own CPU:
    ``kswapd.cpu_ns``) until free pages reach the high watermark, and naps 100 ms
    (kswapd_try_to_sleep).  Allocations that leave free pages below low wake it
    automatically (the core sets a flag; the end of the kernel's operation runs it).
    A daemon of :mod:`thpbench.kernel.clock`: the end of its nap is on the clock.
``kernel.shrink_all_memory(nr_pages) -> int``: the hibernation path.
``kernel.drop_caches(mode)``: ``echo 1|2|3 > /proc/sys/vm/drop_caches``.
``kernel.page_cache``: :class:`PageCache` (``create(name, nbytes)`` -> :class:`File`
    with ``read``, ``write``, ``mmap``/``munmap``, ``fsync``, ``unlink``).
``kernel.slab``: :class:`SlabCaches` (dentry, inode_cache, kmalloc-256, ...).
``kernel.reclaim``: :class:`Reclaim` (the ReclaimCore, counters, tunables
    ``swappiness`` and ``thp_swap``).  It always exists; with
    ``Kernel(lru_reclaim=False)`` it has no ReclaimCore and every entry point above
    raises ValueError.

A failed order-0 allocation inside the core (fault, page-cache read, slab page) sets
``need_reclaim`` and fails; the Python caller runs direct reclaim (allocstall_normal,
``shrink_node(32)``) and retries while reclaim makes progress, else it is an OOM.

Simplifications (the model is a model)
--------------------------------------

* one node with one zone; no memcg, no MGLRU, no unevictable list, no swap cache,
  no readahead; writeback is synchronous; page-cache folios are order 0;
* a mapped page-cache page carries a mapcount and one accessed bit standing for the
  PTEs of its mappers (file mappings are not in the process page tables);
* dentry/inode objects are not tied to the page-cache files (a file-heavy workload
  allocates both); their shrinker is a FIFO list_lru with a referenced bit (second
  chance, as dentry_lru_isolate / inode_lru_isolate rotate referenced entries);
* get_scan_count() splits anon/file by swappiness only (no reclaim cost tracking);
  slab shrinking runs only from Python (kswapd, direct reclaim, shrink_all_memory);
* dirty page-cache pages are written by kswapd (a page it met before, PG_reclaim, as
  6.18 does) and by shrink_all_memory (hibernation_mode; every reclaimer with
  may_writepage could write before Linux 3.2); direct reclaim only marks them and wakes
  the flusher, which here writes every dirty page at once;
* reclaim costs use the CostModel: scan_pte_ns * 10 per page scanned (an rmap walk),
  swap_out_page_ns per page written; kswapd and the flusher have their own CPU
  (``kswapd.cpu_ns``, ``reclaim.flusher_cpu_ns``), direct reclaim stalls the clock;
* kswapd_high_wmark_hit_quickly is counted when an undisturbed nap ends on the clock
  (or at the next wake-up, if the clock has not reached the nap's end by then);
* kswapd runs to completion at its wake-up instant (after the operation that woke
  it): inside one bulk operation an allocation below min goes to direct reclaim.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

import numpy as np
import pandas as pd

from thpbench._core import ReclaimCore, LRU_NAMES
from thpbench.kernel.errors import OutOfMemory

PAGE_SIZE = 4096
SWAP_CLUSTER_MAX = 32
DEF_PRIORITY = 12
HZ_10_NS = 100_000_000            # kswapd's short nap, HZ/10
DEFAULT_SEEKS = 2
SHRINK_BATCH = 128
MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE = 0, 2
LRU = {name: i for i, name in enumerate(LRU_NAMES)}

# counters kept in Python (the rest come from the core)
_PY_COUNTERS = ("allocstall_normal", "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly",
                "pageoutrun", "slabs_scanned", "drop_pagecache", "drop_slab", "x_direct_reclaim_fail")


class ReclaimContext(Protocol):
    """What reclaim (and kswapd, the page cache, the slab caches) may read and call of
    its kernel: nothing else, and never the kernel's private state."""

    core: object        # the MMCore (ReclaimCore attaches to it; counters; count_oom)
    buddy: object       # the zone's BuddyAllocator (read: nr_free_pages, max_order)
    costs: object       # the CostModel

    def now_ns(self) -> float: ...

    def watermarks(self) -> dict: ...

    def zone_balanced(self, order: int) -> bool: ...

    def charge_ns(self, ns: float) -> None: ...         # a stall of the faulting task

    def settle(self) -> None: ...                        # account the operations so far, no kswapd wakeup

    def after_op(self) -> None: ...                      # the end of an operation

    def discard_charges(self) -> None: ...               # kswapd's work is not the task's time

    def kswapd_sleeping(self, order: int) -> None: ...   # kswapd_try_to_sleep: kcompactd's wakeup


def _no_lru(what):
    return ValueError(f"{what}: this Kernel was built without LRU reclaim (lru_reclaim=False); "
                      "build it with Kernel(..., lru_reclaim=True) for LRU lists, kswapd, the page cache "
                      "and slab caches")


class Reclaim:
    """The reclaim subsystem of one Kernel: the ReclaimCore, tunables, counters, and
    kswapd, the page cache and the slab caches (``kswapd``, ``page_cache``, ``slab``).

    ``enabled=False`` (``Kernel(lru_reclaim=False)``) keeps the object but builds no
    ReclaimCore: the deferred-split shrinker is the only reclaim, and every entry point
    (``shrink_node``, ``shrink_all_memory``, ``drop_caches``, the page cache, the slab
    caches, ``kswapd.wakeup``) raises ValueError saying so."""

    def __init__(self, ctx: ReclaimContext, swappiness=60, thp_swap=False, *, enabled=True):
        if not isinstance(enabled, bool):
            raise TypeError(f"lru_reclaim must be a bool, got {type(enabled).__name__} {enabled!r}")
        self._ctx = ctx
        self.enabled = enabled
        self.core = ReclaimCore(ctx.core) if enabled else None
        self._swappiness = 60
        self._thp_swap = False
        self.counters = {k: 0 for k in _PY_COUNTERS}
        self.flusher_cpu_ns = 0.0
        self._pending_wake = 0
        self._need = False
        self.swappiness = swappiness
        self.thp_swap = thp_swap
        self.kswapd = Kswapd(self, ctx)
        self.page_cache = PageCache(self, ctx)
        self.slab = SlabCaches(self, ctx)

    def require(self, what) -> None:
        """Raise ValueError naming ``what`` unless LRU reclaim is enabled."""
        if not self.enabled:
            raise _no_lru(what)

    # -- tunables ------------------------------------------------------------------
    @property
    def swappiness(self) -> int:
        """/proc/sys/vm/swappiness (0..200)."""
        return self._swappiness

    @swappiness.setter
    def swappiness(self, v):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 200:
            raise ValueError(f"swappiness {v!r} must be an integer in 0..200")
        self._swappiness = v
        self.apply_policy()

    @property
    def thp_swap(self) -> bool:
        """True: swap a THP out whole (thp_swpout, Linux >= 4.13); False: split it first
        (thp_swpout_fallback + thp_split_page), the 2010 behaviour."""
        return self._thp_swap

    @thp_swap.setter
    def thp_swap(self, v):
        if not isinstance(v, bool):
            raise TypeError(f"thp_swap must be a bool, got {v!r}")
        self._thp_swap = v
        self.apply_policy()

    def apply_policy(self):
        if not self.enabled:
            return
        w = self._ctx.watermarks()
        self.core.set_policy(w["low"], w["high"], self._swappiness, int(self._thp_swap))

    # -- counters ------------------------------------------------------------------
    def stats(self) -> dict:
        if not self.enabled:
            return {}
        st = self.core.stats()
        out = {k: v for k, v in st.items() if not k.startswith("x_")}
        out.update({k: v for k, v in self.counters.items() if not k.startswith("x_")})
        core = self._ctx.core.stats()
        out["pgpgin"] = st["x_pgpgin_file_kb"] + 4 * core["pswpin"]
        out["pgpgout"] = st["x_pgpgout_kb"]
        out.update(self.core.lru_sizes())
        out["nr_file_pages"] = self.core.nr_file_pages
        out["nr_dirty"] = self.core.nr_dirty
        out["nr_mapped"] = self.core.nr_mapped
        out["nr_slab_reclaimable"] = self.slab.nr_pages(reclaimable=True)
        out["nr_slab_unreclaimable"] = self.slab.nr_pages(reclaimable=False)
        return out

    def meminfo(self) -> dict:
        """The /proc/meminfo lines reclaim maintains (kB)."""
        if not self.enabled:
            return {}
        r = self.core
        lru = r.lru_sizes()
        return {"Cached": r.nr_file_pages * 4, "Dirty": r.nr_dirty * 4, "Mapped": r.nr_mapped * 4,
                "Active(anon)": lru["nr_active_anon"] * 4, "Inactive(anon)": lru["nr_inactive_anon"] * 4,
                "Active(file)": lru["nr_active_file"] * 4, "Inactive(file)": lru["nr_inactive_file"] * 4,
                "SReclaimable": self.slab.nr_pages(True) * 4, "SUnreclaim": self.slab.nr_pages(False) * 4}

    # -- the flags the core raises ---------------------------------------------------
    def consume_need(self) -> bool:
        """Did a core allocation fail and ask for direct reclaim since the last call?"""
        if not self.enabled:
            return False
        self._take_flags()
        need, self._need = self._need, False
        return need

    def _take_flags(self):
        wake, order, need, flusher = self.core.take_flags()
        self._need = self._need or bool(need)
        if flusher:
            self.flush()
        if wake:
            self._pending_wake = max(self._pending_wake or 0, order + 1)

    def after_op(self):
        """Called at the end of every kernel operation: wake kswapd / the flusher if the
        core asked."""
        if not self.enabled:
            return
        self._take_flags()
        if self._pending_wake:
            order = self._pending_wake - 1
            self._pending_wake = 0
            self.kswapd.wakeup(order)

    def flush(self, nr_pages=None) -> int:
        """The flusher threads: write back dirty page-cache pages (all by default)."""
        self.require("flush")
        n = self.core.writeback(self.core.nr_dirty if nr_pages is None else int(nr_pages))
        self.flusher_cpu_ns += n * self._ctx.costs.swap_out_page_ns
        return n

    # -- reclaim ---------------------------------------------------------------------
    def shrink_slab(self, priority: int) -> int:
        """shrink_slab() -> do_shrink_slab() of every reclaimable cache: scan
        (freeable >> priority) * 4 / DEFAULT_SEEKS objects.  Returns pages freed."""
        freed = 0
        for cache in self.slab.caches.values():
            if not cache.reclaimable:
                continue
            freeable = cache.nr_objects
            if freeable == 0:
                continue
            scan = min(freeable, (freeable >> priority) * 4 // DEFAULT_SEEKS)
            if scan == 0 and priority == 0:
                scan = freeable
            if scan:
                self.counters["slabs_scanned"] += scan
                freed += cache.shrink(scan)
        return freed

    def compaction_ready(self, order) -> bool:
        """compaction_ready(): for a costly order, stop reclaiming once free pages exceed
        the high watermark by 2 << order (compaction, not reclaim, makes the block)."""
        return order > 3 and self._ctx.buddy.nr_free_pages >= self._ctx.watermarks()["high"] + (2 << order)

    def do_try_to_free_pages(self, nr_to_reclaim, *, may_swap=True, may_writepage=True, may_unmap=True,
                             is_kswapd=False, hibernation_mode=False, order=0) -> int:
        """The priority loop: shrink_node() at priority 12, 11, ... 0 until nr_to_reclaim
        (or, for a costly order, until compaction_ready)."""
        self.require("do_try_to_free_pages")
        buddy = self._ctx.buddy
        before = buddy.nr_free_pages
        reclaimed = 0
        for prio in range(DEF_PRIORITY, -1, -1):
            if order and self.compaction_ready(order):
                break
            r, _ = self.core.shrink_lruvec(prio, nr_to_reclaim - reclaimed, may_writepage, may_unmap,
                                           may_swap, is_kswapd, hibernation_mode)
            reclaimed += r
            reclaimed += self.shrink_slab(prio)
            self._take_flags()    # wakeup_flusher_threads(): next priority finds them clean
            if reclaimed >= nr_to_reclaim:
                break
        # the true figure: pages that went back to the buddy allocator
        return max(buddy.nr_free_pages - before, 0) if reclaimed else 0

    def direct_reclaim(self) -> bool:
        """__alloc_pages_direct_reclaim(): allocstall, try_to_free_pages(SWAP_CLUSTER_MAX).
        True when it made progress (the caller retries its allocation)."""
        if not self.enabled:
            return False
        self.counters["allocstall_normal"] += 1
        self.kswapd.wakeup(0)
        st0 = self.core.stats()
        n = self.do_try_to_free_pages(SWAP_CLUSTER_MAX)
        st1 = self.core.stats()
        self._ctx.charge_ns((st1["pgscan_direct"] - st0["pgscan_direct"]) * self._ctx.costs.scan_pte_ns * 10)
        if n == 0:
            self.counters["x_direct_reclaim_fail"] += 1
        return n > 0

    # -- the kernel's entry points -------------------------------------------------------
    def shrink_node(self, nr_to_reclaim, *, may_swap=True, may_writepage=True, order=0) -> int:
        """Reclaim ``nr_to_reclaim`` pages from the node (direct reclaim at our level):
        the priority loop over the LRU lists and the slab shrinkers.  ``order`` is accepted
        for the allocator's slow path; reclaim itself is order-blind (as the classic LRU
        is: compaction makes the contiguity), except that for a costly order (> 3) the loop
        stops at compaction_ready().  Returns pages reclaimed."""
        self.require("shrink_node")
        if isinstance(nr_to_reclaim, bool) or not isinstance(nr_to_reclaim, (int, np.integer)) or nr_to_reclaim < 0:
            raise ValueError(f"nr_to_reclaim {nr_to_reclaim!r} must be a non-negative integer")
        max_order = self._ctx.buddy.max_order
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= max_order:
            raise ValueError(f"order {order!r} must be an integer in 0..{max_order}")
        self._ctx.settle()
        n = self.do_try_to_free_pages(int(nr_to_reclaim), may_swap=may_swap, may_writepage=may_writepage,
                                      order=int(order))
        self._ctx.after_op()
        return n

    def shrink_all_memory(self, nr_pages) -> int:
        """mm/vmscan.c: shrink_all_memory() (CONFIG_HIBERNATION): do_try_to_free_pages with
        may_writepage, may_unmap, may_swap and hibernation_mode set; the LRU order gives the
        preferred order "inactive > active > active referenced > active mapped".  Returns
        pages freed (measured at the buddy allocator)."""
        self.require("shrink_all_memory")
        if isinstance(nr_pages, bool) or not isinstance(nr_pages, (int, np.integer)) or nr_pages < 0:
            raise ValueError(f"nr_pages {nr_pages!r} must be a non-negative integer")
        buddy = self._ctx.buddy
        self._ctx.settle()
        before = buddy.nr_free_pages
        self.do_try_to_free_pages(int(nr_pages), hibernation_mode=True)
        self._ctx.after_op()
        return max(buddy.nr_free_pages - before, 0)

    def drop_caches(self, mode) -> dict:
        """``echo mode > /proc/sys/vm/drop_caches``: 1 page cache (clean, unmapped pages),
        2 reclaimable slab objects, 3 both.  Returns pages freed by each."""
        self.require("drop_caches")
        if isinstance(mode, bool) or mode not in (1, 2, 3):
            raise ValueError(f"drop_caches takes 1, 2 or 3, got {mode!r}")
        out = {"pagecache": 0, "slab": 0}
        if mode & 1:
            out["pagecache"] = self.core.drop_pagecache()
            self.counters["drop_pagecache"] += 1
        if mode & 2:
            out["slab"] = self.slab.drop_slab()
            self.counters["drop_slab"] += 1
        self._ctx.after_op()
        return out

    def check(self):
        if self.enabled:
            self.core.check(self.slab.all_pages())
        return True


PAGE_ALLOC_COSTLY_ORDER = 3     # include/linux/mmzone.h


class Kswapd:
    """kswapd0: balance_pgdat() between the low and high watermarks on the simulated
    clock.  ``wakeup(order)`` (wakeup_kswapd) runs it when free pages are below low;
    it reclaims until free >= high, then naps HZ/10: a wake-up during the nap counts
    kswapd_low_wmark_hit_quickly, a nap that ends undisturbed
    kswapd_high_wmark_hit_quickly (kswapd_try_to_sleep).

    A daemon of :mod:`thpbench.kernel.clock`: its only timed work is the end of a nap
    (``next_wakeup_ns``); a wakeup runs balance_pgdat at once (see the module's
    simplifications).  ``pause()`` makes wakeups do nothing until ``resume()``."""

    name = "kswapd"
    clock_priority = 3

    def __init__(self, reclaim: Reclaim, ctx: ReclaimContext):
        self._reclaim = reclaim
        self._ctx = ctx
        self.runs = 0
        self._nap_until = None
        self._paused = False
        self.cpu_ns = 0.0
        self.last_reclaimed = 0
        #: called as hook(order, reclaimed) after each balance_pgdat (after kcompactd's
        #: wakeup, wakeup_kcompactd in kswapd_try_to_sleep)
        self.after_balance_hooks = []

    @property
    def passes(self) -> int:
        """balance_pgdat runs (the same as ``runs``)."""
        return self.runs

    # -- the daemon protocol ---------------------------------------------------------
    def next_wakeup_ns(self):
        """The end of the current HZ/10 nap (None: asleep until woken, or paused)."""
        return None if self._paused else self._nap_until

    def run_until(self, t_ns) -> None:
        """The nap ends undisturbed at ``t_ns``: kswapd_high_wmark_hit_quickly."""
        if not self._paused and self._nap_until is not None and self._nap_until <= t_ns:
            self._settle_nap(False)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def _settle_nap(self, woken):
        if self._nap_until is None:
            return
        c = self._reclaim.counters
        if woken and self._ctx.now_ns() < self._nap_until:
            c["kswapd_low_wmark_hit_quickly"] += 1
        else:
            c["kswapd_high_wmark_hit_quickly"] += 1
        self._nap_until = None

    def wakeup(self, order=0) -> int:
        """wakeup_kswapd(): unless the zone is balanced for ``order`` (pgdat_balanced:
        free pages above the high watermark and, for order > 0, a free block of that
        order), balance it now.  Returns pages reclaimed."""
        self._reclaim.require("kswapd.wakeup")
        if self._paused or self._ctx.zone_balanced(order):
            return 0
        self._settle_nap(True)
        return self.balance_pgdat(order)

    def balance_pgdat(self, order=0) -> int:
        self._reclaim.require("kswapd.balance_pgdat")
        ctx = self._ctx
        r = self._reclaim
        buddy = ctx.buddy
        r.counters["pageoutrun"] += 1
        self.runs += 1
        high = ctx.watermarks()["high"]
        if order > PAGE_ALLOC_COSTLY_ORDER:
            # kswapd_shrink_node(): for a costly order kswapd reclaims compact_gap(order)
            # = 2 << order pages beyond the watermark, then balances for order 0 and
            # leaves the huge page to kcompactd (woken as it goes to sleep)
            high += 2 << order
        ctx.settle()
        st0 = r.core.stats()
        c0 = ctx.core.stats()
        total = 0
        prio = DEF_PRIORITY
        while prio >= 0 and buddy.nr_free_pages < high:
            nr_to_reclaim = max(high - buddy.nr_free_pages, SWAP_CLUSTER_MAX)
            before = buddy.nr_free_pages
            r.core.shrink_lruvec(prio, nr_to_reclaim, True, True, True, True, False)
            r.shrink_slab(prio)
            r._take_flags()
            got = buddy.nr_free_pages - before
            total += max(got, 0)
            if got <= 0:
                prio -= 1         # "raise priority if ... there was no progress"
        st1 = r.core.stats()
        c1 = ctx.core.stats()
        costs = ctx.costs
        self.cpu_ns += ((st1["pgscan_kswapd"] - st0["pgscan_kswapd"]) * costs.scan_pte_ns * 10
                        + (c1["pswpout"] - c0["pswpout"]) * costs.swap_out_page_ns
                        + (st1["x_file_written"] - st0["x_file_written"]) * costs.swap_out_page_ns)
        # kswapd's work is not the faulting task's: do not charge it to the clock
        ctx.discard_charges()
        self._nap_until = ctx.now_ns() + HZ_10_NS
        self.last_reclaimed = total
        ctx.kswapd_sleeping(order)
        for hook in self.after_balance_hooks:
            hook(order, total)
        return total


# ---------------------------------------------------------------------------
# The page cache
# ---------------------------------------------------------------------------

class File:
    """A file in the page cache.  Offsets and lengths in bytes (page aligned)."""

    def __init__(self, cache: "PageCache", name: str, ino: int, nr_pages: int):
        self.cache, self.name, self.ino, self.nr_pages = cache, name, ino, nr_pages
        self.alive = True

    def __repr__(self):
        return f"File({self.name!r}, ino={self.ino}, pages={self.nr_pages})"

    def _pages(self, offset, length):
        if not self.alive:
            raise ValueError(f"file {self.name!r} was unlinked")
        if offset % PAGE_SIZE or offset < 0:
            raise ValueError(f"offset {offset} must be a non-negative multiple of {PAGE_SIZE}")
        if length is None:
            length = self.nr_pages * PAGE_SIZE - offset
        if length < 0:
            raise ValueError(f"length {length} must be >= 0")
        start, n = offset // PAGE_SIZE, -(-length // PAGE_SIZE)
        if start + n > self.nr_pages:
            raise ValueError(f"[{offset}, {offset + length}) is beyond the end of {self.name!r} "
                             f"({self.nr_pages * PAGE_SIZE} bytes)")
        return start, n

    def read(self, offset=0, length=None, *, mapped=False) -> int:
        """read(2) (or an access through a mapping when ``mapped``) of a range: hits mark
        pages accessed, misses read from disk (file_read_page_ns each, charged to the
        clock).  Returns the number of misses."""
        start, n = self._pages(offset, length)
        return self.cache._loop(lambda s, m: self.cache.rc.file_read(self.ino, s, m, mapped), start, n)

    def write(self, offset, values) -> None:
        """write(2) of whole pages: ``values`` (uint64 array) are the pages' new data."""
        vals = np.ascontiguousarray(values, dtype=np.uint64)
        start, n = self._pages(offset, len(vals) * PAGE_SIZE)
        self.cache._loop(lambda s, m: self.cache.rc.file_write(self.ino, s, vals[s - start:s - start + m]),
                         start, n, counts_done=True)

    def values(self, offset=0, length=None) -> np.ndarray:
        """The file's data per page (cached copy, else disk), without side effects."""
        start, n = self._pages(offset, length)
        return self.cache.rc.file_values(self.ino, start, n)

    def cached(self, offset=0, length=None) -> np.ndarray:
        """Per page: True where it is in the page cache (mincore)."""
        start, n = self._pages(offset, length)
        return self.cache.rc.file_cached(self.ino, start, n) >= 0

    def mmap(self, offset=0, length=None) -> int:
        """Map cached pages (a process maps the file; read them first).  Returns pages mapped."""
        start, n = self._pages(offset, length)
        return self.cache.rc.file_map(self.ino, start, n, 1)

    def munmap(self, offset=0, length=None) -> int:
        start, n = self._pages(offset, length)
        return self.cache.rc.file_map(self.ino, start, n, -1)

    def fsync(self) -> int:
        """Write the dirty pages (all of the page cache's, a simplification)."""
        return self.cache.reclaim.flush()

    def unlink(self) -> int:
        """Delete the file: its cached pages are freed (dirty data discarded)."""
        if not self.alive:
            return 0
        n = self.cache.rc.truncate(self.ino)
        self.alive = False
        self.cache.files.pop(self.name, None)
        return n


class PageCache:
    """The files of the simulated kernel and their cached pages."""

    def __init__(self, reclaim: Reclaim, ctx: ReclaimContext):
        self.reclaim = reclaim
        self._ctx = ctx
        self.rc = reclaim.core
        self.files: dict[str, File] = {}
        self._seed = 0

    def create(self, name: str, nbytes: int) -> File:
        """A file of nbytes (rounded up to pages) whose data is on disk, not cached."""
        self.reclaim.require("page_cache.create")
        if not isinstance(name, str) or not name:
            raise ValueError(f"file name must be a non-empty str, got {name!r}")
        if name in self.files:
            raise ValueError(f"file {name!r} exists")
        if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
            raise ValueError(f"file size {nbytes!r} must be a non-negative integer")
        n = -(-int(nbytes) // PAGE_SIZE)
        self._seed += 1
        f = File(self, name, self.rc.create_inode(n, self._seed), n)
        self.files[name] = f
        return f

    def _loop(self, step, start, n, counts_done=False) -> int:
        """Run a core page-cache loop, with direct reclaim and retry when an allocation
        fails; charge file_read_page_ns per miss.  Returns misses (or pages done)."""
        ctx = self._ctx
        r = self.reclaim
        total = 0
        pos = start
        while pos < start + n:
            res = step(pos, start + n - pos)
            done, misses = (res, 0) if counts_done else res
            total += done if counts_done else misses
            ctx.charge_ns(misses * ctx.costs.file_read_page_ns)
            pos += done
            ctx.after_op()
            if pos < start + n and done == 0:
                r.consume_need()
                if not r.direct_reclaim():
                    ctx.core.count_oom()
                    raise OutOfMemory(-1, pos * PAGE_SIZE, pos - start)
        return total

    @property
    def nr_pages(self) -> int:
        return self.rc.nr_file_pages


# ---------------------------------------------------------------------------
# Slab caches
# ---------------------------------------------------------------------------

class SlabCache:
    """One kmem_cache: objects of ``size`` bytes packed ``4096 // size`` to a page; a
    page returns to the buddy allocator only when all its objects are freed.
    Reclaimable caches (dentry, inode) have a list_lru of unused objects for their
    shrinker; a lookup sets an object's referenced bit (second chance)."""

    def __init__(self, slabs: "SlabCaches", name: str, size: int, reclaimable: bool):
        self.slabs, self.name, self.size, self.reclaimable = slabs, name, size, reclaimable
        self.per_page = max(1, min(64, PAGE_SIZE // size))
        self.pages: dict[int, list[int]] = {}          # pfn -> free slot indices
        self.partial: "OrderedDict[int, None]" = OrderedDict()
        self.lru: "OrderedDict[int, bool]" = OrderedDict()   # handle -> referenced
        self.live: set[int] = set()

    @property
    def nr_objects(self) -> int:
        return len(self.live)

    def alloc(self, n=1) -> list[int]:
        """Allocate n objects; returns their handles (pfn * 64 + slot)."""
        self.slabs.reclaim.require(f"slab[{self.name!r}].alloc")
        out = []
        rc = self.slabs.reclaim
        mt = MIGRATE_RECLAIMABLE if self.reclaimable else MIGRATE_UNMOVABLE
        for _ in range(n):
            if not self.partial:
                pfn = rc.core.slab_page_alloc(mt)
                while pfn < 0:
                    rc.consume_need()
                    if not rc.direct_reclaim():
                        self.slabs.ctx.core.count_oom()
                        raise OutOfMemory(-1, 0, len(out))
                    pfn = rc.core.slab_page_alloc(mt)
                self.pages[pfn] = list(range(self.per_page - 1, -1, -1))
                self.partial[pfn] = None
            pfn = next(iter(self.partial))
            slot = self.pages[pfn].pop()
            if not self.pages[pfn]:
                del self.partial[pfn]
            h = pfn * 64 + slot
            self.live.add(h)
            if self.reclaimable:
                self.lru[h] = False
            out.append(h)
        self.slabs.ctx.after_op()
        return out

    def touch(self, handles) -> None:
        """A lookup hit: the objects' referenced bits are set."""
        for h in handles:
            if h in self.lru:
                self.lru[h] = True

    def free(self, handles) -> int:
        """kmem_cache_free(): returns pages given back to the buddy allocator."""
        freed = 0
        for h in handles:
            if h not in self.live:
                raise ValueError(f"object {h} of {self.name} is not allocated")
            self.live.discard(h)
            self.lru.pop(h, None)
            pfn, slot = divmod(h, 64)
            fl = self.pages[pfn]
            fl.append(slot)
            if len(fl) == self.per_page:
                del self.pages[pfn]
                self.partial.pop(pfn, None)
                self.slabs.reclaim.core.slab_page_free(pfn)
                freed += 1
            elif len(fl) == 1:
                self.partial[pfn] = None
        return freed

    def shrink(self, nr_to_scan: int) -> int:
        """The cache's shrinker (prune_dcache_sb / prune_icache_sb): walk the list_lru
        from its oldest entry; referenced objects get a second chance.  Returns pages freed."""
        victims = []
        for _ in range(min(nr_to_scan, len(self.lru))):
            h, ref = self.lru.popitem(last=False)
            if ref:
                self.lru[h] = False
            else:
                victims.append(h)
                self.lru[h] = False     # free() removes it
        return self.free(victims)


class SlabCaches:
    """The kernel's slab caches: ``dentry`` (192 B) and ``inode_cache`` (600 B) are
    reclaimable (SLAB_RECLAIM_ACCOUNT: RECLAIMABLE pageblocks), ``kmalloc-256`` and
    ``kmalloc-1k`` are unmovable."""

    def __init__(self, reclaim: Reclaim, ctx: ReclaimContext):
        self.reclaim = reclaim
        self.ctx = ctx
        self.caches = {name: SlabCache(self, name, size, rec) for name, size, rec in
                       (("dentry", 192, True), ("inode_cache", 600, True),
                        ("kmalloc-256", 256, False), ("kmalloc-1k", 1024, False))}

    def __getitem__(self, name) -> SlabCache:
        return self.caches[name]

    def nr_pages(self, reclaimable=None) -> int:
        return sum(len(c.pages) for c in self.caches.values()
                   if reclaimable is None or c.reclaimable == reclaimable)

    def all_pages(self) -> list[int]:
        return [p for c in self.caches.values() for p in c.pages]

    def drop_slab(self) -> int:
        """drop_slab(): shrink every reclaimable cache until a pass frees little."""
        freed_pages = 0
        shift = 0
        while True:       # "while ((freed >> shift++) > 1)", freed counting objects
            objs = 0
            for c in self.caches.values():
                if c.reclaimable:
                    before = c.nr_objects
                    freed_pages += c.shrink(c.nr_objects * 2)
                    objs += before - c.nr_objects
            if (objs >> shift) <= 1:
                return freed_pages
            shift += 1

    def slabinfo(self) -> pd.DataFrame:
        """/proc/slabinfo-like: name, active_objs, objperslab, num_slabs, reclaimable."""
        return pd.DataFrame([{"name": c.name, "active_objs": c.nr_objects, "objperslab": c.per_page,
                              "num_slabs": len(c.pages), "reclaimable": c.reclaimable}
                             for c in self.caches.values()])


def reclaim_cost_ns(costs, d: dict) -> float:
    """Simulated time of reclaim from counter deltas: a page scanned costs ~10 PTE reads
    (an rmap walk), a write to swap or disk swap_out_page_ns."""
    return ((d.get("pgscan_kswapd", 0) + d.get("pgscan_direct", 0)) * costs.scan_pte_ns * 10
            + d.get("pswpout", 0) * costs.swap_out_page_ns + d.get("x_file_written", 0) * costs.swap_out_page_ns)


# The reclaim workloads moved to thpbench.kernel.reclaim_workloads (they build a Kernel,
# and the kernel builds reclaim: importing them here would be an import cycle).  The old
# names still resolve, lazily.
_MOVED = {"kernel_build_mix", "kivity_sort"}


def __getattr__(name):
    if name in _MOVED:
        import importlib
        return getattr(importlib.import_module("thpbench.kernel.reclaim_workloads"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
