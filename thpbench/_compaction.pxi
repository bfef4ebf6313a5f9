# Memory compaction (mm/compaction.c, Linux 6.18) over the buddy Zone, included by _core.pyx.
#
# The migrate scanner walks pageblocks upward from the zone start (or its cached pfn),
# isolating allocated MOVABLE blocks, COMPACT_CLUSTER_MAX pages a batch; the free
# scanner walks suitable (MOVABLE) pageblocks downward from the zone end, isolating
# free blocks onto per-order lists (6.9+: free pages stay whole, compaction_alloc()
# splits one of the smallest order that fits).  Each source moves to a target of its
# own order through the mover (see the contract in _core.pxd); what is left is freed.
#
# Simplified, and said so in the Python docstrings (thpbench/kernel/compaction.py):
# * no fast searches of the free lists (fast_isolate_freepages, fast_find_migrateblock,
#   fast_isolate_around): both scanners are linear; pageblock skip bits are kept;
# * no LRU: every allocated MOVABLE block is an isolatable LRU folio (no dirty or
#   writeback folios, no too_many_isolated throttling, no pcp drains, no lock
#   contention: COMPACT_CONTENDED only comes from migrate_pages() -ENOMEM);
# * migrate_pages(): one pass (unmap all, then move all); a mover's failure is final
#   (the kernel retries -EAGAIN up to 10 passes); a large folio with no free target of its order
#   is split if its owner agrees (the mover's split_folio) and its pieces migrate
#   after the batch, else the batch ends (-ENOMEM), as when try_split_folio() fails;
# * no capture_control: the freed block is found by __compact_finished.

from libc.stdlib cimport malloc, realloc, free as c_free
from libc.string cimport memset
import numpy as np

cdef enum:
    E_NOMEM = 12                  # migrate_pages() -> -ENOMEM: no free target

COMPACT_RESULT_NAMES = ("COMPACT_NOT_SUITABLE_ZONE", "COMPACT_SKIPPED", "COMPACT_DEFERRED",
                        "COMPACT_NO_SUITABLE_PAGE", "COMPACT_CONTINUE", "COMPACT_COMPLETE",
                        "COMPACT_PARTIAL_SKIPPED", "COMPACT_CONTENDED", "COMPACT_SUCCESS")
MIGRATE_MODE_NAMES = ("async", "sync_light", "sync")
COMPACT_STAT_NAMES = ("compact_migrate_scanned", "compact_free_scanned", "compact_isolated",
                      "compact_stall", "compact_fail", "compact_success", "compact_daemon_wake",
                      "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
                      "pgmigrate_success", "pgmigrate_fail")


# ---------------------------------------------------------------------------
# Small helpers (pageblock arithmetic, watermarks, indices)
# ---------------------------------------------------------------------------

cdef inline pfn_t pageblock_start_pfn(const Zone *z, pfn_t pfn) noexcept nogil:
    return (pfn >> z.pageblock_order) << z.pageblock_order

cdef inline pfn_t pageblock_end_pfn(const Zone *z, pfn_t pfn) noexcept nogil:
    # ALIGN(pfn + 1, pageblock_nr_pages)
    return ((pfn >> z.pageblock_order) + 1) << z.pageblock_order

cdef inline bint pageblock_aligned(const Zone *z, pfn_t pfn) noexcept nogil:
    return (pfn & (((<pfn_t>1) << z.pageblock_order) - 1)) == 0

cdef inline bint compact_scanners_met(const compact_control *cc) noexcept nogil:
    return (cc.free_pfn >> cc.zone.pageblock_order) <= (cc.migrate_pfn >> cc.zone.pageblock_order)

cdef bint zone_watermark_ok(const Zone *z, int order, int64_t mark) noexcept nogil:
    # __zone_watermark_ok() without lowmem_reserve, highatomic reserves or CMA
    cdef int64_t free_pages = z.nr_free_pages - (((<int64_t>1) << order) - 1)
    cdef int o, mt
    if free_pages <= mark:
        return False
    if order == 0:
        return True
    for o in range(order, z.max_order + 1):
        for mt in range(MIGRATE_PCPTYPES):
            if z.nr_free[o][mt] > 0:
                return True
    return False

cdef void fill_contig_page_info(const Zone *z, int order, int64_t *total, int64_t *free_pages,
                                int64_t *suitable) noexcept nogil:
    # mm/vmstat.c: fill_contig_page_info()
    cdef int o, mt
    cdef int64_t blocks
    total[0] = 0
    free_pages[0] = 0
    suitable[0] = 0
    for o in range(z.max_order + 1):
        blocks = 0
        for mt in range(NR_MIGRATETYPES):
            blocks += z.nr_free[o][mt]
        total[0] += blocks
        free_pages[0] += blocks << o
        if o >= order:
            suitable[0] += blocks << (o - order)

cdef int fragmentation_index_c(const Zone *z, int order) noexcept nogil:
    # mm/vmstat.c: __fragmentation_index(), in thousandths (-1000: a block exists)
    cdef int64_t total, free_pages, suitable
    fill_contig_page_info(z, order, &total, &free_pages, &suitable)
    if total == 0:
        return 0
    if suitable:
        return -1000
    return <int>(1000 - (1000 + free_pages * 1000 // ((<int64_t>1) << order)) // total)

cdef int extfrag_for_order(const Zone *z, int order) noexcept nogil:
    # mm/vmstat.c: extfrag_for_order(), 0..100
    cdef int64_t total, free_pages, suitable
    fill_contig_page_info(z, order, &total, &free_pages, &suitable)
    if free_pages == 0:
        return 0
    return <int>((free_pages - (suitable << order)) * 100 // free_pages)

cdef inline int fragmentation_score_zone(const Zone *z) noexcept nogil:
    # COMPACTION_HPAGE_ORDER = HPAGE_PMD_ORDER, which is pageblock_order here
    return extfrag_for_order(z, z.pageblock_order)

cdef inline int fragmentation_score_node(const Zone *z) noexcept nogil:
    # fragmentation_score_zone_weighted() summed over the node's one zone:
    # present_pages * score / (node_present_pages + 1)
    return <int>(z.nr_pages * fragmentation_score_zone(z) // (z.nr_pages + 1))

cdef bint compaction_suitable_c(const Zone *z, int order, int64_t watermark, int64_t wmark_min,
                                int64_t wmark_low, int extfrag_threshold) noexcept nogil:
    # compaction_suitable() -> __compaction_suitable() (6.15+): the caller's order-0
    # watermark plus compact_gap(order) = 2 << order (plus low - min for costly orders)
    # must be met, so that the free scanner can isolate targets; for costly orders a
    # fragmentation index at or below vm.extfrag_threshold says a failure would be for
    # lack of memory, not fragmentation: do not compact.
    cdef int fragindex
    watermark += (<int64_t>2) << order
    if order > PAGE_ALLOC_COSTLY_ORDER:
        watermark += wmark_low - wmark_min
    if not zone_watermark_ok(z, 0, watermark):
        return False
    if order > PAGE_ALLOC_COSTLY_ORDER:
        fragindex = fragmentation_index_c(z, order)
        if fragindex >= 0 and fragindex <= extfrag_threshold:
            return False
    return True


# ---------------------------------------------------------------------------
# Deferral (defer_compaction, compaction_deferred, compaction_defer_reset)
# ---------------------------------------------------------------------------

cdef void defer_compaction(CompactZoneState *zs, int order) noexcept nogil:
    zs.compact_considered = 0
    zs.compact_defer_shift += 1
    if order < zs.compact_order_failed:
        zs.compact_order_failed = order
    if zs.compact_defer_shift > COMPACT_MAX_DEFER_SHIFT:
        zs.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT

cdef bint compaction_deferred(CompactZoneState *zs, int order) noexcept nogil:
    cdef int64_t defer_limit = (<int64_t>1) << zs.compact_defer_shift
    if order < zs.compact_order_failed:
        return False
    zs.compact_considered += 1
    if zs.compact_considered >= defer_limit:
        zs.compact_considered = defer_limit
        return False
    return True

cdef void compaction_defer_reset(CompactZoneState *zs, int order, bint alloc_success) noexcept nogil:
    if alloc_success:
        zs.compact_considered = 0
        zs.compact_defer_shift = 0
    if order >= zs.compact_order_failed:
        zs.compact_order_failed = order + 1

cdef void reset_cached_positions(const Zone *z, CompactZoneState *zs) noexcept nogil:
    zs.compact_cached_migrate_pfn[0] = 0
    zs.compact_cached_migrate_pfn[1] = 0
    zs.compact_cached_free_pfn = pageblock_start_pfn(z, z.nr_pages - 1)

cdef void update_cached_migrate(compact_control *cc, pfn_t pfn) noexcept nogil:
    pfn = pageblock_end_pfn(cc.zone, pfn)
    if pfn > cc.zs.compact_cached_migrate_pfn[0]:
        cc.zs.compact_cached_migrate_pfn[0] = pfn
    if cc.mode != K_MIGRATE_ASYNC and pfn > cc.zs.compact_cached_migrate_pfn[1]:
        cc.zs.compact_cached_migrate_pfn[1] = pfn


# Pageblock skip bits (PB_migrate_skip): a pageblock where isolation recently found
# nothing is skipped until __reset_isolation_suitable() clears the bits.

cdef inline bint get_pageblock_skip(const compact_control *cc, pfn_t pfn) noexcept nogil:
    return cc.zs.pageblock_skip[pfn >> cc.zone.pageblock_order] != 0

cdef inline void set_pageblock_skip(compact_control *cc, pfn_t pfn) noexcept nogil:
    cc.zs.pageblock_skip[pfn >> cc.zone.pageblock_order] = 1

cdef inline bint isolation_suitable(const compact_control *cc, pfn_t pfn) noexcept nogil:
    if cc.ignore_skip_hint:
        return True
    return not get_pageblock_skip(cc, pfn)

cdef inline bint test_and_set_skip(compact_control *cc, pfn_t pfn) noexcept nogil:
    cdef bint skip
    if cc.ignore_skip_hint:
        return False
    skip = get_pageblock_skip(cc, pfn)
    if not skip:
        set_pageblock_skip(cc, pfn)
    return skip

cdef inline void update_pageblock_skip(compact_control *cc, pfn_t page, pfn_t pfn) noexcept nogil:
    set_pageblock_skip(cc, page)
    if pfn < cc.zs.compact_cached_free_pfn:
        cc.zs.compact_cached_free_pfn = pfn

cdef inline bint pageblock_skip_persistent(const Zone *z, pfn_t pfn) noexcept nogil:
    # a folio of pageblock order or more covers pfn (compound_head(page) order)
    cdef pfn_t h = pfn
    if not (z.frame[h].flags & (FRAME_ALLOC | FRAME_BUDDY)):
        h = find_head(z, pfn)
    return h >= 0 and (z.frame[h].flags & FRAME_ALLOC) != 0 and z.frame[h].order >= z.pageblock_order

cdef inline bint page_lru(const Zone *z, pfn_t pfn) noexcept nogil:
    # PageLRU(page): the frame belongs to an allocated MOVABLE folio
    cdef pfn_t h = pfn
    if not (z.frame[h].flags & (FRAME_ALLOC | FRAME_BUDDY)):
        h = find_head(z, pfn)
    return h >= 0 and (z.frame[h].flags & FRAME_ALLOC) != 0 and frame_mt(z, h) == MIGRATE_MOVABLE

cdef bint reset_isolation_pfn(const Zone *z, CompactZoneState *zs, pfn_t pfn, bint check_source,
                              bint check_target) noexcept nogil:
    # __reset_isolation_pfn(): clear the block's skip bit if a sample (every
    # 1 << PAGE_ALLOC_COSTLY_ORDER pages) finds an LRU page (source) or a free page (target)
    cdef pfn_t page, end_page
    if pageblock_skip_persistent(z, pfn):
        return False
    if check_source and check_target and not zs.pageblock_skip[pfn >> z.pageblock_order]:
        return True
    if not check_source and check_target and pageblock_mt(z, pfn) != MIGRATE_MOVABLE:
        return False
    page = pageblock_start_pfn(z, pfn)
    end_page = pageblock_end_pfn(z, page) - 1
    if end_page > z.nr_pages - 1:
        end_page = z.nr_pages - 1
    while True:
        if check_source and page_lru(z, page):
            zs.pageblock_skip[page >> z.pageblock_order] = 0
            return True
        if check_target and (z.frame[page].flags & FRAME_BUDDY):
            zs.pageblock_skip[page >> z.pageblock_order] = 0
            return True
        page += (<pfn_t>1) << PAGE_ALLOC_COSTLY_ORDER
        if page > end_page:
            return False

cdef void reset_isolation_suitable_c(const Zone *z, CompactZoneState *zs) noexcept nogil:
    # __reset_isolation_suitable(): after a direct compaction's scanners met, walk the
    # zone from both ends clearing skip bits, and restart the scanners at the first
    # blocks that look useful
    cdef pfn_t pbn = (<pfn_t>1) << z.pageblock_order
    cdef pfn_t migrate_pfn = 0
    cdef pfn_t free_pfn = z.nr_pages - 1
    cdef pfn_t reset_migrate = free_pfn
    cdef pfn_t reset_free = migrate_pfn
    cdef bint source_set = False, free_set = False
    if not zs.compact_blockskip_flush:
        return
    zs.compact_blockskip_flush = 0
    while migrate_pfn < free_pfn:
        if reset_isolation_pfn(z, zs, migrate_pfn, True, source_set) and migrate_pfn < reset_migrate:
            source_set = True
            reset_migrate = migrate_pfn
            zs.compact_init_migrate_pfn = reset_migrate
            zs.compact_cached_migrate_pfn[0] = reset_migrate
            zs.compact_cached_migrate_pfn[1] = reset_migrate
        if reset_isolation_pfn(z, zs, free_pfn, free_set, True) and free_pfn > reset_free:
            free_set = True
            reset_free = free_pfn
            zs.compact_init_free_pfn = reset_free
            zs.compact_cached_free_pfn = reset_free
        migrate_pfn += pbn
        free_pfn -= pbn
    # "Leave no distance if no suitable block was reset"
    if reset_migrate >= reset_free:
        zs.compact_cached_migrate_pfn[0] = migrate_pfn
        zs.compact_cached_migrate_pfn[1] = migrate_pfn
        zs.compact_cached_free_pfn = free_pfn

cdef inline bint compaction_restarting(const CompactZoneState *zs, int order) noexcept nogil:
    if order < zs.compact_order_failed:
        return False
    return (zs.compact_defer_shift == COMPACT_MAX_DEFER_SHIFT
            and zs.compact_considered >= ((<int64_t>1) << zs.compact_defer_shift))


# ---------------------------------------------------------------------------
# Isolated free pages: per-order lists through Zone.link (cc->freepages[order])
# ---------------------------------------------------------------------------

cdef inline void fp_add(compact_control *cc, pfn_t pfn, int order, bint tail) noexcept nogil:
    cdef int32_t *link = cc.zone.link
    if cc.fp_head[order] < 0:
        link[2 * pfn] = -1
        link[2 * pfn + 1] = -1
        cc.fp_head[order] = pfn
        cc.fp_tail[order] = pfn
    elif tail:                                        # list_add_tail
        link[2 * pfn] = <int32_t>cc.fp_tail[order]
        link[2 * pfn + 1] = -1
        link[2 * cc.fp_tail[order] + 1] = <int32_t>pfn
        cc.fp_tail[order] = pfn
    else:                                             # list_add
        link[2 * pfn] = -1
        link[2 * pfn + 1] = <int32_t>cc.fp_head[order]
        link[2 * cc.fp_head[order]] = <int32_t>pfn
        cc.fp_head[order] = pfn

cdef inline pfn_t fp_pop(compact_control *cc, int order) noexcept nogil:
    cdef pfn_t pfn = cc.fp_head[order]
    cdef int32_t nxt = cc.zone.link[2 * pfn + 1]
    cc.fp_head[order] = nxt
    if nxt >= 0:
        cc.zone.link[2 * nxt] = -1
    else:
        cc.fp_tail[order] = -1
    return pfn

cdef int isolate_free_page(compact_control *cc, pfn_t pfn, int order) noexcept nogil:
    # mm/page_alloc.c: __isolate_free_page(); returns pages isolated, 0 below the watermark
    cdef Zone *z = cc.zone
    cdef int mt = frame_mt(z, pfn)
    cdef pfn_t p, end
    cdef int pmt
    if mt != MIGRATE_ISOLATE:
        # "Obey watermarks as if the page was being allocated"
        if not zone_watermark_ok(z, 0, cc.wmark_min + ((<int64_t>1) << order)):
            return 0
    del_from_free_list(z, pfn, order, mt)
    z.nr_free_pages -= (<int64_t>1) << order
    if order >= z.pageblock_order - 1 and z.grouping:
        # "Set the pageblock if the isolated page is at least half of a pageblock"
        end = pfn + ((<pfn_t>1) << order) - 1
        p = pfn
        while p < end:
            pmt = pageblock_mt(z, p)
            if mt_is_mergeable(pmt) and pmt != MIGRATE_MOVABLE:
                move_freepages_block(z, pageblock_start_pfn(z, p), pmt, MIGRATE_MOVABLE)
                z.pb_mt[p >> z.pageblock_order] = MIGRATE_MOVABLE
            p += (<pfn_t>1) << z.pageblock_order
    return 1 << order

cdef int64_t release_free_list(compact_control *cc) noexcept nogil:
    # release_free_list(): give every isolated free block back; returns the highest pfn (-1: none)
    cdef int o
    cdef pfn_t pfn, high_pfn = -1
    for o in range(cc.zone.max_order + 1):
        while cc.fp_head[o] >= 0:
            pfn = fp_pop(cc, o)
            cc.zone.frame[pfn].flags = 0
            free_one_page(cc.zone, pfn, o, pageblock_mt(cc.zone, pfn), False)
            if pfn > high_pfn:
                high_pfn = pfn
    cc.nr_freepages = 0
    return high_pfn


# ---------------------------------------------------------------------------
# The free scanner (isolate_freepages, isolate_freepages_block)
# ---------------------------------------------------------------------------

cdef int64_t isolate_freepages_block(compact_control *cc, pfn_t *start_pfn, pfn_t end_pfn,
                                     int stride) noexcept nogil:
    cdef Zone *z = cc.zone
    cdef int64_t nr_scanned = 0, total_isolated = 0, isolated
    cdef pfn_t blockpfn = start_pfn[0]
    cdef int o
    cdef uint8_t fl
    while blockpfn < end_pfn:
        nr_scanned += 1
        fl = z.frame[blockpfn].flags
        if fl & FRAME_ALLOC:
            # PageCompound: skip the whole folio at once
            o = z.frame[blockpfn].order
            if o > 0:
                blockpfn += ((<pfn_t>1) << o) - 1
                nr_scanned += ((<int64_t>1) << o) - 1
        elif fl & FRAME_BUDDY:
            o = z.frame[blockpfn].order
            isolated = isolate_free_page(cc, blockpfn, o)
            if not isolated:
                break
            nr_scanned += isolated - 1
            total_isolated += isolated
            cc.nr_freepages += isolated
            fp_add(cc, blockpfn, o, True)
            if cc.nr_migratepages <= cc.nr_freepages:
                blockpfn += isolated
                break
            blockpfn += isolated - 1
        blockpfn += stride
    if blockpfn > end_pfn:
        blockpfn = end_pfn
    start_pfn[0] = blockpfn
    cc.total_free_scanned += nr_scanned
    if total_isolated:
        cc.stats.compact_isolated += total_isolated
    return total_isolated

cdef bint suitable_migration_target(compact_control *cc, pfn_t block_start) noexcept nogil:
    cdef Zone *z = cc.zone
    cdef int order = cc.order if cc.order > 0 else z.pageblock_order
    # "If the page is a large free page, then disallow migration" (6.9+: no free block
    # of the requested order or more is a target: moving into it cannot help)
    if (z.frame[block_start].flags & FRAME_BUDDY) and z.frame[block_start].order >= order:
        return False
    if cc.ignore_block_suitable:
        return True
    return pageblock_mt(z, block_start) == MIGRATE_MOVABLE

cdef void isolate_freepages(compact_control *cc) noexcept nogil:
    cdef Zone *z = cc.zone
    cdef pfn_t pbn = (<pfn_t>1) << z.pageblock_order
    cdef pfn_t isolate_start_pfn = cc.free_pfn
    cdef pfn_t block_start_pfn = pageblock_start_pfn(z, isolate_start_pfn)
    cdef pfn_t block_end_pfn = block_start_pfn + pbn
    cdef pfn_t low_pfn = pageblock_end_pfn(z, cc.migrate_pfn)
    cdef int stride = COMPACT_CLUSTER_MAX if cc.mode == K_MIGRATE_ASYNC else 1
    cdef int64_t nr_isolated
    if block_end_pfn > z.nr_pages:
        block_end_pfn = z.nr_pages
    while block_start_pfn >= low_pfn:
        # suitable for migration to, and isolation did not recently fail there
        if suitable_migration_target(cc, block_start_pfn) and isolation_suitable(cc, block_start_pfn):
            nr_isolated = isolate_freepages_block(cc, &isolate_start_pfn, block_end_pfn, stride)
            if isolate_start_pfn == block_end_pfn:
                # the full pageblock was scanned
                update_pageblock_skip(cc, block_start_pfn, block_start_pfn - pbn)
            if cc.nr_freepages >= cc.nr_migratepages:
                if isolate_start_pfn >= block_end_pfn:
                    # restart at the previous pageblock next time
                    isolate_start_pfn = block_start_pfn - pbn
                break
            elif isolate_start_pfn < block_end_pfn:
                # isolation failed early (the watermark): do not continue
                break
            if nr_isolated:
                stride = 1
            else:
                stride = stride << 1
                if stride > COMPACT_CLUSTER_MAX:
                    stride = COMPACT_CLUSTER_MAX
        block_end_pfn = block_start_pfn
        block_start_pfn -= pbn
        isolate_start_pfn = block_start_pfn
    cc.free_pfn = isolate_start_pfn


# ---------------------------------------------------------------------------
# The migrate scanner (isolate_migratepages, isolate_migratepages_block)
# ---------------------------------------------------------------------------

cdef inline bint skip_isolation_on_order(const Zone *z, int order, int target_order) noexcept nogil:
    if target_order >= 0 and order >= target_order:
        return True
    return order >= z.pageblock_order

cdef int isolate_migratepages_block(compact_control *cc, pfn_t low_pfn, pfn_t end_pfn) noexcept nogil:
    cdef Zone *z = cc.zone
    cdef int64_t nr_scanned = 0, nr_isolated = 0
    cdef bint skip_on_failure = False, skip_updated = False, aborted = False
    cdef pfn_t next_skip_pfn = 0
    cdef pfn_t valid_page = -1
    cdef uint8_t fl
    cdef int o
    cdef bint fail
    cc.migrate_pfn = low_pfn
    if cc.direct_compaction and cc.mode == K_MIGRATE_ASYNC and cc.order >= 0:
        skip_on_failure = True
        next_skip_pfn = ((low_pfn >> cc.order) + 1) << cc.order      # block_end_pfn(low_pfn, order)
    while low_pfn < end_pfn:
        if skip_on_failure and low_pfn >= next_skip_pfn:
            # the previous order-aligned block is all isolated: migrate it now
            if nr_isolated:
                break
            next_skip_pfn = ((low_pfn >> cc.order) + 1) << cc.order
        nr_scanned += 1
        # "Check if the pageblock has already been marked skipped"
        if valid_page < 0 and (pageblock_aligned(z, low_pfn) or low_pfn == 0):
            if not isolation_suitable(cc, low_pfn):
                low_pfn = end_pfn
                aborted = True
                break
            valid_page = low_pfn
        fl = z.frame[low_pfn].flags
        fail = False
        if fl & FRAME_BUDDY:
            # free: skip the whole buddy
            o = z.frame[low_pfn].order
            if o > 0:
                low_pfn += ((<pfn_t>1) << o) - 1
                nr_scanned += ((<int64_t>1) << o) - 1
        elif fl & FRAME_ALLOC:
            o = z.frame[low_pfn].order
            if o > 0 and skip_isolation_on_order(z, o, cc.order):
                low_pfn += ((<pfn_t>1) << o) - 1
                nr_scanned += ((<int64_t>1) << o) - 1
                fail = True
            elif frame_mt(z, low_pfn) != MIGRATE_MOVABLE:
                # neither on an LRU nor __PageMovable: unmovable or reclaimable (slab)
                fail = True
            else:
                # "Try get exclusive access under lock. If marked for skip, the scan is
                # aborted unless the current context is a rescan to reach the end"
                if not skip_updated and valid_page >= 0:
                    skip_updated = True
                    if test_and_set_skip(cc, valid_page) and not cc.finish_pageblock:
                        low_pfn = end_pfn
                        aborted = True
                        break
                # isolate_success: list_add(&folio->lru, &cc->migratepages)
                cc.migratepages[cc.nr_migrate_blocks] = low_pfn
                cc.nr_migrate_blocks += 1
                cc.nr_migratepages += (<int64_t>1) << o
                nr_isolated += (<int64_t>1) << o
                nr_scanned += ((<int64_t>1) << o) - 1
                low_pfn += ((<pfn_t>1) << o) - 1
                if cc.nr_migratepages >= COMPACT_CLUSTER_MAX and not cc.finish_pageblock and not cc.contended:
                    low_pfn += 1
                    break
        else:
            # a tail frame (reached by skip_on_failure's jump): folio_get_nontail_page() fails
            fail = True
        if fail and skip_on_failure:
            # we cannot form the cc->order block here: put back what this block isolated
            if nr_isolated:
                cc.nr_migratepages = 0
                cc.nr_migrate_blocks = 0
                nr_isolated = 0
            if low_pfn < next_skip_pfn:
                low_pfn = next_skip_pfn - 1
                next_skip_pfn += (<pfn_t>1) << cc.order
        low_pfn += 1
    if not aborted and low_pfn > end_pfn:
        low_pfn = end_pfn
    # isolate_abort: update the skip bit and the cached pfn once the block was scanned
    if low_pfn == end_pfn and (not nr_isolated or cc.finish_pageblock):
        if valid_page >= 0 and not skip_updated:
            set_pageblock_skip(cc, valid_page)
        update_cached_migrate(cc, low_pfn)
    cc.total_migrate_scanned += nr_scanned
    if nr_isolated:
        cc.stats.compact_isolated += nr_isolated
    cc.migrate_pfn = low_pfn
    return 0

cdef bint suitable_migration_source(compact_control *cc, pfn_t block_start) noexcept nogil:
    cdef Zone *z = cc.zone
    cdef int block_mt
    if pageblock_skip_persistent(z, block_start):
        return False
    if cc.mode != K_MIGRATE_ASYNC or not cc.direct_compaction:
        return True
    block_mt = pageblock_mt(z, block_start)
    if cc.migratetype == MIGRATE_MOVABLE:
        return block_mt == MIGRATE_MOVABLE          # is_migrate_movable(): MOVABLE or CMA
    return block_mt == cc.migratetype

cdef int isolate_migratepages(compact_control *cc) noexcept nogil:
    # returns 1 = ISOLATE_SUCCESS, 0 = ISOLATE_NONE (never ISOLATE_ABORT: no signals)
    cdef Zone *z = cc.zone
    cdef pfn_t low_pfn = cc.migrate_pfn
    cdef pfn_t block_start_pfn = pageblock_start_pfn(z, low_pfn)
    cdef pfn_t block_end_pfn = pageblock_end_pfn(z, low_pfn)
    while block_end_pfn <= cc.free_pfn:
        if (pageblock_aligned(z, low_pfn) or low_pfn == 0) and not isolation_suitable(cc, block_start_pfn):
            pass                                    # "If isolation recently failed, do not retry"
        elif not suitable_migration_source(cc, block_start_pfn):
            update_cached_migrate(cc, block_end_pfn)
        else:
            isolate_migratepages_block(cc, low_pfn, block_end_pfn)
            break
        low_pfn = block_end_pfn
        cc.migrate_pfn = low_pfn
        block_start_pfn = block_end_pfn
        block_end_pfn += (<pfn_t>1) << z.pageblock_order
    return 1 if cc.nr_migratepages else 0


# ---------------------------------------------------------------------------
# Migration (migrate_pages with compaction_alloc / compaction_free)
# ---------------------------------------------------------------------------

cdef pfn_t compaction_alloc(compact_control *cc, int order) noexcept nogil:
    cdef bint has_isolated_pages = False
    cdef int start_order
    cdef pfn_t freepage, size
    while True:
        start_order = order
        while start_order <= cc.zone.max_order and cc.fp_head[start_order] < 0:
            start_order += 1
        if start_order > cc.zone.max_order:
            if has_isolated_pages:
                return -1
            isolate_freepages(cc)
            has_isolated_pages = True
            continue
        break
    freepage = fp_pop(cc, start_order)
    size = (<pfn_t>1) << start_order
    while start_order > order:
        start_order -= 1
        size >>= 1
        fp_add(cc, freepage + size, start_order, False)
    cc.nr_freepages -= (<int64_t>1) << order
    cc.nr_migratepages -= (<int64_t>1) << order
    return freepage

cdef inline void compaction_free(compact_control *cc, pfn_t dst, int order) noexcept nogil:
    fp_add(cc, dst, order, False)
    cc.nr_freepages += (<int64_t>1) << order
    cc.nr_migratepages += (<int64_t>1) << order

cdef void trace_move(compact_control *cc, pfn_t src, pfn_t dst, int order, int rc) noexcept nogil:
    cdef int64_t *t
    cdef int64_t cap
    if not cc.want_trace:
        return
    if cc.trace_len == cc.trace_cap:
        cap = 1024 if cc.trace_cap == 0 else 2 * cc.trace_cap
        t = <int64_t *>realloc(cc.trace, <size_t>cap * 4 * sizeof(int64_t))
        if t == NULL:
            cc.want_trace = 0          # out of memory: stop tracing, keep compacting
            return
        cc.trace = t
        cc.trace_cap = cap
    t = cc.trace + 4 * cc.trace_len
    t[0] = src
    t[1] = dst
    t[2] = order
    t[3] = rc
    cc.trace_len += 1

cdef bint try_split_folio(compact_control *cc, pfn_t src, int o) noexcept nogil:
    # try_split_folio() -> split_folio_to_list(): ask the owner, then split_page()
    cdef Zone *z = cc.zone
    cdef uint8_t fl = z.frame[src].flags
    cdef pfn_t i
    if cc.split_folio != NULL:
        if cc.split_folio(cc.mover_ctx, src, o) != 0:
            return False
    elif cc.migrate_folio != NULL:
        return False
    for i in range(src, src + ((<pfn_t>1) << o)):
        z.frame[i].flags = fl
        z.frame[i].order = 0
        cc.split_folios[cc.nr_split] = i
        cc.nr_split += 1
    z.nr_alloc += ((<int64_t>1) << o) - 1
    return True

cdef int migrate_pages_batch(compact_control *cc, const pfn_t *folios, int64_t n, bint may_split) noexcept nogil:
    # migrate_pages_batch(): first "unmap" every folio, taking a target for each from
    # compaction_alloc() in list order (-ENOMEM: a large folio is split if its owner
    # agrees, else unmapping stops and what was unmapped is moved); then move each
    # folio to its target (the mover); last, failed folios give their targets back
    # (compaction_free), in list order.  One pass: a mover's failure is final.
    # Returns 0, E_NOMEM, or 1 when a folio failed to move or was split.
    cdef Zone *z = cc.zone
    cdef int64_t i, k = 0
    cdef pfn_t src, dst
    cdef int o, rc, mt, err = 0
    for i in range(n):
        src = folios[i]
        o = z.frame[src].order
        dst = compaction_alloc(cc, o)
        if dst < 0:
            if may_split and o > 0 and try_split_folio(cc, src, o):
                err = 1                     # nr_failed++ even when the split succeeds
                continue
            err = E_NOMEM                   # "goto move": move what was unmapped, then stop
            break
        cc.batch_src[k] = src
        cc.batch_dst[k] = dst
        k += 1
    for i in range(k):
        src = cc.batch_src[i]
        dst = cc.batch_dst[i]
        o = z.frame[src].order
        rc = 0
        if cc.migrate_folio != NULL:
            rc = cc.migrate_folio(cc.mover_ctx, src, dst, o)
        trace_move(cc, src, dst, o, rc)
        if rc == 0:
            mt = frame_mt(z, src)
            z.frame[dst].flags = FRAME_ALLOC | (mt << FRAME_MT_SHIFT)
            z.frame[dst].order = o
            z.nr_alloc += 1
            zone_free(z, src, o)
            cc.stats.pgmigrate_success += (<int64_t>1) << o
        else:
            cc.batch_dst[i] = -1 - dst      # failed: the target goes back below
            if err == 0:
                err = 1
    for i in range(k):
        if cc.batch_dst[i] < 0:
            dst = -1 - cc.batch_dst[i]
            o = z.frame[cc.batch_src[i]].order
            compaction_free(cc, dst, o)
            cc.stats.pgmigrate_fail += (<int64_t>1) << o
    return err

cdef int migrate_pages(compact_control *cc) noexcept nogil:
    # migrate_pages(&cc->migratepages, compaction_alloc, compaction_free, ...): the list
    # is walked from its head, i.e. the last isolated first; the order-0 pieces of
    # folios split for lack of a target follow in a batch of their own, unless the
    # first batch ended with -ENOMEM ("Failure isn't counted": its result is ignored).
    cdef int64_t i, n = cc.nr_migrate_blocks
    cdef int err
    cdef pfn_t t
    for i in range(n // 2):                 # list order: reverse of isolation order
        t = cc.migratepages[i]
        cc.migratepages[i] = cc.migratepages[n - 1 - i]
        cc.migratepages[n - 1 - i] = t
    cc.nr_split = 0
    err = migrate_pages_batch(cc, cc.migratepages, n, True)
    if err != E_NOMEM and cc.nr_split:
        migrate_pages_batch(cc, cc.split_folios, cc.nr_split, False)
    cc.nr_migrate_blocks = 0
    cc.nr_split = 0
    return err


# ---------------------------------------------------------------------------
# compact_zone and __compact_finished
# ---------------------------------------------------------------------------

cdef int compact_finished(compact_control *cc) noexcept nogil:
    cdef Zone *z = cc.zone
    cdef int o, ret
    if compact_scanners_met(cc):
        # "Let the next compaction start anew"
        reset_cached_positions(z, cc.zs)
        if cc.direct_compaction:
            cc.zs.compact_blockskip_flush = 1
        return COMPACT_COMPLETE if cc.whole_zone else COMPACT_PARTIAL_SKIPPED
    if cc.proactive_compaction:
        ret = COMPACT_CONTINUE if fragmentation_score_zone(z) > cc.proactive_wmark_low else COMPACT_SUCCESS
        return COMPACT_CONTENDED if cc.contended else ret
    if cc.order < 0:
        return COMPACT_CONTINUE                     # is_via_compact_memory()
    # "Always finish scanning a pageblock to reduce the possibility of fallbacks"
    if not pageblock_aligned(z, cc.migrate_pfn):
        return COMPACT_CONTINUE
    for o in range(cc.order, z.max_order + 1):
        if z.nr_free[o][cc.migratetype] > 0:
            return COMPACT_SUCCESS
        if find_suitable_fallback(z, o, cc.migratetype, True) >= 0:
            return COMPACT_SUCCESS
    # COMPACT_NO_SUITABLE_PAGE becomes COMPACT_CONTINUE in compact_finished()
    return COMPACT_CONTENDED if cc.contended else COMPACT_CONTINUE

cdef int compact_zone_c(compact_control *cc) noexcept nogil:
    """compact_zone(): cc set up by compact_control_init() plus the caller's flags,
    watermarks and mover; returns a COMPACT_* result.  Counters go to cc.stats, the
    cached positions to cc.zs; cc.total_*_scanned hold this run's scan counts."""
    cdef Zone *z = cc.zone
    cdef CompactZoneState *zs = cc.zs
    cdef pfn_t end_pfn = z.nr_pages
    cdef pfn_t last_migrated_pfn, iteration_start_pfn, free_pfn, high
    cdef bint sync = cc.mode != K_MIGRATE_ASYNC
    cdef bint update_cached, aborted
    cdef int ret, err, o, isolated
    cc.total_migrate_scanned = 0
    cc.total_free_scanned = 0
    cc.nr_migratepages = 0
    cc.nr_freepages = 0
    cc.nr_migrate_blocks = 0
    for o in range(NR_ORDERS_MAX):
        cc.fp_head[o] = -1
        cc.fp_tail[o] = -1
    if cc.order >= 0:
        # "Allocation can already succeed, nothing to do"
        if zone_watermark_ok(z, cc.order, cc.alloc_wmark):
            return COMPACT_SUCCESS
        # "Compaction is likely to fail"
        if not compaction_suitable_c(z, cc.order, cc.alloc_wmark, cc.wmark_min, cc.wmark_low,
                                     cc.extfrag_threshold):
            return COMPACT_SKIPPED
    # "Clear pageblock skip if there were failures recently and compaction is about to
    # be retried after being deferred"
    if compaction_restarting(zs, cc.order):
        reset_isolation_suitable_c(z, zs)
    if cc.whole_zone:
        cc.migrate_pfn = 0
        cc.free_pfn = pageblock_start_pfn(z, end_pfn - 1)
    else:
        cc.migrate_pfn = zs.compact_cached_migrate_pfn[1 if sync else 0]
        cc.free_pfn = zs.compact_cached_free_pfn
        if cc.free_pfn < 0 or cc.free_pfn >= end_pfn:
            cc.free_pfn = pageblock_start_pfn(z, end_pfn - 1)
            zs.compact_cached_free_pfn = cc.free_pfn
        if cc.migrate_pfn < 0 or cc.migrate_pfn >= end_pfn:
            cc.migrate_pfn = 0
            zs.compact_cached_migrate_pfn[0] = 0
            zs.compact_cached_migrate_pfn[1] = 0
        if cc.migrate_pfn <= zs.compact_init_migrate_pfn:
            cc.whole_zone = 1
    # The kernel marks "none" with pfn 0, never in a compactable zone; here pfn 0 is, so -1.
    last_migrated_pfn = -1
    update_cached = (not sync) and zs.compact_cached_migrate_pfn[0] == zs.compact_cached_migrate_pfn[1]
    aborted = False
    while True:
        ret = compact_finished(cc)
        if ret != COMPACT_CONTINUE:
            break
        iteration_start_pfn = cc.migrate_pfn
        # "Avoid multiple rescans of the same pageblock"
        cc.finish_pageblock = 0
        if last_migrated_pfn >= 0 and (pageblock_start_pfn(z, last_migrated_pfn)
                                       == pageblock_start_pfn(z, iteration_start_pfn)):
            cc.finish_pageblock = 1
        while True:                                 # rescan:
            isolated = isolate_migratepages(cc)
            if not isolated:
                if update_cached:
                    zs.compact_cached_migrate_pfn[1] = zs.compact_cached_migrate_pfn[0]
                break                               # goto check_drain
            update_cached = False
            last_migrated_pfn = pageblock_start_pfn(z, cc.migrate_pfn - 1)
            err = migrate_pages(cc)
            cc.nr_migratepages = 0
            if err:
                if err == E_NOMEM and not compact_scanners_met(cc):
                    ret = COMPACT_CONTENDED         # goto out
                    aborted = True
                    break
                if (not pageblock_aligned(z, cc.migrate_pfn) and not cc.ignore_skip_hint
                        and not cc.finish_pageblock and cc.mode < K_MIGRATE_SYNC):
                    cc.finish_pageblock = 1
                    if cc.order == z.pageblock_order:
                        last_migrated_pfn = -1
                    continue                        # goto rescan
            break
        if aborted:
            break
        # check_drain: nothing sits on pcp lists here; only the bookkeeping remains
        if cc.order > 0 and last_migrated_pfn >= 0:
            if last_migrated_pfn < ((cc.migrate_pfn >> cc.order) << cc.order):
                last_migrated_pfn = -1
    # out: release the isolated free pages; the free scanner restarts at the highest
    high = release_free_list(cc)
    if high >= 0:
        free_pfn = pageblock_start_pfn(z, high)
        # "Only go back, not forward"
        if free_pfn > zs.compact_cached_free_pfn:
            zs.compact_cached_free_pfn = free_pfn
    cc.nr_freepages = 0
    cc.stats.compact_migrate_scanned += cc.total_migrate_scanned
    cc.stats.compact_free_scanned += cc.total_free_scanned
    return ret


cdef int compact_control_init(compact_control *cc, Zone *z, CompactZoneState *zs, CompactStats *stats,
                              int order, int mode, int migratetype) noexcept nogil:
    """Zero cc and set it up for one compact_zone_c() call; -1 if out of memory.

    The caller then sets the flags (whole_zone, direct_compaction, ...), the watermarks
    and the mover (migrate_folio, split_folio, mover_ctx), runs compact_zone_c(cc) and
    always calls compact_control_release(cc).  Defaults: no watermarks, threshold 500,
    proactive low mark 80 (compaction_proactiveness 20), no mover."""
    memset(cc, 0, sizeof(compact_control))
    cc.zone = z
    cc.zs = zs
    cc.stats = stats
    cc.order = order
    cc.mode = mode
    cc.migratetype = migratetype
    cc.extfrag_threshold = 500
    cc.proactive_wmark_low = 80
    cc.migrate_cap = ((<int64_t>1) << z.pageblock_order) + 1
    cc.migratepages = <pfn_t *>malloc(<size_t>cc.migrate_cap * sizeof(pfn_t))
    cc.split_folios = <pfn_t *>malloc(<size_t>cc.migrate_cap * sizeof(pfn_t))
    cc.batch_src = <pfn_t *>malloc(<size_t>cc.migrate_cap * sizeof(pfn_t))
    cc.batch_dst = <pfn_t *>malloc(<size_t>cc.migrate_cap * sizeof(pfn_t))
    if cc.migratepages == NULL or cc.split_folios == NULL or cc.batch_src == NULL or cc.batch_dst == NULL:
        compact_control_release(cc)
        return -1
    return 0

cdef void compact_control_release(compact_control *cc) noexcept nogil:
    c_free(cc.migratepages)
    c_free(cc.split_folios)
    c_free(cc.batch_src)
    c_free(cc.batch_dst)
    c_free(cc.trace)
    cc.migratepages = NULL
    cc.split_folios = NULL
    cc.batch_src = NULL
    cc.batch_dst = NULL
    cc.trace = NULL


# ---------------------------------------------------------------------------
# The PageBook mover
# ---------------------------------------------------------------------------

cdef int pagebook_migrate_folio(void *ctx, pfn_t src, pfn_t dst, int order) noexcept nogil:
    """Move the owner and the content of 2**order frames from src to dst.

    Fails (returns 1, nothing changed) when any frame of src is pinned; rewrites the
    owner's slot (slots[owner] = dst) when a slots array is attached."""
    cdef PageBookC *b = <PageBookC *>ctx
    cdef pfn_t n = (<pfn_t>1) << order
    cdef pfn_t i
    cdef int64_t owner
    for i in range(n):
        if b.pinned[src + i]:
            return 1
    owner = b.owner[src]
    for i in range(n):
        b.owner[dst + i] = b.owner[src + i]
        b.content[dst + i] = b.content[src + i]
        b.owner[src + i] = -1
        b.content[src + i] = 0
    if b.slots != NULL and 0 <= owner < b.nr_slots and b.slots[owner] == src:
        b.slots[owner] = dst
    return 0


cdef int pagebook_split_folio(void *ctx, pfn_t head, int order) noexcept nogil:
    """Split a folio: every frame keeps its owner and content.  Refused (1) when a
    slots array is attached, since a slot names one block; or when a frame is pinned."""
    cdef PageBookC *b = <PageBookC *>ctx
    cdef pfn_t i
    if b.slots != NULL:
        return 1
    for i in range(head, head + ((<pfn_t>1) << order)):
        if b.pinned[i]:
            return 1
    return 0


# ---------------------------------------------------------------------------
# The Python face of the core part (thpbench/kernel/compaction.py wraps it)
# ---------------------------------------------------------------------------

cdef class CompactionState:
    """The compaction fields of a zone and the vmstat events of compaction.

    Cached scanner positions (``compact_cached_migrate_pfn[2]``,
    ``compact_cached_free_pfn``), deferral (``compact_considered``,
    ``compact_defer_shift``, ``compact_order_failed``) and the counters.  One per
    allocator; pass it to every compaction of that allocator.
    """

    def __cinit__(self, allocator):
        if not isinstance(allocator, BuddyAllocator):
            raise TypeError(f"allocator must be a BuddyAllocator, got {type(allocator).__name__}")
        cdef BuddyAllocator a = allocator
        memset(&self.zs, 0, sizeof(CompactZoneState))
        memset(&self.stats, 0, sizeof(CompactStats))
        self.nr_pages = a.z.nr_pages
        reset_cached_positions(&a.z, &self.zs)
        self.zs.compact_init_free_pfn = self.zs.compact_cached_free_pfn
        self.pageblock_skip = np.zeros(a.z.nr_pageblocks, dtype=np.uint8)
        cdef uint8_t[::1] sk = self.pageblock_skip
        self.zs.pageblock_skip = &sk[0]

    def __reduce__(self):
        raise TypeError("CompactionState cannot be pickled")

    def counters(self):
        """The vmstat events so far: compact_* and pgmigrate_* (dict)."""
        s = self.stats
        return {"compact_migrate_scanned": s.compact_migrate_scanned,
                "compact_free_scanned": s.compact_free_scanned,
                "compact_isolated": s.compact_isolated,
                "compact_stall": s.compact_stall,
                "compact_fail": s.compact_fail,
                "compact_success": s.compact_success,
                "compact_daemon_wake": s.compact_daemon_wake,
                "compact_daemon_migrate_scanned": s.compact_daemon_migrate_scanned,
                "compact_daemon_free_scanned": s.compact_daemon_free_scanned,
                "pgmigrate_success": s.pgmigrate_success,
                "pgmigrate_fail": s.pgmigrate_fail}

    def zone_fields(self):
        """The struct zone fields (dict): cached pfns and deferral state."""
        return {"compact_cached_free_pfn": self.zs.compact_cached_free_pfn,
                "compact_cached_migrate_pfn": (self.zs.compact_cached_migrate_pfn[0],
                                               self.zs.compact_cached_migrate_pfn[1]),
                "compact_init_migrate_pfn": self.zs.compact_init_migrate_pfn,
                "compact_init_free_pfn": self.zs.compact_init_free_pfn,
                "compact_considered": self.zs.compact_considered,
                "compact_defer_shift": self.zs.compact_defer_shift,
                "compact_order_failed": self.zs.compact_order_failed,
                "compact_blockskip_flush": bool(self.zs.compact_blockskip_flush)}

    def reset_isolation_suitable(self, allocator):
        """``reset_isolation_suitable()``, as kswapd calls it before it sleeps: if a
        direct compaction's scanners met since (``compact_blockskip_flush``), clear the
        skip bits of pageblocks that look useful and move the cached scanner positions
        to the first of them.  Returns True if it ran."""
        if not isinstance(allocator, BuddyAllocator) or (<BuddyAllocator>allocator).z.nr_pages != self.nr_pages:
            raise ValueError("allocator must be the BuddyAllocator this state belongs to")
        if not self.zs.compact_blockskip_flush:
            return False
        reset_isolation_suitable_c(&(<BuddyAllocator>allocator).z, &self.zs)
        return True

    def _set_blockskip_flush(self, bint flush):
        self.zs.compact_blockskip_flush = flush

    # deferral, for the Python callers (try_to_compact_pages, kcompactd)
    def _deferred(self, int order):
        return compaction_deferred(&self.zs, order)

    def _defer(self, int order):
        defer_compaction(&self.zs, order)

    def _defer_reset(self, int order, bint alloc_success):
        compaction_defer_reset(&self.zs, order, alloc_success)

    def _count(self, str name, int64_t delta=1):
        if name == "compact_stall":
            self.stats.compact_stall += delta
        elif name == "compact_fail":
            self.stats.compact_fail += delta
        elif name == "compact_success":
            self.stats.compact_success += delta
        elif name == "compact_daemon_wake":
            self.stats.compact_daemon_wake += delta
        elif name == "compact_daemon_migrate_scanned":
            self.stats.compact_daemon_migrate_scanned += delta
        elif name == "compact_daemon_free_scanned":
            self.stats.compact_daemon_free_scanned += delta
        else:
            raise ValueError(f"unknown counter {name!r}")


cdef class PageBook:
    """Who owns each frame and what it holds: a mover for compaction without page tables.

    Per frame: ``owner`` (int64, -1 none; for :class:`~thpbench.workloads.AllocationChurn`
    the slot index), ``content`` (uint64, a value per page, as the kernel selftests'
    validate_memory writes and re-reads) and ``pinned`` (uint8; a pinned page cannot
    migrate, as an extra reference makes migrate_folio_move fail).  All three are
    writable numpy arrays.

    Keeping it right: compaction keeps it right itself (owner and content move with
    the page; an attached ``slots`` array gets slot -> new pfn).  Anything else that
    allocates or frees (``alloc``/``free``/``run()``, a churn step) changes the frames
    behind its back: call :meth:`track` afterwards, which rebuilds ``owner`` from a
    slots array (slot -> head pfn) and attaches it.  ``AllocationChurn(book=...)``
    does so after each of its steps.  Content is not rebuilt: a frame that changes
    owner in :meth:`track` gets content 0, as a freshly zeroed page.
    """

    def __cinit__(self, allocator, slots=None):
        if not isinstance(allocator, BuddyAllocator):
            raise TypeError(f"allocator must be a BuddyAllocator, got {type(allocator).__name__}")
        cdef BuddyAllocator a = allocator
        cdef int64_t n = a.z.nr_pages
        self.allocator = allocator
        self.owner = np.full(n, -1, dtype=np.int64)
        self.content = np.zeros(n, dtype=np.uint64)
        self.pinned = np.zeros(n, dtype=np.uint8)
        cdef int64_t[::1] ov = self.owner
        cdef uint64_t[::1] cv = self.content
        cdef uint8_t[::1] pv = self.pinned
        self.c.nr_pages = n
        self.c.owner = &ov[0]
        self.c.content = &cv[0]
        self.c.pinned = &pv[0]
        self.c.slots = NULL
        self.c.nr_slots = 0
        self.slots = None
        if slots is not None:
            self.track(slots)

    def __reduce__(self):
        raise TypeError("PageBook cannot be pickled")

    @property
    def nr_pages(self):
        return self.c.nr_pages

    def track(self, slots):
        """Rebuild ``owner`` from ``slots`` (int64 slot -> head pfn, -1 empty) and attach it.

        Every frame of the allocated block at ``slots[s]`` gets owner ``s``; every other
        frame -1.  Frames whose owner changes get content 0.  Raises ValueError if a
        slot names a pfn that is not the head of an allocated block or two slots name
        the same block.
        """
        if not (isinstance(slots, np.ndarray) and slots.dtype == np.int64 and slots.ndim == 1
                and slots.flags.c_contiguous and slots.flags.writeable):
            raise TypeError("slots must be a writeable contiguous one-dimensional int64 numpy array")
        cdef BuddyAllocator a = self.allocator
        cdef Zone *z = &a.z
        cdef int64_t[::1] sv = slots
        cdef int64_t[::1] ov = self.owner
        cdef uint64_t[::1] cv = self.content
        new_owner = np.full(self.c.nr_pages, -1, dtype=np.int64)
        cdef int64_t[::1] nv = new_owner
        cdef Py_ssize_t s, ns = sv.shape[0]
        cdef pfn_t p, i, n
        cdef int64_t bad = -1, dup = -1
        with nogil:
            for s in range(ns):
                p = sv[s]
                if p < 0:
                    continue
                if p >= z.nr_pages or not (z.frame[p].flags & FRAME_ALLOC):
                    bad = s
                    break
                if nv[p] >= 0:
                    dup = s
                    break
                n = (<pfn_t>1) << z.frame[p].order
                for i in range(p, p + n):
                    nv[i] = s
            if bad < 0 and dup < 0:
                for i in range(z.nr_pages):
                    if nv[i] != ov[i]:
                        cv[i] = 0
                        ov[i] = nv[i]
        if bad >= 0:
            raise ValueError(f"slot {bad} holds pfn {slots[bad]}, which is not the head of an allocated block")
        if dup >= 0:
            raise ValueError(f"slot {dup} holds pfn {slots[dup]}, already held by slot {new_owner[slots[dup]]}")
        self.slots = slots
        self.c.slots = &sv[0] if ns > 0 else NULL
        self.c.nr_slots = ns

    def write(self, pfn, value):
        """content[pfn] = value (a page's data)."""
        self.content[_int_arg(pfn, "pfn", 0, self.c.nr_pages - 1)] = value

    def read(self, pfn):
        return int(self.content[_int_arg(pfn, "pfn", 0, self.c.nr_pages - 1)])

    def check(self):
        """Verify the book against its allocator; raise InvariantError naming the first break.

        Every owned or pinned frame lies in an allocated block; all frames of a block
        have one owner; with slots attached, slot s holds the head pfn of the block whose
        frames say owner s, and every live slot's block is owned by s.
        """
        cdef BuddyAllocator a = self.allocator
        cdef Zone *z = &a.z
        cdef int64_t[::1] ov = self.owner
        cdef uint8_t[::1] pv = self.pinned
        cdef pfn_t pfn = 0, i, end, p
        cdef int64_t o
        cdef Py_ssize_t s
        if a.z.nr_pages != self.c.nr_pages:
            raise InvariantError(f"book has {self.c.nr_pages} frames, allocator {a.z.nr_pages}")
        while pfn < z.nr_pages:
            end = pfn + ((<pfn_t>1) << z.frame[pfn].order) if (z.frame[pfn].flags & (FRAME_BUDDY | FRAME_ALLOC)) else pfn + 1
            if z.frame[pfn].flags & FRAME_ALLOC:
                o = ov[pfn]
                for i in range(pfn, end):
                    if ov[i] != o:
                        raise InvariantError(f"frames of the block at pfn {pfn} have owners {o} and {ov[i]} (pfn {i})")
                if o >= 0 and self.c.slots != NULL:
                    if o >= self.c.nr_slots or self.c.slots[o] != pfn:
                        raise InvariantError(f"block at pfn {pfn} is owned by slot {o}, but that slot holds "
                                             f"{self.c.slots[o] if o < self.c.nr_slots else 'nothing'}")
            else:
                for i in range(pfn, end):
                    if ov[i] >= 0:
                        raise InvariantError(f"free pfn {i} has owner {ov[i]}")
                    if pv[i]:
                        raise InvariantError(f"free pfn {i} is pinned")
            pfn = end
        if self.c.slots != NULL:
            for s in range(self.c.nr_slots):
                p = self.c.slots[s]
                if p >= 0 and (p >= z.nr_pages or ov[p] != s):
                    raise InvariantError(f"slot {s} holds pfn {p}, whose owner is "
                                         f"{ov[p] if 0 <= p < z.nr_pages else 'out of range'}")
        return True


def _compact_zone(BuddyAllocator allocator, CompactionState state, object book, int order, int mode,
                  int migratetype, bint whole_zone, bint direct_compaction, bint proactive_compaction,
                  bint ignore_skip_hint, bint ignore_block_suitable, int64_t wmark_min, int64_t wmark_low,
                  int64_t alloc_wmark, int extfrag_threshold, int proactive_wmark_low, bint trace):
    """compact_zone() on the allocator (validated by thpbench.compaction).

    Returns (result, stats delta dict, trace array (n, 4) int64 or None, total_migrate_scanned,
    total_free_scanned)."""
    cdef compact_control cc
    cdef int ret
    before = state.counters()
    if compact_control_init(&cc, &allocator.z, &state.zs, &state.stats, order, mode, migratetype) != 0:
        raise MemoryError("could not allocate the migrate lists")
    cc.whole_zone = whole_zone
    cc.direct_compaction = direct_compaction
    cc.proactive_compaction = proactive_compaction
    cc.ignore_skip_hint = ignore_skip_hint
    cc.ignore_block_suitable = ignore_block_suitable
    cc.wmark_min = wmark_min
    cc.wmark_low = wmark_low
    cc.alloc_wmark = alloc_wmark
    cc.extfrag_threshold = extfrag_threshold
    cc.proactive_wmark_low = proactive_wmark_low
    cc.want_trace = trace
    cdef bint mm_mover = isinstance(book, MMCore)
    if isinstance(book, PageBook):
        cc.migrate_folio = pagebook_migrate_folio
        cc.split_folio = pagebook_split_folio
        cc.mover_ctx = &(<PageBook>book).c
    elif mm_mover:
        # the simulated kernel's mover (_migrate.pxi)
        mm_set_mover(&cc, <MMCore>book)
    elif book is not None:
        raise TypeError(f"book must be a PageBook or an MMCore, got {type(book).__name__}")
    try:
        with nogil:
            ret = compact_zone_c(&cc)
        if mm_mover:
            mm_free_split_pieces(<MMCore>book)
        out_trace = None
        if trace:
            out_trace = np.empty((cc.trace_len, 4), dtype=np.int64)
            if cc.trace_len:
                out_trace[:] = np.asarray(<int64_t[:cc.trace_len * 4]>cc.trace).reshape(cc.trace_len, 4)
    finally:
        compact_control_release(&cc)
    after = state.counters()
    delta = {k: after[k] - before[k] for k in COMPACT_STAT_NAMES}
    return ret, delta, out_trace, cc.total_migrate_scanned, cc.total_free_scanned


def _zone_metrics(BuddyAllocator allocator, int order, int64_t wmark_min, int64_t wmark_low,
                  int extfrag_threshold, int64_t alloc_wmark):
    """(fragmentation_index, extfrag_for_order, compaction_suitable, watermark_ok, score);
    alloc_wmark is the watermark of both tests."""
    cdef Zone *z = &allocator.z
    return (fragmentation_index_c(z, order), extfrag_for_order(z, order),
            compaction_suitable_c(z, order, alloc_wmark, wmark_min, wmark_low, extfrag_threshold),
            zone_watermark_ok(z, order, alloc_wmark), fragmentation_score_node(z))
