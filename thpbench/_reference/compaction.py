"""A slow, plain-Python twin of the compaction core (``_compaction.pxi``), for differential tests.

It runs ``compact_zone()`` on a :class:`thpbench._reference.ReferenceBuddy` with the
same simplifications as the core (linear scanners with skip bits, no LRU, one
migrate_pages_batch() pass per batch, split on -ENOMEM when the owner agrees) and records every
migration as (src, dst, order, rc).  The mover is a Python callable
``mover(src, dst, order) -> int`` (0 = moved) and ``splitter(head, order) -> int`` (0 =
split); both None: everything moves and splits.

Follows mm/compaction.c of Linux 6.18: isolate_migratepages(_block),
isolate_freepages(_block), compaction_alloc/compaction_free with per-order lists,
__compact_finished, compaction_suitable, pageblock skip bits and __reset_isolation_suitable,
deferral (ReferenceZoneState) and try_to_compact_pages.
"""
from collections import deque

from thpbench._reference.buddy import MIGRATE_PCPTYPES, NR_MIGRATETYPES

MOVABLE = 1
ISOLATE = 4
COMPACT_CLUSTER_MAX = 32
PAGE_ALLOC_COSTLY_ORDER = 3
(COMPACT_NOT_SUITABLE_ZONE, COMPACT_SKIPPED, COMPACT_DEFERRED, COMPACT_NO_SUITABLE_PAGE, COMPACT_CONTINUE,
 COMPACT_COMPLETE, COMPACT_PARTIAL_SKIPPED, COMPACT_CONTENDED, COMPACT_SUCCESS) = range(9)
ASYNC, SYNC_LIGHT, SYNC = 0, 1, 2
ENOMEM = 12
STAT_NAMES = ("compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "pgmigrate_success",
              "pgmigrate_fail")


class ReferenceZoneState:
    """struct zone's compaction fields: cached pfns, skip bits, deferral, counters."""

    def __init__(self, ref):
        self.considered = 0
        self.defer_shift = 0
        self.order_failed = 0
        self.cached_migrate = [0, 0]
        self.cached_free = (ref.nr_pages - 1) >> ref.pageblock_order << ref.pageblock_order
        self.init_migrate = 0
        self.init_free = self.cached_free
        self.blockskip_flush = False
        self.skip = [0] * ref.nr_pageblocks
        self.stats = {k: 0 for k in STAT_NAMES}
        self.ref = ref

    # -- deferral (defer_compaction, compaction_deferred, compaction_defer_reset) ---------------
    def defer(self, order):
        self.considered = 0
        self.defer_shift = min(self.defer_shift + 1, 6)
        self.order_failed = min(self.order_failed, order)

    def deferred(self, order):
        if order < self.order_failed:
            return False
        self.considered += 1
        if self.considered >= 1 << self.defer_shift:
            self.considered = 1 << self.defer_shift
            return False
        return True

    def defer_reset(self, order, alloc_success):
        if alloc_success:
            self.considered = self.defer_shift = 0
        if order >= self.order_failed:
            self.order_failed = order + 1

    # -- skip bits -----------------------------------------------------------------------------
    def persistent(self, pfn):
        r = self.ref
        h = pfn if (pfn in r.allocated or pfn in r.buddy) else r._head_of(pfn)
        return h in r.allocated and r.allocated[h][0] >= r.pageblock_order

    def page_lru(self, pfn):
        r = self.ref
        h = pfn if (pfn in r.allocated or pfn in r.buddy) else r._head_of(pfn)
        return h in r.allocated and r.allocated[h][1] == MOVABLE

    def reset_pfn(self, pfn, check_source, check_target):
        r = self.ref
        pbo = r.pageblock_order
        if self.persistent(pfn):
            return False
        if check_source and check_target and not self.skip[pfn >> pbo]:
            return True
        if not check_source and check_target and r.pb_mt[pfn >> pbo] != MOVABLE:
            return False
        page = pfn >> pbo << pbo
        end = min((((page >> pbo) + 1) << pbo) - 1, r.nr_pages - 1)
        while True:
            if check_source and self.page_lru(page):
                self.skip[page >> pbo] = 0
                return True
            if check_target and page in r.buddy:
                self.skip[page >> pbo] = 0
                return True
            page += 1 << PAGE_ALLOC_COSTLY_ORDER
            if page > end:
                return False

    def reset_isolation_suitable(self):
        """__reset_isolation_suitable()"""
        r = self.ref
        pbn = 1 << r.pageblock_order
        if not self.blockskip_flush:
            return False
        self.blockskip_flush = False
        migrate_pfn, free_pfn = 0, r.nr_pages - 1
        reset_migrate, reset_free = free_pfn, migrate_pfn
        source_set = free_set = False
        while migrate_pfn < free_pfn:
            if self.reset_pfn(migrate_pfn, True, source_set) and migrate_pfn < reset_migrate:
                source_set = True
                reset_migrate = self.init_migrate = migrate_pfn
                self.cached_migrate = [reset_migrate, reset_migrate]
            if self.reset_pfn(free_pfn, free_set, True) and free_pfn > reset_free:
                free_set = True
                reset_free = self.init_free = self.cached_free = free_pfn
            migrate_pfn += pbn
            free_pfn -= pbn
        if reset_migrate >= reset_free:
            self.cached_migrate = [migrate_pfn, migrate_pfn]
            self.cached_free = free_pfn
        return True


class ReferenceCompaction:
    """One compact_zone() run (a compact_control) on a ReferenceBuddy."""

    def __init__(self, ref, zs, *, order=-1, mode=SYNC, migratetype=MOVABLE, whole_zone=True, direct=False,
                 proactive=False, ignore_skip_hint=True, ignore_block_suitable=False, wmark_min=0, wmark_low=0,
                 alloc_wmark=0, extfrag_threshold=500, proactive_wmark_low=80, mover=None, splitter=None):
        self.ref, self.zs = ref, zs
        self.order, self.mode, self.migratetype = order, mode, migratetype
        self.whole_zone, self.direct, self.proactive = whole_zone, direct, proactive
        self.ignore_skip_hint, self.ignore_block_suitable = ignore_skip_hint, ignore_block_suitable
        self.wmark_min, self.wmark_low, self.alloc_wmark = wmark_min, wmark_low, alloc_wmark
        self.extfrag_threshold, self.proactive_wmark_low = extfrag_threshold, proactive_wmark_low
        self.mover, self.splitter = mover, splitter
        self.pbo = ref.pageblock_order
        self.pbn = 1 << ref.pageblock_order
        self.freepages = [deque() for _ in range(ref.max_order + 1)]
        self.migratepages = []
        self.nr_migratepages = self.nr_freepages = 0
        self.total_migrate_scanned = self.total_free_scanned = 0
        self.finish_pageblock = False
        self.moves = []

    # -- helpers ---------------------------------------------------------------------------
    def pb_start(self, pfn):
        return pfn >> self.pbo << self.pbo

    def pb_end(self, pfn):
        return ((pfn >> self.pbo) + 1) << self.pbo

    def scanners_met(self):
        return self.free_pfn >> self.pbo <= self.migrate_pfn >> self.pbo

    def watermark_ok(self, order, mark):
        r = self.ref
        free = r.nr_free_pages - ((1 << order) - 1)
        if free <= mark:
            return False
        if order == 0:
            return True
        return any(r.free_area[o][m] for o in range(order, r.max_order + 1) for m in range(MIGRATE_PCPTYPES))

    def contig(self, order):
        # fill_contig_page_info() of the zone: ReferenceBuddy's own
        return self.ref._contig(order)

    def fragmentation_index(self, order):
        # __fragmentation_index() as the kernel's integer: ReferenceBuddy's value x 1000
        return round(self.ref.fragmentation_index(order) * 1000)

    def extfrag(self, order):
        total, free, suitable = self.contig(order)
        return 0 if free == 0 else (free - (suitable << order)) * 100 // free

    def suitable(self, order):
        wm = self.alloc_wmark + (2 << order)
        if order > PAGE_ALLOC_COSTLY_ORDER:
            wm += self.wmark_low - self.wmark_min
        if not self.watermark_ok(0, wm):
            return False
        if order > PAGE_ALLOC_COSTLY_ORDER:
            fi = self.fragmentation_index(order)
            if 0 <= fi <= self.extfrag_threshold:
                return False
        return True

    def isolation_suitable(self, pfn):
        return self.ignore_skip_hint or not self.zs.skip[pfn >> self.pbo]

    def test_and_set_skip(self, pfn):
        if self.ignore_skip_hint:
            return False
        skip = self.zs.skip[pfn >> self.pbo]
        self.zs.skip[pfn >> self.pbo] = 1
        return bool(skip)

    def update_cached_migrate(self, pfn):
        pfn = self.pb_end(pfn)
        if pfn > self.zs.cached_migrate[0]:
            self.zs.cached_migrate[0] = pfn
        if self.mode != ASYNC and pfn > self.zs.cached_migrate[1]:
            self.zs.cached_migrate[1] = pfn

    # -- free scanner ---------------------------------------------------------------------------
    def isolate_free_page(self, pfn, order):
        r = self.ref
        mt = r.buddy[pfn][1]
        if mt != ISOLATE and not self.watermark_ok(0, self.wmark_min + (1 << order)):
            return 0
        r._del_from_free_list(pfn, order, mt)
        r.nr_free_pages -= 1 << order
        if order >= self.pbo - 1 and r.grouping:
            p, end = pfn, pfn + (1 << order) - 1
            while p < end:
                pmt = r.pb_mt[p >> self.pbo]
                if pmt < MIGRATE_PCPTYPES and pmt != MOVABLE:
                    r._move_freepages_block(self.pb_start(p), pmt, MOVABLE)
                    r.pb_mt[p >> self.pbo] = MOVABLE
                p += self.pbn
        return 1 << order

    def isolate_freepages_block(self, start, end, stride):
        r = self.ref
        scanned = total = 0
        pfn = start
        while pfn < end:
            scanned += 1
            if pfn in r.allocated:
                o = r.allocated[pfn][0]
                if o > 0:
                    pfn += (1 << o) - 1
                    scanned += (1 << o) - 1
            elif pfn in r.buddy:
                o = r.buddy[pfn][0]
                n = self.isolate_free_page(pfn, o)
                if not n:
                    break
                scanned += n - 1
                total += n
                self.nr_freepages += n
                self.freepages[o].append(pfn)
                if self.nr_migratepages <= self.nr_freepages:
                    pfn += n
                    break
                pfn += n - 1
            pfn += stride
        pfn = min(pfn, end)
        self.total_free_scanned += scanned
        self.zs.stats["compact_isolated"] += total
        return total, pfn

    def target_ok(self, block_start):
        r = self.ref
        b = r.buddy.get(block_start)
        if b is not None and b[0] >= (self.order if self.order > 0 else self.pbo):
            return False
        return self.ignore_block_suitable or r.pb_mt[block_start >> self.pbo] == MOVABLE

    def isolate_freepages(self):
        r = self.ref
        isolate_start = self.free_pfn
        block_start = self.pb_start(isolate_start)
        block_end = min(block_start + self.pbn, r.nr_pages)
        low_pfn = self.pb_end(self.migrate_pfn)
        stride = COMPACT_CLUSTER_MAX if self.mode == ASYNC else 1
        while block_start >= low_pfn:
            if self.target_ok(block_start) and self.isolation_suitable(block_start):
                n, isolate_start = self.isolate_freepages_block(isolate_start, block_end, stride)
                if isolate_start == block_end:
                    self.zs.skip[block_start >> self.pbo] = 1
                    if block_start - self.pbn < self.zs.cached_free:
                        self.zs.cached_free = block_start - self.pbn
                if self.nr_freepages >= self.nr_migratepages:
                    if isolate_start >= block_end:
                        isolate_start = block_start - self.pbn
                    break
                elif isolate_start < block_end:
                    break
                stride = 1 if n else min(COMPACT_CLUSTER_MAX, stride << 1)
            block_end = block_start
            block_start -= self.pbn
            isolate_start = block_start
        self.free_pfn = isolate_start

    # -- migrate scanner --------------------------------------------------------------------------
    def skip_on_order(self, o):
        if self.order >= 0 and o >= self.order:
            return True
        return o >= self.pbo

    def isolate_migratepages_block(self, low_pfn, end_pfn):
        r = self.ref
        scanned = isolated = 0
        self.migrate_pfn = low_pfn
        skip_on_failure = self.direct and self.mode == ASYNC and self.order >= 0
        next_skip = ((low_pfn >> self.order) + 1) << self.order if skip_on_failure else 0
        valid_page = None
        skip_updated = aborted = False
        while low_pfn < end_pfn:
            if skip_on_failure and low_pfn >= next_skip:
                if isolated:
                    break
                next_skip = ((low_pfn >> self.order) + 1) << self.order
            scanned += 1
            if valid_page is None and low_pfn % self.pbn == 0:
                if not self.isolation_suitable(low_pfn):
                    low_pfn, aborted = end_pfn, True
                    break
                valid_page = low_pfn
            fail = False
            if low_pfn in r.buddy:
                o = r.buddy[low_pfn][0]
                low_pfn += (1 << o) - 1
                scanned += (1 << o) - 1
            elif low_pfn in r.allocated:
                o, mt = r.allocated[low_pfn]
                if o > 0 and self.skip_on_order(o):
                    low_pfn += (1 << o) - 1
                    scanned += (1 << o) - 1
                    fail = True
                elif mt != MOVABLE:
                    fail = True
                else:
                    if not skip_updated and valid_page is not None:
                        skip_updated = True
                        if self.test_and_set_skip(valid_page) and not self.finish_pageblock:
                            low_pfn, aborted = end_pfn, True
                            break
                    self.migratepages.append(low_pfn)
                    self.nr_migratepages += 1 << o
                    isolated += 1 << o
                    scanned += (1 << o) - 1
                    low_pfn += (1 << o) - 1
                    if self.nr_migratepages >= COMPACT_CLUSTER_MAX and not self.finish_pageblock:
                        low_pfn += 1
                        break
            else:
                fail = True
            if fail and skip_on_failure:
                if isolated:
                    self.nr_migratepages = 0
                    self.migratepages = []
                    isolated = 0
                if low_pfn < next_skip:
                    low_pfn = next_skip - 1
                    next_skip += 1 << self.order
            low_pfn += 1
        if not aborted:
            low_pfn = min(low_pfn, end_pfn)
        if low_pfn == end_pfn and (not isolated or self.finish_pageblock):
            if valid_page is not None and not skip_updated:
                self.zs.skip[valid_page >> self.pbo] = 1
            self.update_cached_migrate(low_pfn)
        self.total_migrate_scanned += scanned
        self.zs.stats["compact_isolated"] += isolated
        self.migrate_pfn = low_pfn

    def source_ok(self, block_start):
        if self.zs.persistent(block_start):
            return False
        if self.mode != ASYNC or not self.direct:
            return True
        return self.ref.pb_mt[block_start >> self.pbo] == self.migratetype

    def isolate_migratepages(self):
        low_pfn = self.migrate_pfn
        block_start, block_end = self.pb_start(low_pfn), self.pb_end(low_pfn)
        while block_end <= self.free_pfn:
            if low_pfn % self.pbn == 0 and not self.isolation_suitable(block_start):
                pass
            elif not self.source_ok(block_start):
                self.update_cached_migrate(block_end)
            else:
                self.isolate_migratepages_block(low_pfn, block_end)
                break
            low_pfn = self.migrate_pfn = block_end
            block_start = block_end
            block_end += self.pbn
        return bool(self.nr_migratepages)

    # -- migration ----------------------------------------------------------------------------------
    def compaction_alloc(self, order):
        has_isolated = False
        while True:
            so = next((o for o in range(order, self.ref.max_order + 1) if self.freepages[o]), None)
            if so is None:
                if has_isolated:
                    return -1
                self.isolate_freepages()
                has_isolated = True
                continue
            break
        page = self.freepages[so].popleft()
        size = 1 << so
        while so > order:
            so -= 1
            size >>= 1
            self.freepages[so].appendleft(page + size)
        self.nr_freepages -= 1 << order
        self.nr_migratepages -= 1 << order
        return page

    def try_split(self, src, o):
        if self.splitter is not None:
            if self.splitter(src, o) != 0:
                return False
        elif self.mover is not None:
            return False
        self.ref.split(src, o)
        self.split_folios.extend(range(src, src + (1 << o)))
        return True

    def migrate_pages_batch(self, folios, may_split):
        """Unmap all (take targets in list order), move all, give failed targets back."""
        r = self.ref
        err = 0
        pairs = []
        for src in folios:
            o = r.allocated[src][0]
            dst = self.compaction_alloc(o)
            if dst < 0:
                if may_split and o > 0 and self.try_split(src, o):
                    err = 1
                    continue
                err = ENOMEM
                break
            pairs.append((src, dst))
        failed = []
        for src, dst in pairs:
            o, mt = r.allocated[src]
            rc = 0 if self.mover is None else self.mover(src, dst, o)
            self.moves.append((src, dst, o, rc))
            if rc == 0:
                r.allocated[dst] = (o, mt)
                r.events["alloc"] += 1
                r.free(src, o)
                self.zs.stats["pgmigrate_success"] += 1 << o
            else:
                failed.append((src, dst, o))
                err = err or 1
        for src, dst, o in failed:
            self.freepages[o].appendleft(dst)
            self.nr_freepages += 1 << o
            self.nr_migratepages += 1 << o
            self.zs.stats["pgmigrate_fail"] += 1 << o
        return err

    def migrate_pages(self):
        self.split_folios = []
        err = self.migrate_pages_batch(list(reversed(self.migratepages)), True)
        if err != ENOMEM and self.split_folios:
            self.migrate_pages_batch(self.split_folios, False)
        self.migratepages = []
        return err

    # -- compact_zone ---------------------------------------------------------------------------------
    def finished(self):
        r = self.ref
        if self.scanners_met():
            self.zs.cached_migrate = [0, 0]
            self.zs.cached_free = self.pb_start(r.nr_pages - 1)
            if self.direct:
                self.zs.blockskip_flush = True
            return COMPACT_COMPLETE if self.whole_zone else COMPACT_PARTIAL_SKIPPED
        if self.proactive:
            return COMPACT_CONTINUE if self.extfrag(self.pbo) > self.proactive_wmark_low else COMPACT_SUCCESS
        if self.order < 0:
            return COMPACT_CONTINUE
        if self.migrate_pfn % self.pbn:
            return COMPACT_CONTINUE
        for o in range(self.order, r.max_order + 1):
            if r.free_area[o][self.migratetype]:
                return COMPACT_SUCCESS
            if r._find_suitable_fallback(o, self.migratetype, True) >= 0:
                return COMPACT_SUCCESS
        return COMPACT_CONTINUE

    def run(self):
        r, zs = self.ref, self.zs
        end_pfn = r.nr_pages
        if self.order >= 0:
            if self.watermark_ok(self.order, self.alloc_wmark):
                return COMPACT_SUCCESS
            if not self.suitable(self.order):
                return COMPACT_SKIPPED
        sync = self.mode != ASYNC
        # compaction_restarting(): clear skip bits after a full deferral cycle
        if self.order >= zs.order_failed and zs.defer_shift == 6 and zs.considered >= 64:
            zs.reset_isolation_suitable()
        if self.whole_zone:
            self.migrate_pfn, self.free_pfn = 0, self.pb_start(end_pfn - 1)
        else:
            self.migrate_pfn = zs.cached_migrate[1 if sync else 0]
            self.free_pfn = zs.cached_free
            if not 0 <= self.free_pfn < end_pfn:
                self.free_pfn = zs.cached_free = self.pb_start(end_pfn - 1)
            if not 0 <= self.migrate_pfn < end_pfn:
                self.migrate_pfn = 0
                zs.cached_migrate = [0, 0]
            if self.migrate_pfn <= zs.init_migrate:
                self.whole_zone = True
        last_migrated = -1
        update_cached = not sync and zs.cached_migrate[0] == zs.cached_migrate[1]
        aborted = False
        while True:
            ret = self.finished()
            if ret != COMPACT_CONTINUE:
                break
            self.finish_pageblock = last_migrated >= 0 and self.pb_start(last_migrated) == self.pb_start(self.migrate_pfn)
            while True:
                if not self.isolate_migratepages():
                    if update_cached:
                        zs.cached_migrate[1] = zs.cached_migrate[0]
                    break
                update_cached = False
                last_migrated = self.pb_start(self.migrate_pfn - 1)
                err = self.migrate_pages()
                self.nr_migratepages = 0
                if err:
                    if err == ENOMEM and not self.scanners_met():
                        ret = COMPACT_CONTENDED
                        aborted = True
                        break
                    if (self.migrate_pfn % self.pbn and not self.ignore_skip_hint and not self.finish_pageblock
                            and self.mode < SYNC):
                        self.finish_pageblock = True
                        if self.order == self.pbo:
                            last_migrated = -1
                        continue
                break
            if aborted:
                break
            if self.order > 0 and last_migrated >= 0 and last_migrated < (self.migrate_pfn >> self.order << self.order):
                last_migrated = -1
        high = -1
        for o in range(r.max_order + 1):
            while self.freepages[o]:
                pfn = self.freepages[o].popleft()
                r._free_one_page(pfn, o, r.pb_mt[pfn >> self.pbo])
                high = max(high, pfn)
        self.nr_freepages = 0
        if high >= 0 and self.pb_start(high) > zs.cached_free:
            zs.cached_free = self.pb_start(high)
        zs.stats["compact_migrate_scanned"] += self.total_migrate_scanned
        zs.stats["compact_free_scanned"] += self.total_free_scanned
        return ret


def try_to_compact_pages(ref, zs, order, priority, *, migratetype=MOVABLE, mover=None, splitter=None,
                         wmark_min=0, wmark_low=0, alloc_wmark=0, extfrag_threshold=500):
    """try_to_compact_pages() for one zone; priority 0 = sync_full, 1 = sync_light, 2 = async.

    Returns (result, the ReferenceCompaction run or None when deferred)."""
    if priority > 0 and zs.deferred(order):
        return COMPACT_DEFERRED, None
    full = priority == 0
    rc = ReferenceCompaction(ref, zs, order=order, mode=ASYNC if priority == 2 else SYNC_LIGHT,
                             migratetype=migratetype, whole_zone=full, direct=True, ignore_skip_hint=full,
                             ignore_block_suitable=full, wmark_min=wmark_min, wmark_low=wmark_low,
                             alloc_wmark=alloc_wmark, extfrag_threshold=extfrag_threshold, mover=mover,
                             splitter=splitter)
    status = rc.run()
    if status == COMPACT_SUCCESS:
        zs.defer_reset(order, False)
    elif priority != 2 and status in (COMPACT_COMPLETE, COMPACT_PARTIAL_SKIPPED):
        zs.defer(order)
    return status, rc
