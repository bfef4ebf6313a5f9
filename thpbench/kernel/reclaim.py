"""Reclaim, kswapd, the page cache and slab caches of the simulated kernel.

Follows Linux 6.18 ``mm/vmscan.c`` (shrink_node, shrink_lruvec, shrink_list,
shrink_active_list, shrink_folio_list, folio_check_references, balance_pgdat,
kswapd_try_to_sleep, do_try_to_free_pages, shrink_all_memory, do_shrink_slab,
drop_slab), ``mm/workingset.c`` (shadow entries, refault distance), ``mm/swap.c``
(folio_mark_accessed) and ``mm/filemap.c`` (page-cache reads and writes).

Entry points (every Kernel has them; ``attach(kernel)`` is called by Kernel.__init__)
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
    automatically (the core sets a flag; ``Kernel._after_op`` runs it).
``kernel.shrink_all_memory(nr_pages) -> int``: the hibernation path.
``kernel.drop_caches(mode)``: ``echo 1|2|3 > /proc/sys/vm/drop_caches``.
``kernel.page_cache``: :class:`PageCache` (``create(name, nbytes)`` -> :class:`File`
    with ``read``, ``write``, ``mmap``/``munmap``, ``fsync``, ``unlink``).
``kernel.slab``: :class:`SlabCaches` (dentry, inode_cache, kmalloc-256, ...).
``kernel.reclaim``: :class:`Reclaim` (the ReclaimCore, counters, tunables
    ``swappiness`` and ``thp_swap``).

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
* kswapd_high_wmark_hit_quickly is counted at the next wake-up after an undisturbed nap;
* kswapd runs to completion at its wake-up instant (after the operation that woke
  it): inside one bulk operation an allocation below min goes to direct reclaim.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd

from thpbench._core import ReclaimCore, LRU_NAMES

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


class Reclaim:
    """The reclaim state of one Kernel: the ReclaimCore, tunables and counters."""

    def __init__(self, kernel, swappiness=60, thp_swap=False):
        self.kernel = kernel
        self.core = ReclaimCore(kernel.core)
        self._swappiness = 60
        self._thp_swap = False
        self.counters = {k: 0 for k in _PY_COUNTERS}
        self.flusher_cpu_ns = 0.0
        self._pending_wake = 0
        self._need = False
        self.swappiness = swappiness
        self.thp_swap = thp_swap

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
        w = self.kernel.watermarks
        self.core.set_policy(w["low"], w["high"], self._swappiness, int(self._thp_swap))

    # -- counters ------------------------------------------------------------------
    def stats(self) -> dict:
        st = self.core.stats()
        out = {k: v for k, v in st.items() if not k.startswith("x_")}
        out.update({k: v for k, v in self.counters.items() if not k.startswith("x_")})
        core = self.kernel.core.stats()
        out["pgpgin"] = st["x_pgpgin_file_kb"] + 4 * core["pswpin"]
        out["pgpgout"] = st["x_pgpgout_kb"]
        out.update(self.core.lru_sizes())
        out["nr_file_pages"] = self.core.nr_file_pages
        out["nr_dirty"] = self.core.nr_dirty
        out["nr_mapped"] = self.core.nr_mapped
        slab = self.kernel.slab
        out["nr_slab_reclaimable"] = slab.nr_pages(reclaimable=True)
        out["nr_slab_unreclaimable"] = slab.nr_pages(reclaimable=False)
        return out

    # -- the flags the core raises ---------------------------------------------------
    def consume_need(self) -> bool:
        """Did a core allocation fail and ask for direct reclaim since the last call?"""
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
        """Called by Kernel._after_op: wake kswapd / the flusher if the core asked."""
        self._take_flags()
        if self._pending_wake:
            order = self._pending_wake - 1
            self._pending_wake = 0
            self.kernel.kswapd.wakeup(order)

    def flush(self, nr_pages=None) -> int:
        """The flusher threads: write back dirty page-cache pages (all by default)."""
        n = self.core.writeback(self.core.nr_dirty if nr_pages is None else int(nr_pages))
        self.flusher_cpu_ns += n * self.kernel.costs.swap_out_page_ns
        return n

    # -- reclaim ---------------------------------------------------------------------
    def shrink_slab(self, priority: int) -> int:
        """shrink_slab() -> do_shrink_slab() of every reclaimable cache: scan
        (freeable >> priority) * 4 / DEFAULT_SEEKS objects.  Returns pages freed."""
        freed = 0
        for cache in self.kernel.slab.caches.values():
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
        k = self.kernel
        return order > 3 and k.buddy.nr_free_pages >= k.watermarks["high"] + (2 << order)

    def do_try_to_free_pages(self, nr_to_reclaim, *, may_swap=True, may_writepage=True, may_unmap=True,
                             is_kswapd=False, hibernation_mode=False, order=0) -> int:
        """The priority loop: shrink_node() at priority 12, 11, ... 0 until nr_to_reclaim
        (or, for a costly order, until compaction_ready)."""
        k = self.kernel
        before = k.buddy.nr_free_pages
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
        return max(k.buddy.nr_free_pages - before, 0) if reclaimed else 0

    def direct_reclaim(self) -> bool:
        """__alloc_pages_direct_reclaim(): allocstall, try_to_free_pages(SWAP_CLUSTER_MAX).
        True when it made progress (the caller retries its allocation)."""
        k = self.kernel
        self.counters["allocstall_normal"] += 1
        k.kswapd.wakeup(0)
        st0 = self.core.stats()
        n = self.do_try_to_free_pages(SWAP_CLUSTER_MAX)
        st1 = self.core.stats()
        k.now_ns += (st1["pgscan_direct"] - st0["pgscan_direct"]) * k.costs.scan_pte_ns * 10
        if n == 0:
            self.counters["x_direct_reclaim_fail"] += 1
        return n > 0

    def check(self):
        self.core.check(self.kernel.slab.all_pages())
        return True


PAGE_ALLOC_COSTLY_ORDER = 3     # include/linux/mmzone.h


class Kswapd:
    """kswapd0: balance_pgdat() between the low and high watermarks on the simulated
    clock.  ``wakeup(order)`` (wakeup_kswapd) runs it when free pages are below low;
    it reclaims until free >= high, then naps HZ/10: a wake-up during the nap counts
    kswapd_low_wmark_hit_quickly, a nap that ends undisturbed
    kswapd_high_wmark_hit_quickly (kswapd_try_to_sleep)."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.runs = 0
        self._nap_until = None
        self.cpu_ns = 0.0
        self.last_reclaimed = 0
        #: called as hook(order, reclaimed) after each balance_pgdat: kcompactd's wake-up
        #: (wakeup_kcompactd(pgdat, alloc_order, highest_zoneidx) in kswapd_try_to_sleep)
        self.after_balance_hooks = []

    def _settle_nap(self, woken):
        if self._nap_until is None:
            return
        r = self.kernel.reclaim
        if woken and self.kernel.now_ns < self._nap_until:
            r.counters["kswapd_low_wmark_hit_quickly"] += 1
        else:
            r.counters["kswapd_high_wmark_hit_quickly"] += 1
        self._nap_until = None

    def wakeup(self, order=0) -> int:
        """wakeup_kswapd(): unless the zone is balanced for ``order`` (pgdat_balanced:
        free pages above the high watermark and, for order > 0, a free block of that
        order), balance it now.  Returns pages reclaimed."""
        k = self.kernel
        if k._zone_balanced(order):
            return 0
        self._settle_nap(True)
        return self.balance_pgdat(order)

    def balance_pgdat(self, order=0) -> int:
        k = self.kernel
        r = k.reclaim
        r.counters["pageoutrun"] += 1
        self.runs += 1
        high = k.watermarks["high"]
        if order > PAGE_ALLOC_COSTLY_ORDER:
            # kswapd_shrink_node(): for a costly order kswapd reclaims compact_gap(order)
            # = 2 << order pages beyond the watermark, then balances for order 0 and
            # leaves the huge page to kcompactd (woken as it goes to sleep)
            high += 2 << order
        k._after_op_settle()
        st0 = r.core.stats()
        c0 = k.core.stats()
        total = 0
        prio = DEF_PRIORITY
        while prio >= 0 and k.buddy.nr_free_pages < high:
            nr_to_reclaim = max(high - k.buddy.nr_free_pages, SWAP_CLUSTER_MAX)
            before = k.buddy.nr_free_pages
            r.core.shrink_lruvec(prio, nr_to_reclaim, True, True, True, True, False)
            r.shrink_slab(prio)
            r._take_flags()
            got = k.buddy.nr_free_pages - before
            total += max(got, 0)
            if got <= 0:
                prio -= 1         # "raise priority if ... there was no progress"
        st1 = r.core.stats()
        c1 = k.core.stats()
        costs = k.costs
        self.cpu_ns += ((st1["pgscan_kswapd"] - st0["pgscan_kswapd"]) * costs.scan_pte_ns * 10
                        + (c1["pswpout"] - c0["pswpout"]) * costs.swap_out_page_ns
                        + (st1["x_file_written"] - st0["x_file_written"]) * costs.swap_out_page_ns)
        # kswapd's work is not the faulting task's: do not charge it to the clock
        k._last_stats = k.core.stats()
        self._nap_until = k.now_ns + HZ_10_NS
        self.last_reclaimed = total
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
        return self.cache.kernel.reclaim.flush()

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

    def __init__(self, kernel):
        self.kernel = kernel
        self.rc = kernel.reclaim.core
        self.files: dict[str, File] = {}
        self._seed = 0

    def create(self, name: str, nbytes: int) -> File:
        """A file of nbytes (rounded up to pages) whose data is on disk, not cached."""
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
        k = self.kernel
        r = k.reclaim
        total = 0
        pos = start
        while pos < start + n:
            res = step(pos, start + n - pos)
            done, misses = (res, 0) if counts_done else res
            total += done if counts_done else misses
            k.now_ns += misses * k.costs.file_read_page_ns
            pos += done
            k._after_op()
            if pos < start + n and done == 0:
                r.consume_need()
                if not r.direct_reclaim():
                    k.core.count_oom()
                    from thpbench.kernel import OutOfMemory
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
        out = []
        rc = self.slabs.kernel.reclaim
        mt = MIGRATE_RECLAIMABLE if self.reclaimable else MIGRATE_UNMOVABLE
        for _ in range(n):
            if not self.partial:
                pfn = rc.core.slab_page_alloc(mt)
                while pfn < 0:
                    rc.consume_need()
                    if not rc.direct_reclaim():
                        self.slabs.kernel.core.count_oom()
                        from thpbench.kernel import OutOfMemory
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
        self.slabs.kernel._after_op()
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
                self.slabs.kernel.reclaim.core.slab_page_free(pfn)
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

    def __init__(self, kernel):
        self.kernel = kernel
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


# ---------------------------------------------------------------------------
# Kernel entry points (bound onto Kernel by attach)
# ---------------------------------------------------------------------------

def shrink_node(kernel, nr_to_reclaim, *, may_swap=True, may_writepage=True, order=0) -> int:
    """Reclaim ``nr_to_reclaim`` pages from the node (direct reclaim at our level):
    the priority loop over the LRU lists and the slab shrinkers.  ``order`` is accepted
    for the allocator's slow path; reclaim itself is order-blind (as the classic LRU
    is: compaction makes the contiguity), except that for a costly order (> 3) the loop
    stops at compaction_ready().  Returns pages reclaimed."""
    if isinstance(nr_to_reclaim, bool) or not isinstance(nr_to_reclaim, (int, np.integer)) or nr_to_reclaim < 0:
        raise ValueError(f"nr_to_reclaim {nr_to_reclaim!r} must be a non-negative integer")
    if not isinstance(order, int) or not 0 <= order <= kernel.buddy.max_order:
        raise ValueError(f"order {order!r} must be in 0..{kernel.buddy.max_order}")
    kernel._after_op_settle()
    n = kernel.reclaim.do_try_to_free_pages(int(nr_to_reclaim), may_swap=may_swap, may_writepage=may_writepage,
                                            order=order)
    kernel._after_op()
    return n


def shrink_all_memory(kernel, nr_pages) -> int:
    """mm/vmscan.c: shrink_all_memory() (CONFIG_HIBERNATION): do_try_to_free_pages with
    may_writepage, may_unmap, may_swap and hibernation_mode set; the LRU order gives the
    preferred order "inactive > active > active referenced > active mapped".  Returns
    pages freed (measured at the buddy allocator)."""
    if isinstance(nr_pages, bool) or not isinstance(nr_pages, (int, np.integer)) or nr_pages < 0:
        raise ValueError(f"nr_pages {nr_pages!r} must be a non-negative integer")
    k = kernel
    k._after_op_settle()
    before = k.buddy.nr_free_pages
    k.reclaim.do_try_to_free_pages(int(nr_pages), hibernation_mode=True)
    k._after_op()
    return max(k.buddy.nr_free_pages - before, 0)


def drop_caches(kernel, mode) -> dict:
    """``echo mode > /proc/sys/vm/drop_caches``: 1 page cache (clean, unmapped pages),
    2 reclaimable slab objects, 3 both.  Returns pages freed by each."""
    if mode not in (1, 2, 3):
        raise ValueError(f"drop_caches takes 1, 2 or 3, got {mode!r}")
    r = kernel.reclaim
    out = {"pagecache": 0, "slab": 0}
    if mode & 1:
        out["pagecache"] = r.core.drop_pagecache()
        r.counters["drop_pagecache"] += 1
    if mode & 2:
        out["slab"] = kernel.slab.drop_slab()
        r.counters["drop_slab"] += 1
    kernel._after_op()
    return out


def attach(kernel) -> None:
    """Give a Kernel its reclaim state, kswapd, page cache and slab caches."""
    kernel.reclaim = Reclaim(kernel)
    kernel.kswapd = Kswapd(kernel)
    kernel.page_cache = PageCache(kernel)
    kernel.slab = SlabCaches(kernel)


def reclaim_cost_ns(costs, d: dict) -> float:
    """Simulated time of reclaim from counter deltas: a page scanned costs ~10 PTE reads
    (an rmap walk), a write to swap or disk swap_out_page_ns."""
    return ((d.get("pgscan_kswapd", 0) + d.get("pgscan_direct", 0)) * costs.scan_pte_ns * 10
            + d.get("pswpout", 0) * costs.swap_out_page_ns + d.get("x_file_written", 0) * costs.swap_out_page_ns)


# ---------------------------------------------------------------------------
# Workloads: page cache and slab pressure
# ---------------------------------------------------------------------------

MiB = 1 << 20


def _row(k, **extra) -> dict:
    vs = k.vmstat()
    mi = k.meminfo()
    return {"t_ns": k.now_ns, **extra,
            "free_mib": k.buddy.nr_free_pages * PAGE_SIZE / MiB,
            "cached_mib": mi["Cached"] / 1024, "anon_mib": mi["AnonPages"] / 1024,
            "anon_huge_mib": mi["AnonHugePages"] / 1024,
            "slab_reclaimable_mib": mi["SReclaimable"] / 1024, "slab_unreclaimable_mib": mi["SUnreclaim"] / 1024,
            "slab_pageblocks": len({p >> k.buddy.pageblock_order for p in k.slab.all_pages()}),
            **{c: vs[c] for c in ("thp_fault_alloc", "thp_fault_fallback", "pgscan_kswapd", "pgscan_direct",
                                  "pgsteal_kswapd", "pgsteal_direct", "pswpout", "allocstall_normal",
                                  "workingset_refault_file", "slabs_scanned", "nr_free_pages")}}


def kernel_build_mix(k, *, jobs=40, seed=0, anon_mib=(4, 32), headers=200, header_kib=(8, 64),
                     source_kib=(8, 96), headers_per_job=30, job_ns=50_000_000,
                     keep_unmovable=0.1, unlink_objects=0.3, negative_dentries=(100, 400)) -> pd.DataFrame:
    """A kernel-build-like mix on Kernel ``k``: each job (a compiler process) maps and
    touches short-lived anon memory, reads its source file and a set of shared headers
    through the page cache (dentry + inode objects for every new file, lookups of the
    cached ones), kmallocs unmovable objects (``keep_unmovable`` of them outlive the job:
    the long-lived ones that pin pageblocks), writes its object file (dirty page cache)
    and exits; some object files are later unlinked.  The include-path search leaves
    ``negative_dentries`` (a range per job) in the dcache: reclaimable slab that grows
    until the shrinker trims it, page by partly-freed page.  Returns one row per job."""
    rng = np.random.default_rng(seed)
    pc, slab = k.page_cache, k.slab
    state = getattr(k, "_kbuild", None)
    if state is None:
        state = k._kbuild = {"headers": [], "n": 0, "objects": [], "dentries": {}}
        for i in range(headers):
            f = pc.create(f"include/h{i}.h", int(rng.integers(*header_kib)) * 1024)
            state["headers"].append(f)
            state["dentries"][f.name] = slab["dentry"].alloc(1) + slab["inode_cache"].alloc(1)
    rows = []
    for _ in range(jobs):
        j = state["n"]
        state["n"] += 1
        p = k.spawn()
        size = int(rng.integers(*anon_mib)) * MiB
        a = p.mmap(size)
        p.touch_range(a, size)
        src = pc.create(f"src/f{j}.c", int(rng.integers(*source_kib)) * 1024)
        # path walk: a dentry per component, an inode per file (d_alloc, alloc_inode)
        state["dentries"][src.name] = slab["dentry"].alloc(3) + slab["inode_cache"].alloc(1)
        src.read()
        for h in rng.choice(len(state["headers"]), size=min(headers_per_job, len(state["headers"])), replace=False):
            f = state["headers"][int(h)]
            handles = state["dentries"].get(f.name)
            if handles and all(x in slab["dentry"].live or x in slab["inode_cache"].live for x in handles):
                slab["dentry"].touch(handles)                  # dcache hit
            else:
                state["dentries"][f.name] = slab["dentry"].alloc(1) + slab["inode_cache"].alloc(1)
            f.read()
        slab["dentry"].alloc(int(rng.integers(*negative_dentries)))     # failed lookups: negative dentries
        km = slab["kmalloc-256"].alloc(int(rng.integers(50, 400)))
        keep = int(len(km) * keep_unmovable)
        slab["kmalloc-256"].free(km[keep:])
        obj = pc.create(f"obj/f{j}.o", max(src.nr_pages * 2, 1) * PAGE_SIZE)
        obj.write(0, rng.integers(1, 2**62, size=obj.nr_pages, dtype=np.uint64))
        state["dentries"][obj.name] = slab["dentry"].alloc(1) + slab["inode_cache"].alloc(1)
        state["objects"].append(obj)
        p.exit()
        if state["objects"] and rng.random() < unlink_objects:
            victim = state["objects"].pop(int(rng.integers(len(state["objects"]))))
            victim.unlink()
        k.advance(job_ns)
        rows.append(_row(k, job=j, phase="kbuild"))
    return pd.DataFrame(rows)


def kivity_sort(*, mem_bytes=2 << 30, file_bytes=1 << 30, sort_bytes=1200 * MiB, chunk_bytes=32 * MiB,
                thp=None, aged=False, aging_jobs=60, cached_input=True, seed=0, kernel=None):
    """Avi Kivity's April 2010 experiment (anchors A0): ``sort -S 1200M`` of a 1 GB file
    on a 2 GB machine.  sort reads the file through the page cache into a 1200 MB anon
    buffer (THP allowed), sorts it in place and writes a 1 GB output file.  The page
    cache competes with the buffer for memory; huge pages need free 2 MiB blocks.
    ``aged`` first runs :func:`kernel_build_mix` (``aging_jobs`` jobs) so the machine is
    not "directly after a clean reboot"; ``cached_input`` means the input was just
    generated (written, then flushed), so its pages fill the page cache when sort starts.  Returns (kernel, DataFrame of samples: phase,
    MiB read/written, anon_huge_mib, cached_mib, free_mib, counters)."""
    k = kernel
    if k is None:
        from thpbench.kernel import Kernel
        k = Kernel(mem_bytes, thp=thp or {"enabled": "always"})
    rows = []
    if aged:
        kernel_build_mix(k, jobs=aging_jobs, seed=seed)
        rows.append(_row(k, phase="aged", mib=0))
    inp = k.page_cache.create(f"sort.in.{seed}", file_bytes)
    out = k.page_cache.create(f"sort.out.{seed}", file_bytes)
    rng = np.random.default_rng(seed)
    if cached_input:
        for off in range(0, file_bytes, chunk_bytes):
            n = min(chunk_bytes, file_bytes - off)
            inp.write(off, rng.integers(1, 2**62, size=n // PAGE_SIZE, dtype=np.uint64))
        inp.fsync()
        rows.append(_row(k, phase="generated", mib=file_bytes / MiB))
    p = k.spawn()
    buf = p.mmap(sort_bytes)
    done = 0
    while done < file_bytes:
        n = min(chunk_bytes, file_bytes - done)
        inp.read(done, n)                                  # read(2) into the page cache...
        if done < sort_bytes:
            m = min(n, sort_bytes - done)
            p.touch_range(buf + done, m)                   # ...and copied into sort's buffer
        done += n
        rows.append(_row(k, phase="read", mib=done / MiB))
    used = min(file_bytes, sort_bytes)
    p.touch_range(buf, used)                               # the sort: every page rewritten
    rows.append(_row(k, phase="sort", mib=used / MiB))
    done = 0
    while done < file_bytes:
        n = min(chunk_bytes, file_bytes - done)
        out.write(done, rng.integers(1, 2**62, size=n // PAGE_SIZE, dtype=np.uint64))
        done += n
        rows.append(_row(k, phase="write", mib=done / MiB))
    k.advance(10_000_000_000)                              # 10 s: khugepaged may collapse
    rows.append(_row(k, phase="after 10 s", mib=0))
    return k, pd.DataFrame(rows)
