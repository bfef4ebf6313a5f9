"""Memory compaction (``mm/compaction.c``, Linux 6.18) on a :class:`~thpbench.BuddyAllocator`.

Compaction frees high-order blocks without reclaim: a *migrate scanner* walks the
zone's pageblocks upward from its start, isolating allocated MOVABLE blocks
(``COMPACT_CLUSTER_MAX`` = 32 pages a batch); a *free scanner* walks MOVABLE
pageblocks downward from the zone end, isolating free blocks; each isolated block is
copied to a free block of its own order near the top of the zone and its old frames
are freed, so that free memory gathers at the bottom.  It stops when the scanners
meet (``COMPACT_COMPLETE``) or, for a request of some order, as soon as
``__compact_finished`` sees a free block of that order at a pageblock boundary
(``COMPACT_SUCCESS``).

Entry points, as the kernel's:

* :func:`compact_zone` -- ``compact_zone()`` itself (``order=-1`` is the whole-zone
  pass of ``/proc/sys/vm/compact_memory``, also :func:`compact_memory`);
* :func:`try_to_compact_pages` -- direct compaction for an allocation of ``order``,
  with ``compaction_suitable()`` (the order-0 watermark plus ``compact_gap`` and
  ``vm.extfrag_threshold``) and deferral (``defer_compaction`` /
  ``compaction_deferred`` / ``compaction_defer_reset``);
* :func:`direct_compact` -- ``__alloc_pages_direct_compact()``: compaction then the
  allocation, counting ``compact_stall`` / ``compact_success`` / ``compact_fail``;
* :class:`Kcompactd` -- the per-node daemon: woken with an order (``wakeup_kcompactd``
  from kswapd) and proactive compaction every ``HPAGE_FRAG_CHECK_INTERVAL_MSEC``
  (500 ms) driven by a simulated clock;
* :meth:`CompactionState.reset_isolation_suitable` -- what kswapd calls before it
  sleeps; :func:`compaction_cost_ns` -- a compaction's simulated time (``CostModel``).

The zone's compaction fields (cached scanner positions, skip bits, deferral) and the
``/proc/vmstat`` counters (``compact_*``, ``pgmigrate_success``, ``pgmigrate_fail``)
live in a :class:`CompactionState`: pass the same one to every call for an allocator.

Owners.  What a block means to its owner moves through a *mover* (the C contract is
in ``_core.pxd``).  :class:`~thpbench._core.PageBook` is the one provided here: per
frame an owner (a slot of a workload) and a content value, and a pinned bit; pass it
as ``book=``.  Without a book every movable block moves (and a large one may be
split) and nobody is told: a workload's ``slots`` are stale afterwards, so compact an
:class:`~thpbench.workloads.AllocationChurn` you keep using with its book
(``AllocationChurn(book=PageBook(a))``).  The simulated kernel will pass its own mover
(page tables through its reverse map).

Watermarks belong to the simulated kernel; here they are parameters in pages
(``wmark_min_pages`` default 0, i.e. no reserve; ``wmark_low_pages`` defaults to min).

Simplified (the model, not the kernel):

* no fast free-list searches (``fast_isolate_freepages``, ``fast_find_migrateblock``,
  ``fast_isolate_around``): both scanners are linear.  Pageblock skip bits
  (``PB_migrate_skip``) are kept in the :class:`CompactionState`, set and honoured as
  the kernel does, and cleared by ``__reset_isolation_suitable`` when a deferred
  compaction restarts or when kswapd calls
  :meth:`CompactionState.reset_isolation_suitable` before it sleeps;
* no LRU: every allocated MOVABLE block counts as an isolatable LRU folio (no dirty,
  writeback or unevictable folios, no isolation throttling, no costs of LRU
  isolation); no per-cpu lists to drain; no locks, so no contention;
* ``migrate_pages()`` runs one pass of ``migrate_pages_batch()``: targets are taken
  for the whole batch first (the "unmap" step), then every folio is moved, then the
  targets of failed folios go back.  A mover's failure (a pinned page) is final, where
  the kernel retries ``-EAGAIN`` up to 10 passes.  A large folio with no free target of
  its order is split into order-0 pages whose migration follows the batch, as
  ``try_split_folio()`` does, if its owner agrees: always without a book; a
  :class:`PageBook` agrees unless a slots array is attached (a slot names one block) or
  a page is pinned.  Otherwise the batch ends (``-ENOMEM``, then ``COMPACT_CONTENDED``
  unless the scanners met).  A pinned anonymous page is not even isolated in the
  kernel (its extra reference is seen first); here it is isolated and fails to move;
* no ``capture_control``: the allocation after direct compaction is an ordinary one;
* one zone per node: the node's fragmentation score is the zone's weighted by
  ``present_pages / (node_present_pages + 1)``, as ``fragmentation_score_node`` does;
  ``COMPACTION_HPAGE_ORDER`` is the allocator's pageblock order (9, as on x86-64);
* no lowmem reserves, highatomic reserves or CMA in the watermark checks;
* with grouping by mobility off every pageblock is Unmovable, so, as in the kernel,
  the free scanner finds no MOVABLE target pageblock and compaction moves nothing
  (except at ``priority="sync_full"``, which ignores block suitability).
"""

from thpbench._core import (
    COMPACT_RESULT_NAMES,
    COMPACT_STAT_NAMES,
    BuddyAllocator,
    CompactionState,
    MMCore,
    PageBook,
    _compact_zone,
    _migratetype,
    _zone_metrics,
)

__all__ = [
    "COMPACT_RESULT_NAMES", "COMPACT_STAT_NAMES", "CompactionState", "PageBook", "Kcompactd",
    "compact_zone", "compact_memory", "try_to_compact_pages", "direct_compact",
    "compaction_suitable", "fragmentation_index", "extfrag_for_order", "fragmentation_score",
    "fragmentation_score_wmark", "HPAGE_FRAG_CHECK_INTERVAL_MSEC", "COMPACT_MAX_DEFER_SHIFT",
    "compaction_cost_ns",
]

MODES = {"async": 0, "sync_light": 1, "sync": 2}
# enum compact_priority: COMPACT_PRIO_SYNC_FULL = MIN_COMPACT_PRIORITY, ..., COMPACT_PRIO_ASYNC
PRIORITIES = {"sync_full": 0, "sync_light": 1, "async": 2}
RESULT = {name: i for i, name in enumerate(COMPACT_RESULT_NAMES)}
HPAGE_FRAG_CHECK_INTERVAL_MSEC = 500
COMPACT_MAX_DEFER_SHIFT = 6
PAGE_ALLOC_COSTLY_ORDER = 3


# -- validation -------------------------------------------------------------------------

def _allocator(allocator):
    if not isinstance(allocator, BuddyAllocator):
        raise TypeError(f"allocator must be a BuddyAllocator, got {type(allocator).__name__}")
    return allocator


def _int(value, what, lo, hi):
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    v = value.__index__()
    if not lo <= v <= hi:
        raise ValueError(f"{what} {v} out of range {lo}..{hi}")
    return v


def _order(allocator, order, lo):
    return _int(order, "order", lo, allocator.max_order)


def _name(value, table, what):
    if value not in table:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(table)}")
    return table[value]


def _state(allocator, state):
    if state is None:
        return CompactionState(allocator)
    if not isinstance(state, CompactionState):
        raise TypeError(f"state must be a CompactionState, got {type(state).__name__}")
    if state.nr_pages != allocator.nr_pages:
        raise ValueError(f"state belongs to a zone of {state.nr_pages} pages, the allocator has {allocator.nr_pages}")
    return state


def _book(allocator, book):
    if book is None:
        return None
    if isinstance(book, MMCore):
        # the simulated kernel's mover: page tables through its reverse map (thpbench.Kernel)
        if book.allocator is not allocator:
            raise ValueError("the MMCore belongs to another allocator")
        return book
    if not isinstance(book, PageBook):
        raise TypeError(f"book must be a PageBook, got {type(book).__name__}")
    if book.nr_pages != allocator.nr_pages:
        raise ValueError(f"book covers {book.nr_pages} frames, the allocator has {allocator.nr_pages}")
    if book.allocator is not allocator:
        raise ValueError("book belongs to another allocator")
    return book


def _wmarks(wmark_min_pages, wmark_low_pages, extfrag_threshold):
    lo = _int(wmark_min_pages, "wmark_min_pages", 0, 2**62)
    lw = lo if wmark_low_pages is None else _int(wmark_low_pages, "wmark_low_pages", 0, 2**62)
    if lw < lo:
        raise ValueError(f"wmark_low_pages {lw} is below wmark_min_pages {lo}")
    return lo, lw, _int(extfrag_threshold, "extfrag_threshold", 0, 1000)


def _gfp_migratetype(allocator, migratetype):
    mt = _migratetype(migratetype, True)
    # gfp_migratetype(): every request is UNMOVABLE with grouping by mobility disabled
    return mt if allocator.grouping else 0


# -- the indices compaction reads -----------------------------------------------------

def fragmentation_index(allocator, order):
    """``fragmentation_index()`` in thousandths (-1000: a free block of ``order`` exists)."""
    a = _allocator(allocator)
    return _zone_metrics(a, _order(a, order, 0), 0, 0, 0, 0)[0]


def extfrag_for_order(allocator, order):
    """``extfrag_for_order()``: percent of free memory in blocks smaller than ``order``."""
    a = _allocator(allocator)
    return _zone_metrics(a, _order(a, order, 0), 0, 0, 0, 0)[1]


def fragmentation_score(allocator):
    """``fragmentation_score_node()`` (0..100) of a node holding this one zone.

    ``extfrag_for_order`` at ``COMPACTION_HPAGE_ORDER`` (the pageblock order here),
    weighted by ``present_pages / (node_present_pages + 1)``.
    """
    a = _allocator(allocator)
    return _zone_metrics(a, a.pageblock_order, 0, 0, 0, 0)[4]


def fragmentation_score_wmark(compaction_proactiveness=20, low=True):
    """``fragmentation_score_wmark()``: low = 100 - proactiveness; high = low + min(10, low/2)."""
    p = _int(compaction_proactiveness, "compaction_proactiveness", 0, 100)
    wmark_low = 100 - p
    leeway = min(10, wmark_low // 2)
    return wmark_low if low else min(wmark_low + leeway, 100)


def compaction_suitable(allocator, order, *, watermark_pages=None, wmark_min_pages=0, wmark_low_pages=None,
                        extfrag_threshold=500):
    """``compaction_suitable()``: may compaction for ``order`` run on this zone now?

    Free pages must exceed the caller's watermark (``watermark_pages``, default the
    min watermark) plus ``compact_gap(order) = 2 << order``, plus ``low - min`` for
    costly orders (> 3), so that the free scanner has targets; and for costly orders
    the fragmentation index must be outside ``0..extfrag_threshold`` (at or below the
    threshold a failure is for lack of memory, not fragmentation).
    """
    a = _allocator(allocator)
    o = _order(a, order, 0)
    lo, lw, t = _wmarks(wmark_min_pages, wmark_low_pages, extfrag_threshold)
    w = lo if watermark_pages is None else _int(watermark_pages, "watermark_pages", 0, 2**62)
    return bool(_zone_metrics(a, o, lo, lw, t, w)[2])


# -- compact_zone ---------------------------------------------------------------------

def compact_zone(allocator, order=-1, mode="sync", book=None, *, state=None, migratetype="movable",
                 direct=None, whole_zone=None, ignore_skip_hint=None, ignore_block_suitable=False,
                 proactive=False, compaction_proactiveness=20, wmark_min_pages=0, wmark_low_pages=None,
                 alloc_wmark_pages=None, extfrag_threshold=500, trace=False):
    """Run ``compact_zone()`` once; return a dict of its result and counters.

    Parameters
    ----------
    allocator : BuddyAllocator
    order : int
        The allocation order compaction works for; -1 (default) compacts the whole zone
        as ``/proc/sys/vm/compact_memory`` does (``is_via_compact_memory``).
    mode : "async", "sync_light" or "sync"
        ``enum migrate_mode``.  Async uses a free-scanner stride of 32 and, in direct
        compaction, only MOVABLE source pageblocks (``suitable_migration_source``) and
        gives up an order-aligned block at the first page it cannot isolate.
    book : PageBook, optional
        The mover: owners, content and pins move with their pages.
    state : CompactionState, optional
        The zone's compaction fields and counters, kept across calls (cached scanner
        positions, deferral).  A fresh one if omitted.
    migratetype : the request's mobility ("movable" by default), for ``__compact_finished``.
    direct : bool, optional
        Direct compaction (``cc->direct_compaction``).  Default: async mode only, as only
        direct compaction runs async in the kernel.
    whole_zone, ignore_skip_hint : bool, optional
        Default: True for ``order=-1`` (``compact_node``), else False (start at the cached
        positions; skip pageblocks whose skip bit is set).
    ignore_block_suitable : bool
        Take free targets from any pageblock type (``MIN_COMPACT_PRIORITY``).
    proactive : bool
        ``cc->proactive_compaction``: finish when the zone's fragmentation score is at
        most ``fragmentation_score_wmark(compaction_proactiveness, low=True)``.
    wmark_min_pages, wmark_low_pages : int
        The zone's min and low watermarks (pages; low defaults to min).  The free scanner
        stops isolating below min + 2**order; ``compaction_suitable`` adds low - min for
        costly orders.
    alloc_wmark_pages : int, optional
        The allocation's watermark (default min): the "can already succeed" test and
        the base of ``compaction_suitable``.
    extfrag_threshold : int
        ``vm.extfrag_threshold`` (0..1000, default 500).
    trace : bool
        Return every migration as rows (src, dst, order, rc) in ``"moves"``.

    Returns
    -------
    dict
        ``result`` (a ``COMPACT_*`` name), the vmstat counters it added
        (``compact_migrate_scanned``, ``compact_free_scanned``, ``compact_isolated``,
        ``pgmigrate_success``, ``pgmigrate_fail``, ...), ``total_migrate_scanned`` and
        ``total_free_scanned`` (``cc->total_*``), ``moves`` if traced.
    """
    a = _allocator(allocator)
    o = _order(a, order, -1)
    m = _name(mode, MODES, "mode")
    st = _state(a, state)
    bk = _book(a, book)
    mt = _gfp_migratetype(a, migratetype)
    lo, lw, t = _wmarks(wmark_min_pages, wmark_low_pages, extfrag_threshold)
    aw = lo if alloc_wmark_pages is None else _int(alloc_wmark_pages, "alloc_wmark_pages", 0, 2**62)
    if direct is None:
        direct = m == MODES["async"]
    if whole_zone is None:
        whole_zone = o < 0
    if ignore_skip_hint is None:
        ignore_skip_hint = o < 0
    wl = fragmentation_score_wmark(compaction_proactiveness, low=True)
    ret, delta, moves, tms, tfs = _compact_zone(a, st, bk, o, m, mt, bool(whole_zone), bool(direct), bool(proactive),
                                                bool(ignore_skip_hint), bool(ignore_block_suitable), lo, lw, aw, t,
                                                wl, bool(trace))
    out = {"result": COMPACT_RESULT_NAMES[ret]}
    out.update(delta)
    out["total_migrate_scanned"] = tms
    out["total_free_scanned"] = tfs
    if trace:
        out["moves"] = moves
    return out


def compact_memory(allocator, book=None, *, state=None, trace=False):
    """``echo 1 > /proc/sys/vm/compact_memory``: ``compact_node()``, sync, whole zone, order -1."""
    return compact_zone(allocator, -1, "sync", book, state=state, direct=False, whole_zone=True,
                        ignore_skip_hint=True, trace=trace)


# -- direct compaction ---------------------------------------------------------------------

def try_to_compact_pages(allocator, order, *, priority="async", migratetype="movable", state=None, book=None,
                         wmark_min_pages=0, wmark_low_pages=None, alloc_wmark_pages=None, extfrag_threshold=500,
                         trace=False):
    """``try_to_compact_pages()`` for one zone: direct compaction for an allocation of ``order``.

    ``priority`` is ``enum compact_priority``: "async" (``COMPACT_PRIO_ASYNC``, the
    first attempt), "sync_light", or "sync_full" (``MIN_COMPACT_PRIORITY``: whole
    zone, ignoring deferral, skip hints and block suitability).  Above the minimum
    priority a deferred zone is not compacted (``COMPACT_DEFERRED``).  Afterwards
    ``COMPACT_SUCCESS`` resets the deferral's order (``compaction_defer_reset(...,
    false)``), and a sync attempt that ran to ``COMPACT_COMPLETE`` or
    ``COMPACT_PARTIAL_SKIPPED`` defers the zone (``defer_compaction``).  Returns the
    :func:`compact_zone` dict (all counters 0 and no ``moves`` when deferred).
    """
    a = _allocator(allocator)
    o = _order(a, order, 1)
    prio = _name(priority, PRIORITIES, "priority")
    st = _state(a, state)
    _book(a, book)
    _wmarks(wmark_min_pages, wmark_low_pages, extfrag_threshold)
    _gfp_migratetype(a, migratetype)
    if prio > PRIORITIES["sync_full"] and st._deferred(o):
        out = {"result": "COMPACT_DEFERRED"}
        out.update({k: 0 for k in COMPACT_STAT_NAMES})
        out["total_migrate_scanned"] = out["total_free_scanned"] = 0
        return out
    full = prio == PRIORITIES["sync_full"]
    # compact_zone_order()
    out = compact_zone(a, o, "async" if prio == PRIORITIES["async"] else "sync_light", book, state=st,
                       migratetype=migratetype, direct=True, whole_zone=full, ignore_skip_hint=full,
                       ignore_block_suitable=full, wmark_min_pages=wmark_min_pages, wmark_low_pages=wmark_low_pages,
                       alloc_wmark_pages=alloc_wmark_pages, extfrag_threshold=extfrag_threshold, trace=trace)
    status = out["result"]
    if status == "COMPACT_SUCCESS":
        st._defer_reset(o, False)
    elif prio != PRIORITIES["async"] and status in ("COMPACT_COMPLETE", "COMPACT_PARTIAL_SKIPPED"):
        st._defer(o)
    return out


def direct_compact(allocator, order, *, migratetype="movable", priority="async", state=None, book=None,
                   wmark_min_pages=0, wmark_low_pages=None, alloc_wmark_pages=None, extfrag_threshold=500):
    """``__alloc_pages_direct_compact()``: compact, then try the allocation.

    Unless compaction was skipped, counts ``compact_stall`` and then
    ``compact_success`` (the allocation succeeded; deferral fully reset) or
    ``compact_fail``.  A deferred attempt counts a stall and a failure, as in the
    kernel.  Returns the :func:`try_to_compact_pages` dict plus ``pfn`` (the block
    allocated, or None).  The new block has no owner in ``book``.
    """
    a = _allocator(allocator)
    st = _state(a, state)
    out = try_to_compact_pages(a, order, priority=priority, migratetype=migratetype, state=st, book=book,
                               wmark_min_pages=wmark_min_pages, wmark_low_pages=wmark_low_pages,
                               alloc_wmark_pages=alloc_wmark_pages, extfrag_threshold=extfrag_threshold)
    out["pfn"] = None
    if out["result"] == "COMPACT_SKIPPED":
        return out
    st._count("compact_stall")
    lo = _int(wmark_min_pages, "wmark_min_pages", 0, 2**62)
    aw = lo if alloc_wmark_pages is None else alloc_wmark_pages
    pfn = None
    if _zone_metrics(a, order, 0, 0, 0, aw)[3]:          # get_page_from_freelist(): watermark, then rmqueue
        pfn = a.alloc(order, migratetype)
    if pfn is not None:
        st._set_blockskip_flush(False)
        st._defer_reset(order, True)
        st._count("compact_success")
    else:
        st._count("compact_fail")
    out["pfn"] = pfn
    return out


# -- simulated time ------------------------------------------------------------------------------

def compaction_cost_ns(result, costs=None):
    """Simulated nanoseconds of one compaction, from its counters and a ``CostModel``.

    Every pfn a scanner looked at costs ``scan_pfn_ns``; every page migrated costs
    ``copy_page_ns + migrate_overhead_ns`` (unmap, copy, remap, TLB flush); every page
    that failed to migrate costs ``migrate_overhead_ns`` (unmapped and restored).
    ``result`` is a dict returned by :func:`compact_zone` (or a Kcompactd event row,
    whose scan counts are ``compact_migrate_scanned`` / ``compact_free_scanned``);
    ``costs`` defaults to ``CostModel.default()``.
    """
    from thpbench.costs import CostModel
    c = CostModel.default() if costs is None else costs
    scanned = result.get("total_migrate_scanned", result.get("compact_migrate_scanned", 0)) + \
        result.get("total_free_scanned", result.get("compact_free_scanned", 0))
    return (scanned * c.scan_pfn_ns + result["pgmigrate_success"] * (c.copy_page_ns + c.migrate_overhead_ns)
            + result["pgmigrate_fail"] * c.migrate_overhead_ns)


# -- kcompactd ----------------------------------------------------------------------------------

class Kcompactd:
    """kcompactd for the node holding ``allocator``, on a simulated clock.

    ``wakeup(order)`` is ``wakeup_kcompactd()`` (kswapd calls it when it goes to sleep
    having balanced the node for a high-order request): it records the order and wakes
    the daemon if ``kcompactd_node_suitable()``.  ``run(now_ns)`` lets the daemon run
    until ``now_ns``: pending work first (``kcompactd_do_work``: sync-light compaction
    for the order unless deferred, already satisfiable or unsuitable, counting
    ``compact_daemon_wake`` and ``compact_daemon_*_scanned``), then a proactive check
    at every ``HPAGE_FRAG_CHECK_INTERVAL_MSEC`` (500 ms) timeout: when the node's
    fragmentation score exceeds ``fragmentation_score_wmark(high)`` and kswapd is not
    running, ``proactive_compact_node()`` compacts until the zone's score is at most
    the low mark; if the score did not fall, the next check waits 64 times longer.
    ``compaction_proactiveness`` 0 disables proactive compaction.

    Attributes
    ----------
    kswapd_running : bool
        Set by the simulated kernel; proactive compaction backs off while True.
    events : list of dict
        One row per piece of work (``time_ns``, ``event`` "wake" or "proactive",
        ``order``, ``result``, ``score_before``, ``score_after`` and the counters it added);
        with ``log_limit`` only the most recent ``log_limit`` rows are kept.
    passes : int
        Pieces of work done (every row ever recorded).

    It is a daemon of :mod:`thpbench.kernel.clock`: ``next_wakeup_ns()`` (the pending
    wakeup or the next proactive check), ``run_until(t_ns)`` (then ``on_work(rows)``,
    the simulated kernel's accounting), ``pause()``/``resume()``.
    """

    name = "kcompactd"
    clock_priority = 2          # at the same instant: after khugepaged and a sample

    def __init__(self, allocator, *, state=None, book=None, compaction_proactiveness=20, extfrag_threshold=500,
                 wmark_min_pages=0, wmark_low_pages=None, start_ns=0, on_work=None, log_limit=None):
        self.allocator = _allocator(allocator)
        self.state = _state(allocator, state)
        self.book = _book(allocator, book)
        self.compaction_proactiveness = _int(compaction_proactiveness, "compaction_proactiveness", 0, 100)
        self.wmark_min_pages, self.wmark_low_pages, self.extfrag_threshold = _wmarks(
            wmark_min_pages, wmark_low_pages, extfrag_threshold)
        if on_work is not None and not callable(on_work):
            raise TypeError(f"on_work must be callable, got {type(on_work).__name__}")
        if log_limit is not None:
            log_limit = _int(log_limit, "log_limit", 0, 2**62)
        self.kswapd_running = False
        self.kcompactd_max_order = 0
        self.passes = 0
        self._woken = False
        self._wake_ns = None
        self._paused = False
        self._on_work = on_work
        self._log_limit = log_limit
        self.default_timeout_ns = HPAGE_FRAG_CHECK_INTERVAL_MSEC * 1_000_000
        self.now_ns = int(start_ns)
        self.next_check_ns = self.now_ns + self.default_timeout_ns
        self.events = []

    def configure(self, *, compaction_proactiveness=None, extfrag_threshold=None, wmark_min_pages=None,
                  wmark_low_pages=None) -> None:
        """Set the tunables the daemon reads (``vm.compaction_proactiveness``,
        ``vm.extfrag_threshold``, the zone's min and low watermarks); None keeps one.
        Validated first: a bad value raises and changes nothing."""
        cp = self.compaction_proactiveness if compaction_proactiveness is None else \
            _int(compaction_proactiveness, "compaction_proactiveness", 0, 100)
        lo, lw, t = _wmarks(self.wmark_min_pages if wmark_min_pages is None else wmark_min_pages,
                            self.wmark_low_pages if wmark_low_pages is None else wmark_low_pages,
                            self.extfrag_threshold if extfrag_threshold is None else extfrag_threshold)
        self.compaction_proactiveness = cp
        self.wmark_min_pages, self.wmark_low_pages, self.extfrag_threshold = lo, lw, t

    # -- the daemon protocol (thpbench.kernel.clock) --------------------------------------------
    def next_wakeup_ns(self):
        """The time of the pending wakeup or the next proactive check (None: paused, or
        nothing pending and proactive compaction off)."""
        if self._paused:
            return None
        if self._woken:
            w = self._wake_ns
            return min(w, self.next_check_ns) if self.compaction_proactiveness else w
        return self.next_check_ns if self.compaction_proactiveness else None

    def run_until(self, t_ns) -> list:
        """Run the daemon up to ``t_ns`` (not before its own clock); returns the new rows.
        The kernel's ``on_work`` callback sees them (it accounts kcompactd's CPU time)."""
        if self._paused:
            return []
        rows = self.run(max(int(t_ns), self.now_ns))
        if self._on_work is not None:
            self._on_work(rows)
        return rows

    def pause(self) -> None:
        """Stop running (kthread_park): wakeups are remembered, nothing runs until resume()."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    # -- wakeups ----------------------------------------------------------------------------
    def _node_suitable(self):
        # kcompactd_node_suitable()
        a, o = self.allocator, self.kcompactd_max_order
        m = _zone_metrics(a, o, self.wmark_min_pages, self.wmark_low_pages, self.extfrag_threshold,
                          self.wmark_min_pages)
        if m[3]:                # the allocation can already succeed
            return False
        return bool(m[2])

    def wakeup(self, order, now_ns=None):
        """``wakeup_kcompactd(pgdat, order, ...)``; returns True if the daemon was woken."""
        o = _int(order, "order", 0, self.allocator.max_order)
        if o == 0:
            return False
        if self.kcompactd_max_order < o:
            self.kcompactd_max_order = o
        if self._woken or not self._node_suitable():
            return False
        self._woken = True
        # the daemon runs at the wakeup's time (now_ns, default the daemon's clock) on the next run()
        self._wake_ns = self.now_ns if now_ns is None else max(int(now_ns), self.now_ns)
        return True

    # -- the daemon ----------------------------------------------------------------------
    def _compact(self, **kw):
        return compact_zone(self.allocator, book=self.book, state=self.state, direct=False,
                            wmark_min_pages=self.wmark_min_pages, wmark_low_pages=self.wmark_low_pages,
                            extfrag_threshold=self.extfrag_threshold, **kw)

    def _record(self, t, event, order, out, before):
        row = {"time_ns": t, "event": event, "order": order, "result": out["result"] if out else None,
               "score_before": before, "score_after": fragmentation_score(self.allocator)}
        for k in COMPACT_STAT_NAMES:
            row[k] = out[k] if out else 0
        self.passes += 1
        self.events.append(row)
        return row

    def do_work(self, t=None):
        """``kcompactd_do_work()`` now (the simulated kernel may call it directly)."""
        t = self.now_ns if t is None else t
        st, a, order = self.state, self.allocator, self.kcompactd_max_order
        st._count("compact_daemon_wake")
        before = fragmentation_score(a)
        out = None
        if order > 0 and not st._deferred(order):
            m = _zone_metrics(a, order, self.wmark_min_pages, self.wmark_low_pages, self.extfrag_threshold,
                              self.wmark_min_pages)
            if not m[3] and m[2]:
                out = self._compact(order=order, mode="sync_light", whole_zone=False, ignore_skip_hint=False)
                if out["result"] == "COMPACT_SUCCESS":
                    st._defer_reset(order, False)
                elif out["result"] in ("COMPACT_PARTIAL_SKIPPED", "COMPACT_COMPLETE"):
                    st._defer(order)
                st._count("compact_daemon_migrate_scanned", out["total_migrate_scanned"])
                st._count("compact_daemon_free_scanned", out["total_free_scanned"])
        self.kcompactd_max_order = 0
        return self._record(t, "wake", order, out, before)

    def should_proactive_compact(self):
        """``should_proactive_compact_node()``."""
        if not self.compaction_proactiveness or self.kswapd_running:
            return False
        return fragmentation_score(self.allocator) > fragmentation_score_wmark(self.compaction_proactiveness, False)

    def proactive_compact(self, t=None):
        """``proactive_compact_node()`` now: sync-light, whole zone, until the low mark."""
        t = self.now_ns if t is None else t
        before = fragmentation_score(self.allocator)
        out = self._compact(order=-1, mode="sync_light", whole_zone=True, ignore_skip_hint=True, proactive=True,
                            compaction_proactiveness=self.compaction_proactiveness)
        self.state._count("compact_daemon_migrate_scanned", out["total_migrate_scanned"])
        self.state._count("compact_daemon_free_scanned", out["total_free_scanned"])
        return self._record(t, "proactive", -1, out, before)

    def run(self, now_ns):
        """Run the daemon's loop up to simulated time ``now_ns``; returns the new event rows."""
        now_ns = int(now_ns)
        if now_ns < self.now_ns:
            raise ValueError(f"now_ns {now_ns} is before the daemon's clock {self.now_ns}")
        first = len(self.events)
        while True:
            # the timer checks due before the pending wakeup (or before now), in time order
            limit = min(self._wake_ns, now_ns) if self._woken else now_ns
            while self.compaction_proactiveness and self.next_check_ns <= limit:
                t = self.next_check_ns
                timeout = self.default_timeout_ns
                if self.should_proactive_compact():
                    prev = fragmentation_score(self.allocator)
                    self.proactive_compact(t)
                    if fragmentation_score(self.allocator) >= prev:
                        # "Defer proactive compaction if the fragmentation score did not go down"
                        timeout = self.default_timeout_ns << COMPACT_MAX_DEFER_SHIFT
                self.next_check_ns = t + timeout
            if self._woken and self._wake_ns <= now_ns:
                t = self._wake_ns
                self._woken = False
                self.do_work(t)
                # "Reset the timeout value"
                self.next_check_ns = t + self.default_timeout_ns
                continue
            break
        self.now_ns = now_ns
        rows = self.events[first:]
        lim = self._log_limit
        if lim is not None and len(self.events) > lim:
            del self.events[:len(self.events) - lim]          # keep the most recent log_limit rows
        return rows

    @property
    def history(self):
        import pandas as pd
        return pd.DataFrame(self.events)
